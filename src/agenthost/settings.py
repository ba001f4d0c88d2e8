"""agenthost configuration: `agenthost.toml`, `AGENTHOST_*` environment overrides, `*_FILE` secrets.

Precedence, highest first: keyword arguments, environment variables, `*_FILE` secret files, the
TOML file, defaults. Nested keys use `__` in environment names, e.g. `AGENTHOST_SERVER__PORT=9000`
overrides `[server] port`. Any variable may instead be given as a file path with a `_FILE` suffix
(the Docker/Kubernetes secrets convention): `AGENTHOST_MODELS__MAIN__API_KEY_FILE=/run/secrets/key`.

Example:
    >>> s = Settings(agents={"bot": {"path": "mybot.agent:agent"}})
    >>> s.default_agent_name()
    'bot'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agenthost.costs.config import AlertSettings, BatchSettings, BudgetSettings, LedgerSettings, RunLimits
from agenthost.errors import ConfigError
from agenthost.security.auth import AuthSettings
from agenthost.security.output import RedactionSettings
from agenthost.security.privacy import RetentionSettings
from agenthost.security.ratelimit import RateLimitSettings
from agenthost.security.roles import Risk, Role
from agenthost.security.screening import ScreeningSettings

__all__ = [
    "AgentConfig",
    "CacheSettings",
    "DurabilitySettings",
    "GatewaySettings",
    "LocalModelSettings",
    "LoggingSettings",
    "ModelConfig",
    "PriceOverride",
    "RedisSettings",
    "RoutingSettings",
    "ServerSettings",
    "Settings",
    "ToolConfig",
    "load_settings",
]

ENV_PREFIX = "AGENTHOST_"
DEFAULT_CONFIG_NAME = "agenthost.toml"
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    """`[server]`: the HTTP API."""

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 in containers.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    run_wait_timeout: float = Field(
        30.0, gt=0, description="Seconds `POST .../run` waits before answering 202 with the run's location."
    )
    heartbeat_interval: float = Field(15.0, gt=0, description="Seconds between SSE heartbeat comments.")
    chat_completions_timeout: float = Field(
        600.0,
        gt=0,
        description="Longest wait for an agent run behind a non-streaming `/v1/chat/completions`.",
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="Grace period for in-flight work on SIGTERM."
    )
    max_page_size: int = Field(100, ge=1, le=1000, description="Upper bound on `limit` for list endpoints.")


class DurabilitySettings(_Section):
    """`[durability]`: the DBOS engine that makes runs durable."""

    app_name: str = Field("agenthost", pattern=r"^[a-z0-9_-]{3,}$", description="DBOS application name.")
    application_version: str = Field(
        "1",
        min_length=1,
        description="Pinned DBOS application version: processes sharing it recover each other's runs.",
    )
    executor_id: str = Field(
        "local", min_length=1, description="Unique per replica in a multi-replica deployment."
    )
    queue_concurrency: int = Field(16, ge=1, description="Background runs executing at once in this process.")
    events_flush_interval: float = Field(
        0.25, gt=0, description="Seconds between writes of buffered run events to the database."
    )
    approval_timeout_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="How long a tool call waits for approval before it is denied."
    )
    max_recovery_attempts: int = Field(
        5,
        ge=1,
        description="Restarts a run may crash in before it is marked `dead` (then resume it by hand).",
    )


class PriceOverride(_Section):
    """`[models.<name>.price]`: USD per million tokens, replacing genai-prices' figures for this model."""

    input_per_mtok: float = Field(ge=0, description="Uncached input tokens.")
    output_per_mtok: float = Field(ge=0, description="Output tokens.")
    cache_read_per_mtok: float | None = Field(
        None, ge=0, description="Cached input read; default: input price."
    )
    cache_write_per_mtok: float | None = Field(None, ge=0, description="Cache writes; default: input price.")


