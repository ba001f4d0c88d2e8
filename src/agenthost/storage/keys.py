"""API keys in agenthost's database (`api_keys`): rows without secrets, only their SHA-256.

The key semantics (the `ahk_<id>_<secret>` form, hashing, rotation grace) are the security
layer's (`security/keys.py`); this store keeps and changes rows.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agenthost.storage.base import Store
from agenthost.storage.tables import api_keys, row_dict

__all__ = ["ApiKey", "KeyStore", "hash_secret"]


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a key secret (the only form that is stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


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


class KeyStore(Store):
    """Reads and writes `api_keys`."""

    async def create(self, row: dict[str, Any]) -> ApiKey:
        """Insert a new key row (every column of `api_keys`)."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(api_keys).values(**row))
        return _key(row)

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

    async def revoke(self, key_id: str, at: datetime) -> None:
        """Revoke a key (both its secrets); a revoked key stays as it is."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    async def rotate(
        self, key_id: str, secret_hash: str, previous: str, previous_until: datetime, at: datetime
    ) -> None:
        """Give the key a new secret hash; `previous` stays valid until `previous_until`."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(
                    secret_hash=secret_hash,
                    previous_hash=previous,
                    previous_expires_at=previous_until,
                    rotated_at=at,
                )
            )
