"""Who is calling: API keys and JWTs become a `Principal` with a role, an owner and scopes.

Credentials come as `X-API-Key: <key>` or `Authorization: Bearer <key or JWT>`. With
`[auth] mode = "none"` (or `auth = "none"`) every caller is an anonymous admin, and the server
logs a warning at start; that mode exists for local development only.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agenthost.config.auth import AuthSettings
from agenthost.config.roles import Role
from agenthost.errors import ErrorCode, ForbiddenError, UnauthorizedError
from agenthost.records import Payer, Visibility
from agenthost.security.jwt import JWTVerifier, looks_like_jwt
from agenthost.security.keys import ApiKey, KeyManager, parse_key

if TYPE_CHECKING:
    from collections.abc import Mapping


__all__ = ["Authenticator", "Principal"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agenthost"'}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `user_id` is the owner the caller acts as (a key's user, a JWT's user claim); a key with no
    user is a service key: it sees what it created and may name end users in requests.
    """

    subject: str
    role_name: str
    role: Role
    user_id: str | None = None
    team: str | None = None
    key: ApiKey | None = None

    @property
    def key_id(self) -> str | None:
        """The API key's id, when the caller used one of the stored keys."""
        return self.key.id if self.key is not None else None

    def may_run(self, agent: str) -> bool:
        """Role and key scope both allow runs of `agent`."""
        scope = self.key.agents if self.key is not None else None
        return self.role.may_run(agent) and (scope is None or agent in scope)

    def require_run(self, agent: str) -> None:
        """Raise 403 unless this caller may run `agent`."""
        if not self.may_run(agent):
            msg = f"role {self.role_name!r} may not run agent {agent!r}"
            raise ForbiddenError(msg)

    def require_model(self, model: str) -> None:
        """Raise 403 unless this caller may call the gateway model `model` directly."""
        scope = self.key.agents if self.key is not None else None
        if not self.role.may_call_model(model) or (scope is not None and model not in scope):
            raise ForbiddenError(f"role {self.role_name!r} may not call model {model!r}")

    def payer(self) -> Payer:
        """The key and team this caller's calls are charged to."""
        return Payer(self.key_id, self.key.budgets if self.key is not None else None, self.team)

    def run_owner(self, agent: str, requested_user: str | None) -> dict[str, Any]:
        """The `RunSpec` fields that tie a new run of `agent` to this caller (403 if not allowed)."""
        self.require_run(agent)
        return {
            "user_id": self.acting_user(requested_user),
            "key_id": self.key_id,
            "team": self.team,
            "max_tool_risk": self.role.max_tool_risk,
            "key_budget": self.key.budgets if self.key is not None else None,
            "key_limits": self.key.limits if self.key is not None else None,
            "key_rate_limits": self.key.rate_limits if self.key is not None else None,
            "actor": self.subject,
            "actor_user": self.user_id,
        }

    def require_admin(self) -> None:
        """Raise 403 unless the role is an admin role."""
        if not self.role.admin:
            raise ForbiddenError(f"role {self.role_name!r} may not use admin endpoints")

    def acting_user(self, requested: str | None) -> str | None:
        """The user a new run or call belongs to: the caller's own, or (service keys, roles that
        see all) the one the request names. Naming another user otherwise is a 403."""
        if self.user_id is None or requested is None or requested == self.user_id:
            return requested if self.user_id is None else self.user_id
        if self.role.sees == "all":
            return requested
        raise ForbiddenError(f"this credential acts for user {self.user_id!r} only")

    def visibility(self) -> Visibility:
        """Which rows this caller may see, as a value stores apply (`records.Visibility`)."""
        return Visibility(scope=self.role.sees, user_id=self.user_id, key_id=self.key_id, team=self.team)

    def sees(self, row: Mapping[str, Any]) -> bool:
        """Whether a run (or anything keyed like one: user_id, key_id, team) is visible to the caller."""
        return self.visibility().sees(row)


class Authenticator:
    """Turns request headers into a `Principal` (or a 401)."""

    def __init__(
        self,
        settings: AuthSettings,
        roles: dict[str, Role],
        keys: KeyManager,
        jwt: JWTVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.roles = roles
        self.keys = keys
        self.jwt = jwt
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after revoking or rotating it here)."""
        self._cache.pop(key_id, None)

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller behind `X-API-Key` or `Authorization: Bearer`, or `UnauthorizedError`."""
        if self.settings.mode == "none":
            return Principal("anonymous", "admin", self.roles["admin"])
        token = _credential(headers)
        if token is None:
            msg = "missing credentials: send an API key as X-API-Key or Authorization: Bearer"
            raise UnauthorizedError(msg, code=ErrorCode.MISSING_CREDENTIALS).with_headers(_CHALLENGE)
        admin = self.settings.admin_key
        if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
            return Principal("admin-key", "admin", self.roles["admin"])
        parsed = parse_key(token)
        if parsed is not None:
            return await self._from_key(*parsed)
        if self.jwt is not None and looks_like_jwt(token):
            identity = await self.jwt.verify(token)
            return Principal(
                f"jwt:{identity.user_id}",
                identity.role,
                self._role(identity.role),
                user_id=identity.user_id,
                team=identity.team,
            )
        raise UnauthorizedError("invalid API key", code=ErrorCode.INVALID_API_KEY).with_headers(_CHALLENGE)

    async def _from_key(self, key_id: str, secret: str) -> Principal:
        key = await self._lookup(key_id)
        now = datetime.now(UTC)
        # Same answer for an unknown id and a wrong secret: ids are not secret, but no oracle.
        if key is None or not key.matches(secret, now):
            raise UnauthorizedError("invalid API key", code=ErrorCode.INVALID_API_KEY).with_headers(
                _CHALLENGE
            )
        status = key.status(now)
        if status != "active":
            raise UnauthorizedError(f"API key is {status}", code=ErrorCode(f"key_{status}")).with_headers(
                _CHALLENGE
            )
        return Principal(
            f"key:{key.id}", key.role, self._role(key.role), user_id=key.user_id, team=key.team, key=key
        )

    def _role(self, name: str) -> Role:
        role = self.roles.get(name)
        if role is None:
            msg = f"credential has role {name!r}, which is not configured"
            raise UnauthorizedError(msg, code=ErrorCode.UNKNOWN_ROLE).with_headers(_CHALLENGE)
        return role

    async def _lookup(self, key_id: str) -> ApiKey | None:
        ttl = self.settings.key_cache_seconds
        hit = self._cache.get(key_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        key = await self.keys.get(key_id)
        if ttl > 0 and key is not None:
            if len(self._cache) > 10_000:  # noqa: PLR2004 - bound memory
                self._cache.clear()
            self._cache[key_id] = (now, key)
        return key


def _credential(headers: Mapping[str, str]) -> str | None:
    api_key = headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