class ModelConfig(_Section):
    """`[models.<name>]`: a named model agents can use."""

    provider: Literal["openai", "anthropic", "local"] = Field(
        description="Wire protocol: `openai` (also any OpenAI-compatible endpoint), `anthropic`, or `local`."
    )
    model: str = Field("", description="Provider model id, e.g. `gpt-4o-mini`; ignored for `local`.")
    base_url: str | None = Field(
        None, description="Endpoint for OpenAI-compatible servers (vLLM, Ollama, ...)."
    )
    api_key: SecretStr | None = Field(
        None, description="Credential; prefer `*_FILE` or the provider's env var."
    )
    timeout: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    max_tokens: int | None = Field(None, ge=1, description="Default cap on output tokens per model call.")
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Names of `[models]` tried in order when this one fails or its breaker is open.",
    )
    price: PriceOverride | None = Field(None, description="Price override (otherwise genai-prices).")
    context_window: int | None = Field(
        None,
        ge=256,
        description="Context window in tokens (default: genai-prices' figure for the model; "
        "`[local] n_ctx` for the local model). Unknown: no overflow handling.",
    )
    context_overflow: Literal["truncate", "summarize", "error"] | None = Field(
        None, description="Overflow strategy of this model; default `[gateway] context_overflow`."
    )
    prompt_caching: bool = Field(
        default=False,
        description="Anthropic: cache the system prompt and tool definitions (cached reads cost 10 %).",
    )

    @model_validator(mode="after")
    def _model_required(self) -> ModelConfig:
        if self.provider != "local" and not self.model:
            msg = f"`model` is required for provider {self.provider!r}"
            raise ValueError(msg)
        return self


class ToolConfig(_Section):
    """`[agents.<name>.tools.<tool>]`: how agenthost executes one of the agent's tools."""

    execution: Literal["at_least_once", "at_most_once"] = Field(
        "at_least_once",
        description=(
            "`at_least_once` (idempotent reads): after a crash inside the call, it runs again. "
            "`at_most_once` (side effects): it never runs twice; after a crash inside the call the "
            "agent gets a `tool_outcome_unknown` failure instead."
        ),
    )
    risk: Risk | None = Field(
        None,
        description="`low` runs automatically; `medium` and `high` wait for approval; `critical` waits "
        'for approval by an operator or admin. Unset: `low` if `approval = "never"`, `high` if '
        '`approval = "required"`, else `default_tool_risk`. Roles above their `max_tool_risk` never '
        "see the tool.",
    )
    approval: Literal["never", "required"] | None = Field(
        None,
        description="Override of the risk's approval rule: `required` makes each call wait for a "
        "decision (`POST .../approvals/{id}`), `never` runs it without one (not for `critical`).",
    )
    approval_timeout_seconds: float | None = Field(
        None, gt=0, description="Deny the call automatically after this long; default `[durability]`'s."
    )

    @model_validator(mode="after")
    def _critical_needs_approval(self) -> ToolConfig:
        if self.risk == "critical" and self.approval == "never":
            msg = 'a critical tool always needs approval; remove approval = "never" or lower its risk'
            raise ValueError(msg)
        return self


class AgentConfig(_Section):
    """`[agents.<name>]`: an agent served by this process."""

    path: str = Field(description="Import path `module:attribute` of a `pydantic_ai.Agent`.")
    model: str | None = Field(
        None, description="A name from `[models]`, or a pydantic-ai model string like `openai:gpt-4o`."
    )
    description: str = Field("", description="Shown in listings.")
    prompt_version: str | None = Field(
        None,
        max_length=128,
        description="Label of the agent's prompt (a git tag, a registry version) in audit entries; "
        "unset: a fingerprint of its instructions and system prompts.",
    )
    deps_factory: str | None = Field(
        None, description="Import path of a callable returning the agent's `deps` for each run."
    )
    tools: dict[str, ToolConfig] = Field(
        default_factory=dict, description="Per-tool execution semantics and approval, by tool name."
    )
    limits: RunLimits | None = Field(
        None, description="This agent's run limits, replacing `[limits]` (same keys)."
    )
    routing: bool = Field(
        default=False,
        description="Choose each run's model by the complexity of its input (`[routing]` tiers).",
    )
    redaction: RedactionSettings | None = Field(
        None, description="This agent's output redaction, replacing `[redaction]`."
    )

    @field_validator("path", "deps_factory")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and not _IMPORT_PATH.match(value):
            msg = f"must look like `module:attribute` (got {value!r})"
            raise ValueError(msg)
        return value


