"""API keys: created once and shown once, stored hashed, scoped, expiring, revocable, rotatable.

A key reads `ahk_<id>_<secret>`: the id finds the row, the 256-bit secret is compared by its
SHA-256 in constant time. A rotated key keeps its id (so budgets, rate limits and the ledger
continue) and gets a new secret; the old secret stays valid until the grace period ends.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from agenthost.config.costs import BudgetLimit
from agenthost.errors import ConflictError, ErrorCode, NotFoundError
from agenthost.storage.keys import ApiKey, KeyStore, hash_secret

__all__ = ["ApiKey", "KeyManager", "KeyRateLimits", "KeySpec", "hash_secret", "parse_key"]

PREFIX = "ahk"
_TOKEN = re.compile(r"^ahk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


def parse_key(token: str) -> tuple[str, str] | None:
    """`(key id, secret)` of a well-formed agenthost key, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


def _integral(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


class KeyRateLimits(BaseModel):
    """A key's own rate limits; they replace `[rate_limits] per_key` for it (0 = unlimited)."""

    # Strict: a request body is JSON; `"5"` is not a number (the OpenAPI document says integer).
    model_config = ConfigDict(extra="forbid", strict=True)

    requests_per_minute: int | None = Field(None, ge=0, description="Requests per minute.")
    tokens_per_minute: int | None = Field(None, ge=0, description="Model tokens per minute.")

    # JSON does not tell 5 from 5.0; text (`"5"`) stays refused (the model is strict).
    _ints = field_validator("requests_per_minute", "tokens_per_minute", mode="before")(_integral)


def _strict_budgets(value: object) -> object:
    # `BudgetLimit` is a configuration section (read leniently: environment values are text);
    # in a request body its numbers must be JSON numbers.
    if isinstance(value, dict):
        try:
            BudgetLimit.model_validate(value, strict=True)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    return value


class KeySpec(BaseModel):
    """What a new key is (the body of `POST /v1/admin/keys`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=128, description="Label shown in listings.")
    role: str = Field("user", min_length=1, max_length=64, description="Role name (`[roles]`).")
    user_id: str | None = Field(
        None, min_length=1, max_length=256, description="Owner: runs made with the key belong to this user."
    )
    team: str | None = Field(None, min_length=1, max_length=128, description="Owner team.")
    agents: list[str] | None = Field(
        None, description="Agents the key may use (narrows the role's); unset: the role's."
    )
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="Lifetime; unset: no expiry.")
    rate_limits: KeyRateLimits | None = Field(None, description="Per-key rate limits.")
    budgets: Annotated[BudgetLimit | None, BeforeValidator(_strict_budgets)] = Field(
        None, description="Per-key daily and monthly spend limits."
    )
    limits: dict[str, float | int] | None = Field(
        None, description="Per-run limits for runs made with this key (`[limits]` fields)."
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class KeyManager:
    """Creates, lists, revokes and rotates API keys (over the `KeyStore`)."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    async def create(self, spec: KeySpec, *, created_by: str | None) -> tuple[ApiKey, str]:
        """Store a new key; returns it and the full key text, which is never available again."""
        now = datetime.now(UTC)
        key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        secret = _new_secret()
        key = await self.store.create(
            {
                "id": key_id,
                "name": spec.name,
                "role": spec.role,
                "user_id": spec.user_id,
                "team": spec.team,
                "agents": spec.agents,
                "rate_limits": spec.rate_limits.model_dump(exclude_none=True) if spec.rate_limits else None,
                "budgets": spec.budgets.model_dump(exclude_none=True) if spec.budgets else None,
                "limits": spec.limits,
                "secret_hash": hash_secret(secret),
                "previous_hash": None,
                "previous_expires_at": None,
                "expires_at": now + timedelta(days=spec.expires_in_days) if spec.expires_in_days else None,
                "created_at": now,
                "created_by": created_by,
                "rotated_at": None,
                "revoked_at": None,
            }
        )
        return key, f"{PREFIX}_{key_id}_{secret}"

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, whatever its status."""
        return await self.store.get(key_id)

    async def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Every key, newest first."""
        return await self.store.list(include_revoked=include_revoked)

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key at once (both its secrets). Revoking a revoked key changes nothing."""
        await self.store.revoke(key_id, datetime.now(UTC))
        return await self.existing(key_id)

    async def rotate(self, key_id: str, grace: timedelta) -> tuple[ApiKey, str]:
        """Give the key a new secret; the current one keeps working for `grace`."""
        key = await self.existing(key_id)
        now = datetime.now(UTC)
        if key.status(now) != "active":
            msg = f"key {key_id} is {key.status(now)} and cannot be rotated"
            raise ConflictError(msg, code=ErrorCode.KEY_NOT_ACTIVE)
        secret = _new_secret()
        await self.store.rotate(key_id, hash_secret(secret), key.secret_hash, now + grace, now)
        return await self.existing(key_id), f"{PREFIX}_{key_id}_{secret}"

    async def existing(self, key_id: str) -> ApiKey:
        """The key with this id, or 404 `key_not_found`."""
        key = await self.store.get(key_id)
        if key is None:
            raise NotFoundError(f"no API key {key_id!r}", code=ErrorCode.KEY_NOT_FOUND)
        return key
