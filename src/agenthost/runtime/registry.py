"""Agent registry: the `pydantic_ai.Agent` objects named in config by import path."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic_ai.agent import AbstractAgent
from pydantic_ai.models import Model

from agenthost.errors import AgentHostError, ConfigError, ErrorCode, NotFoundError
from agenthost.gateway.models import Gateway
from agenthost.runtime.prompt_version import prompt_fingerprint
from agenthost.settings import Settings

__all__ = ["AgentEntry", "AgentRegistry", "import_object"]

DepsFactory = Callable[[], Any | Awaitable[Any]]


@dataclass(frozen=True)
class AgentEntry:
    """An agent served by this process, with the model agenthost runs it on."""

    name: str
    agent: AbstractAgent[Any, Any]
    model: Model
    model_label: str
    model_source: str
    description: str
    deps_factory: DepsFactory | None
    prompt_version: str | None = None

    async def make_deps(self) -> Any:
        if self.deps_factory is None:
            return None
        deps = self.deps_factory()
        return await deps if inspect.isawaitable(deps) else deps


def import_object(path: str, what: str) -> Any:
    """Import `module:attribute`; raise `ConfigError` saying what is wrong."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"{what}: cannot import module {module_name!r} ({exc})"
        raise ConfigError(msg) from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            msg = f"{what}: module {module_name!r} has no attribute {attribute!r}"
            raise ConfigError(msg) from None
    return target


def _tool_names(agent: AbstractAgent[Any, Any]) -> set[str]:
    names: set[str] = set()
    for toolset in agent.toolsets:
        tools = getattr(toolset, "tools", None)
        if isinstance(tools, dict):
            names.update(tools)
    return names


def _check_tools(name: str, agent: AbstractAgent[Any, Any], configured: set[str]) -> None:
    """A tool named in `[agents.<name>.tools]` must be one of the agent's function tools."""
    known = _tool_names(agent)
    unknown = sorted(configured - known)
    if unknown:
        first = unknown[0]
        msg = f"agents.{name}.tools.{first}: the agent has no tool {first!r}; its tools: {sorted(known)}"
        raise ConfigError(msg)


class AgentRegistry:
    """Loads every configured agent at start-up, so a wrong path fails fast."""

    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        if settings.config_dir is not None and str(settings.config_dir) not in sys.path:
            # Agents sit next to their agenthost.toml, as `agenthost init` lays them out.
            sys.path.insert(0, str(settings.config_dir))
        self._entries: dict[str, AgentEntry] = {}
        self.gateway = gateway
        for name, cfg in settings.agents.items():
            obj = import_object(cfg.path, f"agents.{name}.path")
            if not isinstance(obj, AbstractAgent):
                msg = f"agents.{name}.path: {cfg.path!r} is a {type(obj).__name__}, not a pydantic_ai.Agent"
                raise ConfigError(msg)
            factory = None
            if cfg.deps_factory is not None:
                factory = import_object(cfg.deps_factory, f"agents.{name}.deps_factory")
                if not callable(factory):
                    msg = f"agents.{name}.deps_factory: {cfg.deps_factory!r} is not callable"
                    raise ConfigError(msg)
            _check_tools(name, obj, set(cfg.tools))
            try:
                resolved = self.gateway.resolve(name, obj.model)
            except AgentHostError as exc:
                raise ConfigError(exc.message) from exc
            self._entries[name] = AgentEntry(
                name=name,
                agent=obj,
                model=resolved.model,
                model_label=resolved.label,
                model_source=resolved.source,
                description=cfg.description,
                deps_factory=factory,
                prompt_version=cfg.prompt_version or prompt_fingerprint(obj),
            )
        self.default = settings.default_agent_name()

    def get(self, name: str) -> AgentEntry:
        entry = self._entries.get(name)
        if entry is None:
            msg = f"agent {name!r} is not served here; known agents: {sorted(self._entries)}"
            raise NotFoundError(msg, code=ErrorCode.AGENT_NOT_FOUND)
        return entry

    def default_entry(self) -> AgentEntry:
        if self.default is None:
            msg = "no agents are configured"
            raise NotFoundError(msg, code=ErrorCode.AGENT_NOT_FOUND)
        return self.get(self.default)

    def __iter__(self) -> Iterator[AgentEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