class GatewaySettings(_Section):
    """`[gateway]`: what happens around every model call: retries, circuit breakers, degradation."""

    retry_max_attempts: int = Field(
        3, ge=1, le=20, description="Attempts per model call, the first included."
    )
    retry_initial_delay: float = Field(
        0.5, ge=0, description="First backoff (seconds); doubles, with full jitter."
    )
    retry_max_delay: float = Field(8.0, ge=0, description="Longest single backoff (seconds).")
    retry_max_total_seconds: float = Field(
        30.0, gt=0, description="No new attempt starts after this long since the first one."
    )
    retry_after_max_seconds: float = Field(
        30.0,
        ge=0,
        description="A provider's `Retry-After` longer than this is not waited for (the call fails over).",
    )
    breaker_failure_threshold: int = Field(
        5, ge=1, description="Consecutive failed attempts that open a model's circuit breaker."
    )
    breaker_cooldown_seconds: float = Field(
        30.0, gt=0, description="How long an open breaker fails calls fast before letting one probe through."
    )
    degradation_message: str | None = Field(
        None,
        description="Answer with this text (at no cost) when every model of a chain fails, not an error.",
    )
    context_overflow: Literal["truncate", "summarize", "error"] = Field(
        "truncate",
        description="When a history exceeds a model's context budget: drop the oldest exchanges "
        "(`truncate`), replace them by a summary from the same model (`summarize`), or refuse (`error`).",
    )
    context_reserve_tokens: int = Field(
        1024, ge=1, description="Tokens kept free for the answer when a call sets no `max_tokens`."
    )


class CacheSettings(_Section):
    """`[cache]`: the exact response cache (off by default)."""

    enabled: bool = Field(
        default=False, description="Answer repeated identical requests from the cache, at no cost."
    )
    ttl_seconds: float = Field(3600.0, gt=0, description="How long an answer stays in the cache.")
    shared_across_tenants: bool = Field(
        default=False,
        description="Let different users' identical requests share answers (off: keyed by user).",
    )
    semantic: bool = Field(
        default=False,
        description="Also answer paraphrases of an earlier last question (embedding similarity); "
        "needs `enabled`.",
    )
    semantic_threshold: float = Field(
        0.9, gt=0, le=1, description="Cosine similarity at or above which a paraphrase is a hit."
    )
    semantic_embeddings: str = Field(
        "local",
        description="`local` (all-MiniLM-L6-v2 on the CPU, `[semantic]` extra) or a `[models]` name "
        "whose `model` is an embedding model served over the OpenAI embeddings API.",
    )
    semantic_max_entries: int = Field(
        1000, ge=1, description="Newest entries compared per lookup (per model, tenant and context)."
    )


class RoutingSettings(_Section):
    """`[routing]`: the model of each complexity tier, for agents with `routing = true`."""

    simple: str | None = Field(
        None, description="`[models]` name for greetings, lookups, short factual asks."
    )
    medium: str | None = Field(
        None, description="`[models]` name for explanations, summaries, short writing."
    )
    complex: str | None = Field(None, description="`[models]` name for multi-step work, code, analysis.")
    classifier: str | None = Field(
        None,
        description="`[models]` name of a cheap model that classifies each input (one short call per "
        "routed run); unset uses the local heuristic. On any failure the heuristic decides.",
    )
    classifier_timeout_seconds: float = Field(
        5.0, gt=0, description="Time the classifier model gets before the heuristic decides instead."
    )


