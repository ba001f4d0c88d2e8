"""Output redaction: PII and secrets in model output and tool results are redacted before they
leave the server (responses, SSE events, stored run records) and so before they reach any log.

`[redaction]` sets the default and `[agents.<name>.redaction]` replaces it for one agent: which
entity types, and `placeholder` (`[EMAIL]`) or `mask` (`j***@e***.com`).

Streamed text is redacted as it flows: `StreamRedactor` holds back the last `hold_chars`
characters (and anything from an unfinished `-----BEGIN ... PRIVATE KEY` block), so an entity
split across deltas is still seen whole; what it holds back comes out at the end of the model
call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agenthost.security.redaction import ENTITY_TYPES, Redactor

if TYPE_CHECKING:
    from agenthost.settings import Settings

__all__ = ["OutputRedaction", "RedactionSettings", "StreamRedactor"]

_PEM_BEGIN = "-----BEGIN"
_PEM_MAX = 16_384


class RedactionSettings(BaseModel):
    """`[redaction]` (and `[agents.<name>.redaction]`): what is redacted in output and tool results."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Redact model output, tool calls and tool results.")
    entities: list[str] | None = Field(
        None, description=f"Entity types to redact; unset: all ({', '.join(ENTITY_TYPES)})."
    )
    mode: Literal["placeholder", "mask"] = Field(
        "placeholder",
        description="`placeholder`: `[EMAIL]`; `mask`: keep a few characters (`j***@e***.com`).",
    )
    hold_chars: int = Field(
        32, ge=16, le=4096, description="Streamed text held back so entities split across deltas are seen."
    )

    @field_validator("entities")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(ENTITY_TYPES))
        if unknown:
            msg = f"unknown entity types {unknown}; known: {list(ENTITY_TYPES)}"
            raise ValueError(msg)
        return value


class StreamRedactor:
    """Redacts text that arrives in pieces; `feed` returns what is safe to send now."""

    def __init__(self, redactor: Redactor, hold_chars: int) -> None:
        self.redactor = redactor
        self.hold = hold_chars
        self.pending = ""

    def reset(self) -> None:
        """Forget held text (the model call is being made again)."""
        self.pending = ""

    def feed(self, delta: str) -> str:
        """Add a delta; return the redacted text that can no longer be part of an unseen entity."""
        self.pending += delta
        if len(self.pending) <= self.hold:
            return ""
        cut = len(self.pending) - self.hold
        findings = self.redactor.find(self.pending)
        # A key block is held whole until it is found complete (up to a size no key reaches).
        begin = self.pending.rfind(_PEM_BEGIN)
        whole = any(f.start <= begin < f.end for f in findings)
        if begin >= 0 and not whole and len(self.pending) - begin < _PEM_MAX:
            cut = min(cut, begin)
        moved = True
        while moved and cut > 0:
            # Never cut inside a word (tokens, keys and JWTs are unbroken runs of characters) or
            # inside an entity (phone numbers and card numbers contain spaces).
            while cut > 0 and not self.pending[cut - 1].isspace():
                cut -= 1
            inside = [f.start for f in findings if f.start < cut < f.end]
            moved = bool(inside)
            if inside:
                cut = min(inside)
        if cut <= 0:
            return ""
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self.redactor.redact(ready)

    def flush(self) -> str:
        """Everything still held, redacted (at the end of a model call)."""
        ready, self.pending = self.pending, ""
        return self.redactor.redact(ready) if ready else ""


class OutputRedaction:
    """The redactor of each agent (its own `[agents.<name>.redaction]`, else `[redaction]`)."""

    def __init__(self, settings: Settings) -> None:
        self.default = settings.redaction
        self._agents: dict[str, RedactionSettings] = {
            name: agent.redaction for name, agent in settings.agents.items() if agent.redaction is not None
        }
        self._redactors: dict[str | None, Redactor | None] = {}

    def settings_for(self, agent: str | None) -> RedactionSettings:
        """The redaction settings that apply to `agent` (None: the gateway's own calls)."""
        return self._agents.get(agent or "", self.default)

    def redactor(self, agent: str | None) -> Redactor | None:
        """The agent's redactor, or None when redaction is off for it."""
        if agent not in self._redactors:
            config = self.settings_for(agent)
            self._redactors[agent] = Redactor(config.entities, config.mode) if config.enabled else None
        return self._redactors[agent]

    def stream(self, agent: str | None) -> StreamRedactor | None:
        """A fresh stream redactor for one model call's text, or None when redaction is off."""
        redactor = self.redactor(agent)
        return None if redactor is None else StreamRedactor(redactor, self.settings_for(agent).hold_chars)

    def value(self, agent: str | None, value: Any) -> Any:
        """`value` with every string in it redacted for `agent` (unchanged when off)."""
        redactor = self.redactor(agent)
        return value if redactor is None else redactor.redact_value(value)
