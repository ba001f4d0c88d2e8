"""API keys: created once and shown once, stored hashed, scoped, expiring, revocable, rotatable.

A key reads `ahk_<id>_<secret>`: the id finds the row, the 256-bit secret is compared by its
SHA-256 in constant time. A rotated key keeps its id (so budgets, rate limits and the ledger
continue) and gets a new secret; the old secret stays valid until the grace period ends.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from agenthost.costs.config import BudgetLimit
from agenthost.errors import InvalidRequestError, NotFoundError
from agenthost.storage.base import Store
from agenthost.storage.tables import api_keys, row_dict

__all__ = ["ApiKey", "KeyRateLimits", "KeySpec", "KeyStore", "hash_secret", "parse_key"]

PREFIX = "ahk"
_TOKEN = re.compile(r"^ahk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a key secret (the only form that is stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(token: str) -> tuple[str, str] | None:
    """`(key id, secret)` of a well-formed agenthost key, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


class KeyRateLimits(BaseModel):
    """A key's own rate limits; they replace `[rate_limits] per_key` for it (0 = unlimited)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=0, description="Requests per minute.")
    tokens_per_minute: int | None = Field(None, ge=0, description="Model tokens per minute.")


class KeySpec(BaseModel):
    """What a new key is (the body of `POST /v1/admin/keys`)."""

    model_config = ConfigDict(extra="forbid")

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
    budgets: BudgetLimit | None = Field(None, description="Per-key daily and monthly spend limits.")
    limits: dict[str, float | int] | None = Field(
        None, description="Per-run limits for runs made with this key (`[limits]` fields)."
    )


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    role: str
    user_id: str | None
    team: str | None
    agents: list[str] | None
    rate_limits: dict[str, Any] | None
    budgets: dict[str, Any] | None
    limits: dict[str, Any] | None
    expires_at: datetime | None
    created_at: datetime
    created_by: str | None
    rotated_at: datetime | None
    revoked_at: datetime | None
    secret_hash: str = field(repr=False)
    previous_hash: str | None = field(default=None, repr=False)
    previous_expires_at: datetime | None = None

    def status(self, now: datetime) -> str:
        """`active`, `expired` or `revoked`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def matches(self, secret: str, now: datetime) -> bool:
        """Whether `secret` is the key's current secret, or its previous one within the grace period."""
        digest = hash_secret(secret)
        current = hmac.compare_digest(digest, self.secret_hash)
        previous = (
            self.previous_hash is not None
            and self.previous_expires_at is not None
            and self.previous_expires_at > now
            and hmac.compare_digest(digest, self.previous_hash)
        )
        return current or previous

    def public(self, now: datetime) -> dict[str, Any]:
        """The key as listed: everything but secrets and their hashes."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "user_id": self.user_id,
            "team": self.team,
            "agents": self.agents,
            "rate_limits": self.rate_limits,
            "budgets": self.budgets,
            "limits": self.limits,
            "status": self.status(now),
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "rotated_at": self.rotated_at,
            "revoked_at": self.revoked_at,
            "previous_valid_until": self.previous_expires_at
            if self.previous_expires_at and self.previous_expires_at > now
            else None,
        }


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(**{name: row[name] for name in ApiKey.__dataclass_fields__})


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class KeyStore(Store):
    """API keys in agenthost's database."""

    async def create(self, spec: KeySpec, *, created_by: str | None) -> tuple[ApiKey, str]:
        """Store a new key; returns it and the full key text, which is never available again."""
        now = datetime.now(UTC)
        key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        secret = _new_secret()
        row = {
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
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(api_keys).values(**row))
        return _key(row), f"{PREFIX}_{key_id}_{secret}"

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, whatever its status."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        return _key(row_dict(row)) if row is not None else None

    async def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Every key, newest first."""
        query = sa.select(api_keys).order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_key(row_dict(row)) for row in rows]

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key at once (both its secrets). Revoking a revoked key changes nothing."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return await self.existing(key_id)

    async def rotate(self, key_id: str, grace: timedelta) -> tuple[ApiKey, str]:
        """Give the key a new secret; the current one keeps working for `grace`."""
        key = await self.existing(key_id)
        now = datetime.now(UTC)
        if key.status(now) != "active":
            msg = f"key {key_id} is {key.status(now)} and cannot be rotated"
            raise InvalidRequestError(msg, code="key_not_active", status=409)
        secret = _new_secret()
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(
                    secret_hash=hash_secret(secret),
                    previous_hash=key.secret_hash,
                    previous_expires_at=now + grace,
                    rotated_at=now,
                )
            )
        return await self.existing(key_id), f"{PREFIX}_{key_id}_{secret}"

    async def existing(self, key_id: str) -> ApiKey:
        """The key with this id, or 404 `key_not_found`."""
        key = await self.get(key_id)
        if key is None:
            raise NotFoundError(f"no API key {key_id!r}", code="key_not_found")
        return key