class RedisSettings(_Section):
    """`[redis]`: optional; shares budgets, rate limits, circuit breakers and caches across replicas."""

    url: SecretStr | None = Field(
        None, description="`redis://host:6379/0`; unset keeps that state per process."
    )
    key_prefix: str = Field("agenthost", min_length=1, description="Prefix of every key agenthost writes.")
    max_connections: int = Field(
        64, ge=1, le=10_000, description="Connections per pool; calls past it wait for a free one."
    )


class LocalModelSettings(_Section):
    """`[local]`: the in-process GGUF model used when no provider key is set."""

    model_path: Path | None = Field(
        None, description="GGUF file; defaults to SmolLM2-135M-Instruct from `[local]`."
    )
    n_ctx: int = Field(2048, ge=256, description="Context window in tokens.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default is llama.cpp's choice.")
    max_tokens: int = Field(256, ge=1, description="Default cap on generated tokens.")


class LoggingSettings(_Section):
    """`[logging]`: structured logs."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    format: Literal["json", "console"] = Field(
        "json", description="`json` for production, `console` for humans."
    )


AgentName = Annotated[str, Field(pattern=_NAME.pattern)]


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings()` to get file and env handling."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: SecretStr = Field(
        SecretStr("sqlite:///.agenthost/agenthost.db"),
        description="SQLite file (relative to the working directory) or `postgresql://user@host/db`.",
    )
    default_agent: str | None = Field(None, description="Agent served by the seed aliases `/agent/*`.")
    default_model: str | None = Field(
        None, description="Model for agents that name none (a `[models]` name)."
    )
    agents: dict[AgentName, AgentConfig] = Field(default_factory=dict, description="Agents served.")
    models: dict[AgentName, ModelConfig] = Field(default_factory=dict, description="Named models.")
    server: ServerSettings = Field(default_factory=ServerSettings)
    durability: DurabilitySettings = Field(default_factory=DurabilitySettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    limits: RunLimits = Field(default_factory=RunLimits)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    local: LocalModelSettings = Field(default_factory=LocalModelSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    redaction: RedactionSettings = Field(default_factory=RedactionSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    screening: ScreeningSettings = Field(default_factory=ScreeningSettings)
    roles: dict[AgentName, Role] = Field(
        default_factory=dict,
        description="Roles added to (or replacing) the built-in readonly, user, operator and admin.",
    )
    default_tool_risk: Risk = Field(
        "high", description="Risk of tools with no `risk` or `approval` in their agent's `[tools]`."
    )
    config_dir: Path | None = Field(
        None, exclude=True, description="Directory of the TOML file (set by loader)."
    )

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_shorthand(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")):
            msg = "must start with sqlite:/// or postgresql://"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _references(self) -> Settings:
        if self.default_agent is not None and self.default_agent not in self.agents:
            msg = f"default_agent {self.default_agent!r} is not one of [agents]: {sorted(self.agents)}"
            raise ValueError(msg)
        if self.default_model is not None and self.default_model not in self.models:
            msg = f"default_model {self.default_model!r} is not one of [models]: {sorted(self.models)}"
            raise ValueError(msg)
        for name, model in self.models.items():
            for fallback in model.fallbacks:
                if fallback not in self.models or fallback == name:
                    known = sorted(self.models)
                    msg = f"models.{name}.fallbacks: {fallback!r} is not another name in [models]: {known}"
                    raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _semantic_cache(self) -> Settings:
        cache = self.cache
        if cache.semantic and not cache.enabled:
            msg = "cache.semantic needs cache.enabled = true"
            raise ValueError(msg)
        name = cache.semantic_embeddings
        usable = name == "local" or (name in self.models and self.models[name].provider == "openai")
        if cache.semantic and not usable:
            msg = f"cache.semantic_embeddings: {name!r} is neither `local` nor an openai [models] entry"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _routing(self) -> Settings:
        tiers = self.routing.model_dump(include={"simple", "medium", "complex"})
        named = {**tiers, "classifier": self.routing.classifier}
        for tier, model_name in named.items():
            if model_name is not None and model_name not in self.models:
                msg = f"routing.{tier}: {model_name!r} is not one of [models]: {sorted(self.models)}"
                raise ValueError(msg)
        routed = [name for name, agent in self.agents.items() if agent.routing]
        if routed and None in tiers.values():
            missing = [tier for tier, model_name in tiers.items() if model_name is None]
            msg = f"agents {routed} route by complexity, but [routing] names no model for {missing}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _agent_models(self) -> Settings:
        for name, agent in self.agents.items():
            if agent.model is not None and agent.model not in self.models and ":" not in agent.model:
                msg = (
                    f"agents.{name}.model {agent.model!r} is neither a [models] name nor a "
                    "provider:model string"
                )
                raise ValueError(msg)
        return self

    def default_agent_name(self) -> str | None:
        """The agent behind `/agent/*`: `default_agent`, or the first agent configured."""
        if self.default_agent is not None:
            return self.default_agent
        return next(iter(self.agents), None)

    def masked(self) -> dict[str, Any]:
        """The resolved settings as JSON-able data with every secret masked."""
        data = self.model_dump(mode="json")
        data["database_url"] = mask_url(self.database_url.get_secret_value())
        if self.redis.url is not None:
            data["redis"]["url"] = mask_url(self.redis.url.get_secret_value())
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _TOML_FILE.get("path")
        del env_settings  # replaced by a source that also understands `*_FILE`
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


# The TOML path is chosen at load time; pydantic-settings builds sources from the class, so the
# loader hands the path over here for the duration of one construction.
_TOML_FILE: dict[str, Path | None] = {"path": None}


class _EnvSource(EnvSettingsSource):
    """Environment variables, where `AGENTHOST_X_FILE=/path` supplies `AGENTHOST_X` from a file.

    A variable set directly wins over its `_FILE` form.
    """

    def _load_env_vars(self) -> dict[str, str | None]:
        loaded = super()._load_env_vars()
        values = {key: value for key, value in loaded.items() if not key.endswith("_file")}
        for key, path in loaded.items():
            if not key.startswith(ENV_PREFIX.lower()) or not key.endswith("_file") or path is None:
                continue
            name = key.removesuffix("_file")
            if name in values:
                continue
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                msg = f"{key.upper()}: cannot read secret file {path!r}: {exc.strerror}"
                raise ConfigError(msg) from exc
        return values


def mask_url(url: str) -> str:
    """Hide the password of a database URL."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def resolve_config_path(path: Path | str | None) -> Path | None:
    """The TOML file to read: the argument, `AGENTHOST_CONFIG`, or `./agenthost.toml` if present."""
    explicit = path if path is not None else os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit is not None:
        candidate = Path(explicit)
        if not candidate.is_file():
            msg = f"config file {str(candidate)!r} does not exist"
            raise ConfigError(msg)
        return candidate.resolve()
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default.resolve() if default.is_file() else None


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load and validate the configuration; raise `ConfigError` naming each bad key.

    Example:
        >>> load_settings(None, agents={"a": {"path": "x:y"}}).agents["a"].path
        'x:y'
    """
    config_path = resolve_config_path(path)
    _TOML_FILE["path"] = config_path
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path)) from None
    except ValueError as exc:  # a TOML syntax error surfaces as a ValueError subclass
        where = str(config_path) if config_path else "configuration"
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from None
    finally:
        _TOML_FILE["path"] = None
    settings.config_dir = config_path.parent if config_path else None
    return settings


def _describe(exc: ValidationError, config_path: Path | None) -> str:
    where = str(config_path) if config_path else "configuration"
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        problem = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        lines.append(f"{key}: {problem}")
    return f"invalid {where}: " + "; ".join(lines)
