"""agenthost configuration: `agenthost.toml`, `AGENTHOST_*` environment overrides, `*_FILE` secrets.

Precedence, highest first: keyword arguments, environment variables, `*_FILE` secret files, the
TOML file, defaults. Nested keys use `__` in environment names, e.g. `AGENTHOST_SERVER__PORT=9000`
overrides `[server] port`. Any variable may instead be given as a file path with a `_FILE` suffix
(the Docker/Kubernetes secrets convention): `AGENTHOST_MODELS__MAIN__API_KEY_FILE=/run/secrets/key`.

This module only assembles the sections, which live in `agenthost.config` (one module per area),
and checks what spans sections (references between agents, models, routing and the cache).

Example:
    >>> s = Settings(agents={"bot": {"path": "mybot.agent:agent"}})
    >>> s.default_agent_name()
    'bot'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agenthost.config.agents import AgentConfig, ToolConfig
from agenthost.config.auth import AuthSettings
from agenthost.config.base import NAME
from agenthost.config.costs import AlertSettings, BatchSettings, BudgetSettings, LedgerSettings, RunLimits
from agenthost.config.durability import DurabilitySettings
from agenthost.config.gateway import CacheSettings, GatewaySettings, RoutingSettings
from agenthost.config.models import LocalModelSettings, ModelConfig, PriceOverride
from agenthost.config.observability import LoggingSettings
from agenthost.config.roles import Risk, Role
from agenthost.config.security import (
    RateLimitSettings,
    RedactionSettings,
    RetentionSettings,
    ScreeningSettings,
)
from agenthost.config.server import ServerSettings
from agenthost.config.storage import RedisSettings
from agenthost.errors import ConfigError

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


AgentName = Annotated[str, Field(pattern=NAME.pattern)]


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
        del env_settings  # replaced by a source that also understands `*_FILE`
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        if settings_cls.model_config.get("toml_file") is not None:
            # Set by `load_settings` on a subclass made for the one file it reads.
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


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
    # pydantic-settings reads the TOML path from the class; a subclass per file keeps loading
    # reentrant (no shared state between two loads, in threads or in tests).
    loader = Settings if config_path is None else _reading(config_path)
    try:
        settings = loader(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path)) from None
    except ValueError as exc:  # a TOML syntax error surfaces as a ValueError subclass
        where = str(config_path) if config_path else "configuration"
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from None
    settings.config_dir = config_path.parent if config_path else None
    return settings


def _reading(config_path: Path) -> type[Settings]:
    """`Settings` reading `config_path` as its TOML source."""
    config = SettingsConfigDict(toml_file=config_path)
    return type("Settings", (Settings,), {"model_config": config, "__module__": __name__})


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
