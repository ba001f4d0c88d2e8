"""Sealing: personal content kept in DBOS's durable records is encrypted with its run's own key.

A durable run must record what it was asked and what each step produced (the prompt, model
responses, text deltas, tool values), so that a crash replays it without calling anything
twice. Those records live in DBOS's tables, which agenthost does not own. Instead of rewriting
them on erasure, agenthost seals that content with a per-run data key (AES-256-GCM) before DBOS
stores it, and keeps the key in its own `runs` row. Erasing a user or expiring a run deletes the
key with the rest of the row's content, and every DBOS record of the run becomes unreadable
(crypto-shredding). What DBOS keeps in clear is accounting: step kinds, model and tool names,
token counts, prices, outcomes.

Format: `s1.` + base64url(12-byte nonce + ciphertext and tag) of the value's JSON.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import from_json, to_json

from agenthost.errors import ContentErasedError

__all__ = ["KEY_BYTES", "Sealer", "new_data_key"]

KEY_BYTES = 32
_NONCE_BYTES = 12
_PREFIX = "s1."


def new_data_key() -> bytes:
    """A fresh random data key for one run (and the forks that share its records)."""
    return os.urandom(KEY_BYTES)


class Sealer:
    """Seals and opens JSON-able values with one run's data key (None: the key was erased)."""

    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key is not None else None

    @property
    def erased(self) -> bool:
        return self._aead is None

    def seal(self, value: Any) -> str:
        """`value` (JSON-able) encrypted; raises `ContentErasedError` without a key."""
        if self._aead is None:
            msg = "this run's data key was erased; nothing new can be sealed for it"
            raise ContentErasedError(msg)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, to_json(value), None)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str) -> Any:
        """The value sealed in `sealed`; `ContentErasedError` when the key is gone."""
        if self._aead is None:
            msg = "this run's content was erased (its data key is gone)"
            raise ContentErasedError(msg)
        if not sealed.startswith(_PREFIX):
            msg = "not sealed content"
            raise ValueError(msg)
        raw = base64.urlsafe_b64decode(sealed.removeprefix(_PREFIX))
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None)
        except InvalidTag as exc:
            msg = "sealed content does not open with this run's key"
            raise ValueError(msg) from exc
        return from_json(plain)
