"""Output redaction: PII and secrets in model output and tool results are redacted before they
leave the server (responses, SSE events, stored run records) and so before they reach any log.

`[redaction]` sets the default and `[agents.<name>.redaction]` replaces it for one agent: which
entity types, and `placeholder` (`[EMAIL]`) or `mask` (`j***@e***.com`).

Streamed text is redacted as it flows: `StreamRedactor` sends it segment by segment, cut where
`Redactor.redact` cuts the whole text (`redaction.segment_end`: at least `hold_chars` characters,
ending where no entity can continue, a private key block whole), so an entity split across deltas
is still seen whole and the pieces sent join up to the redacted final output; what it holds back
comes out at the end of the model call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenthost.config.security import RedactionSettings
from agenthost.security.redaction import Redactor, segment_end

if TYPE_CHECKING:
    from agenthost.settings import Settings

__all__ = ["OutputRedaction", "StreamRedactor"]


class StreamRedactor:
    """Redacts text that arrives in pieces; `feed` returns what is safe to send now.

    The text is cut into the segments `redactor.redact` would cut the whole text into, each
    redacted once it is complete, so the pieces joined equal `redactor.redact(whole text)`.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.pending = ""
        self._scan = 0  # where `segment_end` resumes in `pending`

    def reset(self) -> None:
        """Forget held text (the model call is being made again)."""
        self.pending = ""
        self._scan = 0

    def _take(self, *, final: bool) -> str:
        parts: list[str] = []
        while self.pending:
            cut, self._scan = segment_end(
                self.pending, 0, self.redactor.segment_chars, final=final, scan=self._scan
            )
            if cut is None:
                break
            parts.append(self.redactor.redact_segment(self.pending[:cut]))
            self.pending = self.pending[cut:]
        return "".join(parts)

    def feed(self, delta: str) -> str:
        """Add a delta; return the redacted segments it completed."""
        self.pending += delta
        return self._take(final=False)

    def flush(self) -> str:
        """Everything still held, redacted (at the end of a model call)."""
        text = self._take(final=True)
        self._scan = 0
        return text


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
            self._redactors[agent] = (
                Redactor(config.entities, config.mode, config.hold_chars) if config.enabled else None
            )
        return self._redactors[agent]

    def stream(self, agent: str | None) -> StreamRedactor | None:
        """A fresh stream redactor for one model call's text, or None when redaction is off."""
        redactor = self.redactor(agent)
        return None if redactor is None else StreamRedactor(redactor)

    def value(self, agent: str | None, value: Any) -> Any:
        """`value` with every string in it redacted for `agent` (unchanged when off)."""
        redactor = self.redactor(agent)
        return value if redactor is None else redactor.redact_value(value)
