"""Stream tokens: short-lived, signed credentials that let a browser's `EventSource` follow a run.

A browser's `EventSource` cannot send headers, so it cannot send an API key. A page asks
`POST /v1/stream-tokens` (with its key) for a token scoped to one run or one thread, and opens
`GET /v1/runs/{id}/events?token=...`. The server accepts a token there and nowhere else.

A token is a JWT (HS256, `aud` `agenthost:stream`) signed with a key derived from
`[server.stream_tokens] secret`, or, when that is unset, from the deployment secret agenthost keeps
in its database: either way it survives restarts and every replica sharing the configuration (or
the database) accepts it. It carries who minted it, so the request it admits counts against the
same rate limits and sees the same runs; a token minted with an API key stops working as soon as
that key is revoked or expires, and one minted with the admin key when that key changes. Being a
JWT, it is masked in every log line by the log masker (`security/redaction.py`, `jwt`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import jwt

from agenthost.errors import ErrorCode, InvalidRequestError, UnauthorizedError
from agenthost.security.auth import Principal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agenthost.config.roles import Role
    from agenthost.config.server import StreamTokenSettings
    from agenthost.security.auth import Authenticator

__all__ = ["MintedToken", "SecretSource", "StreamScope", "StreamTokens"]

_ISSUER = "agenthost"
_AUDIENCE = "agenthost:stream"
_ALGORITHM = "HS256"
_LABEL = b"agenthost stream-token v1"
# Clock skew tolerated between the replica that minted a token and the one checking it.
_LEEWAY_SECONDS = 5
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agenthost"'}


class SecretSource(Protocol):
    """Where the deployment secret lives when no stream-token secret is configured
    (`storage/audit.py` `AuditStore`: one row shared by every process on the database)."""

    async def secret(self, candidate: str) -> str: ...


@dataclass(frozen=True)
class StreamScope:
    """What a token admits: the events of one run, or of any run on one thread."""

    run_id: str | None = None
    thread_id: str | None = None

    def __post_init__(self) -> None:
        if (self.run_id is None) == (self.thread_id is None):
            msg = "a stream scope names exactly one of run_id and thread_id"
            raise ValueError(msg)

    def covers(self, run: Mapping[str, Any]) -> bool:
        """Whether the run (a `runs` row) is inside this scope."""
        if self.run_id is not None:
            return bool(run["id"] == self.run_id)
        return bool(run.get("thread_id") == self.thread_id)

    def claim(self) -> dict[str, str]:
        """The scope as the token's `scope` claim (and the API's `scope` field)."""
        return {"run_id": self.run_id} if self.run_id is not None else {"thread_id": str(self.thread_id)}

    @classmethod
    def from_claim(cls, value: object) -> StreamScope:
        if isinstance(value, dict) and len(value) == 1:
            run_id, thread_id = value.get("run_id"), value.get("thread_id")
            if isinstance(run_id, str) or isinstance(thread_id, str):
                return cls(run_id=run_id, thread_id=thread_id)
        raise _invalid("malformed scope")


@dataclass(frozen=True)
class MintedToken:
    """A token as `POST /v1/stream-tokens` returns it."""

    token: str
    expires_at: datetime
    scope: StreamScope


class StreamTokens:
    """Mints and verifies stream tokens for one process.

    Example:
        >>> from agenthost.config.server import StreamTokenSettings
        >>> tokens = StreamTokens(StreamTokenSettings(secret="s" * 32), None, None)
        >>> tokens.ttl(None), tokens.ttl(60)
        (300, 60)
    """

    def __init__(
        self,
        settings: StreamTokenSettings,
        authenticator: Authenticator | None,
        fallback: SecretSource | None,
    ) -> None:
        self.settings = settings
        self._authenticator = authenticator
        self._fallback = fallback
        self._key: bytes | None = None

    def ttl(self, requested: int | None) -> int:
        """The lifetime of a new token: `requested` (422 past `max_ttl_seconds`), else the default."""
        if requested is None:
            return self.settings.default_ttl_seconds
        if not 1 <= requested <= self.settings.max_ttl_seconds:
            msg = f"ttl_seconds must be from 1 to {self.settings.max_ttl_seconds} ([server.stream_tokens])"
            raise InvalidRequestError(msg)
        return requested

    async def mint(self, principal: Principal, scope: StreamScope, ttl_seconds: int | None) -> MintedToken:
        """A token for `principal` limited to `scope`; the caller checked the principal sees it."""
        key = await self._signing_key()
        now = datetime.now(UTC).replace(microsecond=0)
        expires_at = now + timedelta(seconds=self.ttl(ttl_seconds))
        claims: dict[str, Any] = {
            "iss": _ISSUER,
            "aud": _AUDIENCE,
            "iat": now,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(9),
            "sub": principal.subject,
            "scope": scope.claim(),
            **self._credential_claims(principal, key),
        }
        return MintedToken(jwt.encode(claims, key, algorithm=_ALGORITHM), expires_at, scope)

    async def verify(self, token: str) -> tuple[Principal, StreamScope]:
        """The caller a token stands for (as of now: a revoked key is refused) and its scope."""
        key = await self._signing_key()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                issuer=_ISSUER,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "scope", "cred"]},
            )
        except jwt.ExpiredSignatureError:
            msg = "stream token expired: mint a new one with POST /v1/stream-tokens"
            raise UnauthorizedError(msg, code=ErrorCode.STREAM_TOKEN_EXPIRED).with_headers(
                _CHALLENGE
            ) from None
        except jwt.InvalidTokenError:
            raise _invalid("not a stream token this server issued") from None
        scope = StreamScope.from_claim(claims["scope"])
        return await self._principal(claims, key), scope

    def _credential_claims(self, principal: Principal, key: bytes) -> dict[str, Any]:
        if principal.key is not None:
            return {"cred": "key", "kid": principal.key.id}
        if principal.subject == "admin-key":
            return {"cred": "admin", "akf": self._admin_fingerprint(key)}
        if principal.subject == "anonymous":
            return {"cred": "none"}
        return {"cred": "jwt", "user": principal.user_id, "role": principal.role_name, "team": principal.team}

    async def _principal(self, claims: Mapping[str, Any], key: bytes) -> Principal:
        authenticator = self._authenticator
        if authenticator is None:
            raise _invalid("stream tokens are not accepted by this process")
        kind = claims["cred"]
        if kind == "key":
            stored = await authenticator.keys.get(str(claims.get("kid")))
            if stored is None:
                raise _invalid("the token's API key does not exist")
            status = stored.status(datetime.now(UTC))
            if status != "active":
                msg = f"the API key this stream token was minted with is {status}"
                raise UnauthorizedError(msg, code=ErrorCode(f"key_{status}")).with_headers(_CHALLENGE)
            return Principal(
                f"key:{stored.id}",
                stored.role,
                _role(authenticator, stored.role),
                user_id=stored.user_id,
                team=stored.team,
                key=stored,
            )
        if kind == "admin":
            fingerprint = self._admin_fingerprint(key)
            if fingerprint is None or not hmac.compare_digest(str(claims.get("akf")), fingerprint):
                raise _invalid("the admin key this stream token was minted with is no longer configured")
            return Principal("admin-key", "admin", _role(authenticator, "admin"))
        if kind == "none" and authenticator.settings.mode == "none":
            return Principal("anonymous", "admin", _role(authenticator, "admin"))
        if kind == "jwt" and authenticator.jwt is not None:
            role = str(claims.get("role"))
            user, team = claims.get("user"), claims.get("team")
            return Principal(
                str(claims["sub"]),
                role,
                _role(authenticator, role),
                user_id=user if isinstance(user, str) else None,
                team=team if isinstance(team, str) else None,
            )
        raise _invalid("the credential this stream token was minted with is no longer accepted")

    def _admin_fingerprint(self, key: bytes) -> str | None:
        """A keyed digest of the configured admin key: a token minted with it dies when it changes."""
        admin = self._authenticator.settings.admin_key if self._authenticator is not None else None
        if admin is None:
            return None
        return hmac.new(key, admin.get_secret_value().encode(), hashlib.sha256).hexdigest()[:32]

    async def _signing_key(self) -> bytes:
        if self._key is None:
            configured = self.settings.secret
            if configured is not None:
                material = configured.get_secret_value().encode()
            elif self._fallback is not None:
                # Created once per database by the first process that asks; every replica reads it.
                material = (await self._fallback.secret(secrets.token_hex(32))).encode()
            else:
                msg = "no stream-token secret: set [server.stream_tokens] secret"
                raise UnauthorizedError(msg, code=ErrorCode.INVALID_STREAM_TOKEN)
            # Derived, never the material itself: the same secret may serve another purpose.
            self._key = hmac.new(material, _LABEL, hashlib.sha256).digest()
        return self._key


def _role(authenticator: Authenticator, name: str) -> Role:
    role = authenticator.roles.get(name)
    if role is None:
        msg = f"stream token has role {name!r}, which is not configured"
        raise UnauthorizedError(msg, code=ErrorCode.UNKNOWN_ROLE).with_headers(_CHALLENGE)
    return role


def _invalid(reason: str) -> UnauthorizedError:
    return UnauthorizedError(
        f"invalid stream token: {reason}", code=ErrorCode.INVALID_STREAM_TOKEN
    ).with_headers(_CHALLENGE)
