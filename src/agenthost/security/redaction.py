"""Detect and redact PII and secrets in text.

`Redactor.find` returns the entities in a text; `Redactor.redact` replaces them, either with a
placeholder (`[EMAIL]`, `[CREDIT_CARD]`, ...) or with a mask that keeps a few characters
(`j***@e***.com`, `****-****-****-1111`) and never more than 4 characters of a secret.
`Redactor.redact_value` does the same to every string inside nested dicts, lists and tuples.

Redaction is idempotent in both modes: neither a placeholder nor a mask is ever detected again,
because no detector accepts `[`, `]` or `*` where an entity's characters must be, and `redact`
repeats until nothing is found (an entity glued to another is only found once its neighbour is
replaced).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from agenthost.errors import ConfigError
from agenthost.security.detectors import DETECTORS

__all__ = ["ENTITY_TYPES", "Finding", "RedactionMode", "Redactor"]

RedactionMode = Literal["mask", "placeholder"]

ENTITY_TYPES: tuple[str, ...] = tuple(DETECTORS)

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

    def __init__(self, entities: Iterable[str] | None = None, mode: RedactionMode = "placeholder") -> None:
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
        """`text` with every entity replaced by its placeholder or mask.

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
