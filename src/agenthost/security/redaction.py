"""Detect and redact PII and secrets in text.

`Redactor.find` returns the entities in a text; `Redactor.redact` replaces them, either with a
placeholder (`[EMAIL]`, `[CREDIT_CARD]`, ...) or with a mask that keeps a few characters
(`j***@e***.com`, `****-****-****-1111`) and never more than 4 characters of a secret.
`Redactor.redact_value` does the same to every string inside nested dicts, lists and tuples.

Redaction is idempotent in both modes: neither a placeholder nor a mask is ever detected again,
because no detector accepts `[`, `]` or `*` where an entity's characters must be, and `redact`
repeats until nothing is found (an entity glued to another is only found once its neighbour is
replaced).

`redact` cuts a text into segments and redacts each one on its own; a stream
(`output.StreamRedactor`) cuts its text at the same places as it arrives (`segment_end`), so what a
stream sends joins up to exactly what `redact` gives the whole text, whatever the deltas.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from agenthost.errors import ConfigError
from agenthost.security.detectors import DETECTORS, PEM_HEADER, private_key_end

__all__ = [
    "ENTITY_TYPES",
    "LOG_SECRETS",
    "Finding",
    "RedactionMode",
    "Redactor",
    "log_masker",
    "segment_end",
]

RedactionMode = Literal["mask", "placeholder"]

ENTITY_TYPES: tuple[str, ...] = tuple(DETECTORS)
LOG_SECRETS = ("api_key", "jwt", "private_key")
"""What every log line is masked for (`observability/logging.py`): credentials, whoever logged them."""

# Passes of `redact` before giving up on reaching a text with nothing left to find; real text needs
# one, entities glued together need two or three.
_MAX_PASSES = 16

# On overlap the longest span wins; among equal lengths, the type earlier in this list.
_SPECIFICITY: dict[str, int] = {
    name: rank
    for rank, name in enumerate(
        (
            "private_key",
            "jwt",
            "api_key",
            "iban",
            "credit_card",
            "email",
            "us_ssn",
            "israeli_id",
            "ip_address",
            "phone",
        )
    )
}


# --- segments ------------------------------------------------------------------------------------
# A segment ends at the first quiet boundary at least `segment_chars` characters after its start: the
# end of a run of whitespace that no detector can match across or look across. Whether a boundary is
# quiet is decided from the segment so far and the one character after it, never from text further
# on, which is what lets a stream decide it as soon as that character arrives. Not quiet:
#   - one space between digits, capitals and parentheses (`4111 1111`, `(212) 555`, `GB82 WEST`);
#   - after `bearer` (the bearer-token pattern takes `Bearer <token>` as one key, where the token
#     alone might be a JWT), and after `version`, `ver`, `release`, `build` before a digit (such a
#     word makes an IPv4-shaped number a version);
#   - inside a private key block whose footer has not come yet.
# Anything else a detector looks at around an entity is one character that is not whitespace, which
# the start or end of a segment stands for exactly as the whitespace did. Without a quiet boundary a
# segment is cut at `_MAX_SEGMENT` characters, or once an open private key block ends (at most
# `_PEM_MAX` characters after its header): the most a stream ever holds back.
_MAX_SEGMENT = 16_384
_PEM_MAX = 16_384
_RUN_END = re.compile(r"\s+(?=\S)")
_JOIN_LEFT = frozenset(string.ascii_uppercase + ")")
_JOIN_RIGHT = frozenset(string.ascii_uppercase + "(")
_VERSION_WORDS = ("version", "ver", "ver.", "release", "build")


def _open_key_block(text: str, start: int, cut: int) -> re.Match[str] | None:
    """The header of a private key block in `text[start:cut]` that is still open at `cut`."""
    if text.find("-----BEGIN", start, cut) < 0:
        return None
    pos = start
    while (header := PEM_HEADER.search(text, pos, cut)) is not None:
        end, body = private_key_end(text, header.end(), cut)
        if end is not None:
            pos = end
        elif body == cut and cut - header.start() < _PEM_MAX:
            return header
        else:
            pos = header.start() + 1
    return None


def _quiet(text: str, start: int, cut: int) -> bool:
    """Whether no entity can span `cut` (the end of a run of whitespace) in the segment from `start`."""
    ws = cut - 1
    while ws > start and text[ws - 1].isspace():
        ws -= 1
    if ws == start:
        return True
    last, after = text[ws - 1], text[cut]
    if (
        cut - ws == 1
        and text[ws] == " "
        and (last.isdecimal() or last in _JOIN_LEFT)
        and (after.isdecimal() or after in _JOIN_RIGHT)
    ):
        return False
    word = text[max(start, ws - 7) : ws].lower()
    if word.endswith("bearer") or (after.isdecimal() and word.endswith(_VERSION_WORDS)):
        return False
    return _open_key_block(text, start, cut) is None


def segment_end(text: str, start: int, size: int, *, final: bool, scan: int = 0) -> tuple[int | None, int]:
    """Where the segment of `text` that starts at `start` ends (at least `size` characters on), and
    where to resume looking when more text arrives. None: the text so far does not tell yet (never
    when `final`, the whole text). `scan` is what an earlier call on a shorter `text` returned."""
    n = len(text)
    limit = start + _MAX_SEGMENT
    stop = min(n, limit)
    pos = max(scan, start + max(size, 1) - 1)
    while (m := _RUN_END.search(text, pos, stop)) is not None:
        if _quiet(text, start, m.end()):
            return m.end(), 0
        pos = m.end()
    if n < limit:
        return (n if final else None), max(pos, n - 1)
    cut = limit
    while cut < limit + _PEM_MAX and (header := _open_key_block(text, start, cut)) is not None:
        end, body = private_key_end(text, header.end(), n)
        close = min(end or n + 1, body + 1 if body < n else n + 1, header.start() + _PEM_MAX)
        if close > n:
            return (n if final else None), limit - 1
        cut = close
    return min(cut, limit + _PEM_MAX), 0


@dataclass(frozen=True)
class Finding:
    """One detected entity: its type and where it is (`text == source[start:end]`)."""

    type: str
    start: int
    end: int
    text: str


def _mask_keep(text: str, *, head: int = 0, tail: int = 0, only: str = r"[0-9A-Za-z]") -> str:
    """Replace the characters matching `only` with `*`, except the first `head` and last `tail` of them."""
    positions = [m.start() for m in re.finditer(only, text)]
    keep = set(positions[:head]) | set(positions[len(positions) - tail :] if tail else [])
    return "".join("*" if i in set(positions) - keep else ch for i, ch in enumerate(text))


def _mask_email(text: str) -> str:
    local, _, domain = text.partition("@")
    labels = domain.split(".")
    return f"{local[0]}***@{labels[0][0]}***.{labels[-1]}"


def _mask_ip(text: str) -> str:
    if ":" in text:
        first = text.split(":", 1)[0]
        return f"{first}:****" if first else "****"
    return text.split(".", 1)[0] + ".*.*.*"


def _mask_prefix(text: str, keep: int = 4) -> str:
    if text[:7].lower() == "bearer ":
        return text[:7] + "*" * 8
    return text[:keep] + "*" * 8


def _mask(entity: str, text: str) -> str:
    result: str
    match entity:
        case "email":
            result = _mask_email(text)
        case "credit_card" | "us_ssn":
            result = _mask_keep(text, tail=4)
        case "phone" | "israeli_id":
            result = _mask_keep(text, tail=2)
        case "iban":
            result = _mask_keep(text, head=2, tail=2)
        case "ip_address":
            result = _mask_ip(text)
        case "api_key" | "jwt":
            result = _mask_prefix(text)
        case _:
            result = "*" * 8
    return result


class Redactor:
    """Finds and redacts the configured entity types (all of `ENTITY_TYPES` by default)."""

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        mode: RedactionMode = "placeholder",
        segment_chars: int = 32,
    ) -> None:
        chosen = tuple(ENTITY_TYPES if entities is None else entities)
        unknown = sorted(set(chosen) - set(ENTITY_TYPES))
        if unknown:
            raise ConfigError(
                f"unknown redaction entity type(s) {', '.join(unknown)}; valid: {', '.join(ENTITY_TYPES)}",
                details={"unknown": unknown, "valid": list(ENTITY_TYPES)},
            )
        if mode not in ("mask", "placeholder"):
            raise ConfigError(f"unknown redaction mode {mode!r}; valid: mask, placeholder")
        self.entities: tuple[str, ...] = tuple(e for e in ENTITY_TYPES if e in set(chosen))
        self.mode: RedactionMode = mode
        # The shortest segment (see `segment_end`): how much text a stream holds back at least.
        self.segment_chars = max(1, segment_chars)

    def find(self, text: str) -> list[Finding]:
        """The entities in `text`: non-overlapping, sorted by position."""
        candidates = [
            (start, end, entity)
            for entity in self.entities
            for start, end in DETECTORS[entity](text)
            if end > start
        ]
        candidates.sort(key=lambda c: (-(c[1] - c[0]), _SPECIFICITY[c[2]], c[0]))
        chosen: list[tuple[int, int, str]] = []
        for start, end, entity in candidates:
            if all(end <= s or start >= e for s, e, _ in chosen):
                chosen.append((start, end, entity))
        chosen.sort()
        return [
            Finding(type=entity, start=start, end=end, text=text[start:end]) for start, end, entity in chosen
        ]

    def replacement(self, finding: Finding) -> str:
        """What `redact` puts in place of `finding`."""
        if self.mode == "placeholder":
            return f"[{finding.type.upper()}]"
        return _mask(finding.type, finding.text)

    def redact(self, text: str) -> str:
        """`text` with every entity replaced by its placeholder or mask, segment by segment (the
        segments a stream of it is cut into, see `segment_end`)."""
        parts: list[str] = []
        start = 0
        while start < len(text):
            end, _ = segment_end(text, start, self.segment_chars, final=True)
            assert end is not None  # never None when final
            parts.append(self.redact_segment(text[start:end]))
            start = end
        return "".join(parts)

    def redact_segment(self, text: str) -> str:
        """`text` redacted as one segment.

        Detectors require a boundary around an entity, so an entity glued to another one
        (`...::1+972 54 ...`) may only be found once its neighbour is replaced. Redaction therefore
        repeats until nothing is found, which is what makes it idempotent.
        """
        for _ in range(_MAX_PASSES):
            findings = self.find(text)
            if not findings:
                break
            parts: list[str] = []
            pos = 0
            for finding in findings:
                parts.append(text[pos : finding.start])
                parts.append(self.replacement(finding))
                pos = finding.end
            parts.append(text[pos:])
            text = "".join(parts)
        return text

    def redact_value(self, value: Any) -> Any:
        """`value` with every string inside dicts, lists and tuples redacted (keys included)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_value(k): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.redact_value(v) for v in value)
        return value


def log_masker() -> Callable[[Any], Any]:
    """What masks every log line (`observability.logging.configure_logging(..., mask=...)`): any
    value, nested values included, with the credentials in it (`LOG_SECRETS`) masked."""
    return Redactor(LOG_SECRETS, mode="mask").redact_value
