"""JWT bearer tokens: verify a token and map its claims to a user, a role and a team.

The key source decides the algorithms, never the token. `[auth.jwt]` names exactly one source:
an HMAC `secret` (HS256/384/512), or a public key (`public_key`, `public_key_file`) or a JWKS URL
(RS*, PS*, ES*, EdDSA). HMAC and public-key algorithms never mix in one configuration, a static
public key narrows the list further to the algorithms of its key type, and a JWKS key is used only
with the algorithm bound to it. So `alg: none`, an HS256 token "signed" with the RSA public key
PEM as the HMAC secret, or an ES256 token against an RSA key are all refused before any signature
check (algorithm confusion, RFC 8725 §2.1).

JWKS keys are cached for `jwks_cache_seconds`; a token with an unknown `kid` triggers one refresh,
at most once per `jwks_min_refresh_seconds` (a flood of made-up kids cannot hammer the endpoint);
when the endpoint is down the last good keys keep working. The fetch (PyJWT's `PyJWKClient`,
blocking urllib) runs in a worker thread, off the event loop.

Example:
    >>> import asyncio, jwt as pyjwt, time
    >>> settings = JWTSettings(secret="x" * 32, audience="agenthost")  # pragma: allowlist secret
    >>> now = int(time.time())
    >>> claims = {"sub": "alice", "role": "operator", "aud": "agenthost", "iat": now, "exp": now + 60}
    >>> token = pyjwt.encode(claims, "x" * 32, algorithm="HS256")
    >>> identity = asyncio.run(JWTVerifier(settings).verify(token))
    >>> identity.user_id, identity.role, identity.team
    ('alice', 'operator', None)
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.exceptions import InvalidJTIError, InvalidSubjectError
from jwt.types import Options

from agenthost._version import __version__
from agenthost.config.auth import JWTSettings, compatible_algorithms, load_public_key
from agenthost.errors import ConfigError, ErrorCode, UnauthorizedError

__all__ = [
    "JWTIdentity",
    "JWTVerifier",
    "looks_like_jwt",
]

_log = structlog.get_logger(__name__)


MAX_TOKEN_LENGTH = 8192
"""Longer bearer values are refused without parsing."""
_VerifyingKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_MAX_IDENTITY_LENGTH = 256
_MIN_RSA_BITS = 2048  # NIST SP 800-131A; PyJWT refuses shorter keys too (enforce_minimum_key_length)
_CHALLENGE = 'Bearer realm="agenthost", error="invalid_token"'


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer value has the shape of a compact JWS: three base64url segments.

    The signature segment may be empty (an unsigned `alg: none` token is still routed to the JWT
    verifier, which refuses it). An agenthost API key (`ahk_<id>_<secret>`) has no dots.

    Example:
        >>> looks_like_jwt("e30.e30.c2ln"), looks_like_jwt("ahk_x_y")
        (True, False)
    """
    return len(token) <= MAX_TOKEN_LENGTH and _JWT_SHAPE.match(token) is not None


@dataclass(frozen=True)
class JWTIdentity:
    """Who a verified token speaks for."""

    user_id: str
    """The user claim (`sub` by default)."""
    role: str
    """The role claim, or `default_role` when the token has none."""
    team: str | None
    """The team claim, if any."""
    claims: dict[str, Any]
    """Every verified claim of the token."""
    expires_at: datetime
    """`exp`, in UTC."""


def _invalid(reason: str) -> UnauthorizedError:
    error = UnauthorizedError(f"invalid token: {reason}", code=ErrorCode.INVALID_TOKEN)
    error.headers["WWW-Authenticate"] = _CHALLENGE
    return error


def _reason(exc: jwt.PyJWTError) -> str:  # noqa: C901, PLR0911 - one answer per failure kind
    # PyJWT's own messages are not echoed: short, stable reasons only.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not yet valid (nbf or iat in the future)"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim `{exc.claim}`"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.InvalidKeyError):
        return "signing key not usable"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "malformed `iat`"
    if isinstance(exc, InvalidSubjectError):
        return "malformed `sub`"
    if isinstance(exc, InvalidJTIError):
        return "malformed `jti`"
    if isinstance(exc, jwt.DecodeError):
        return "malformed token"
    return "rejected"


class _JWKSKeys:
    """The signing keys of a JWKS endpoint: cached, refreshed, rate-limited, outage-tolerant.

    PyJWKClient fetches and parses (http(s) only, no redirects, a timeout); the cache lives here
    because PyJWKClient's cache forgets its keys once they expire even when the endpoint is down, and its
    lookups block a thread while a fetch is in flight.
    """

    def __init__(self, settings: JWTSettings) -> None:
        assert settings.jwks_url is not None
        self._url = settings.jwks_url
        self._algorithms = frozenset(settings.algorithms)
        self._cache_seconds = settings.jwks_cache_seconds
        self._min_refresh = settings.jwks_min_refresh_seconds
        self._client = jwt.PyJWKClient(
            settings.jwks_url,
            cache_jwk_set=False,
            timeout=settings.jwks_timeout_seconds,
            # urllib's default User-Agent is refused by some CDNs in front of identity providers.
            headers={"User-Agent": f"agenthost/{__version__}"},
        )
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """JWKS fetches attempted so far (for tests and metrics)."""

    async def key(self, kid: str) -> jwt.PyJWK:
        """The signing key with this `kid`, refreshing the set when it is stale or lacks it."""
        key = self._keys.get(kid)
        fresh = self._fetched_at is not None and time.monotonic() - self._fetched_at < self._cache_seconds
        if key is not None and (fresh or self._lock.locked()):
            return key  # while another request refreshes, keep serving the cached key
        await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise _invalid("unknown key id" if self._fetched_at is not None else "signing keys unavailable")
        return key

    async def _refresh(self) -> None:
        seen = self.fetches
        async with self._lock:
            if self.fetches != seen:
                return  # a fetch finished while this request waited: use its result
            now = time.monotonic()
            if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                return
            self._attempted_at = now
            self.fetches += 1
            try:
                jwk_set = await asyncio.to_thread(self._client.get_jwk_set)
            except Exception as exc:  # any failure keeps the last good keys
                _log.warning(
                    "jwks_refresh_failed",
                    url=self._url,
                    error=f"{type(exc).__name__}: {exc}",
                    cached_keys=len(self._keys),
                )
                return
            keys: dict[str, jwt.PyJWK] = {}
            for key in jwk_set.keys:
                usable = key.public_key_use in {"sig", None} and key.algorithm_name in self._algorithms
                if key.key_id and usable:
                    keys.setdefault(key.key_id, key)
            if not keys:
                _log.warning("jwks_no_usable_keys", url=self._url, algorithms=sorted(self._algorithms))
                return
            self._keys = keys
            self._fetched_at = time.monotonic()


class JWTVerifier:
    """Verifies JWT bearer tokens against `[auth.jwt]`; one instance per process.

    `config_dir` resolves a relative `public_key_file` (pass `Settings.config_dir`).
    """

    def __init__(self, settings: JWTSettings, *, config_dir: Path | None = None) -> None:
        self.settings = settings
        self._static_key: _VerifyingKey | bytes | None = None
        self._jwks: _JWKSKeys | None = None
        algorithms = frozenset(settings.algorithms)
        if settings.secret is not None:
            self._static_key = settings.secret.get_secret_value().encode()
        elif settings.jwks_url is not None:
            self._jwks = _JWKSKeys(settings)
        else:
            key = self._read_public_key(settings, config_dir)
            usable = algorithms & compatible_algorithms(key)
            if not usable:
                msg = (
                    f"[auth.jwt] algorithms {settings.algorithms} do not fit the public key, which "
                    f"verifies {sorted(compatible_algorithms(key))}"
                )
                raise ConfigError(msg)
            self._static_key = key
            algorithms = usable
        self.algorithms = algorithms
        """The `alg` values accepted, after narrowing to the key type."""
        required = {"exp", *settings.required_claims}
        if settings.max_lifetime_seconds is not None or settings.max_age_seconds is not None:
            required.add("iat")
        self._options: Options = {
            "require": sorted(required),
            "enforce_minimum_key_length": True,
            "strict_aud": False,
        }

    @property
    def jwks_fetches(self) -> int:
        """JWKS fetches attempted so far (0 without a JWKS URL)."""
        return self._jwks.fetches if self._jwks is not None else 0

    @staticmethod
    def _read_public_key(settings: JWTSettings, config_dir: Path | None) -> _VerifyingKey:
        if settings.public_key is not None:
            key = load_public_key(settings.public_key)
        else:
            assert settings.public_key_file is not None
            path = settings.public_key_file
            if not path.is_absolute() and config_dir is not None:
                path = config_dir / path
            try:
                key = load_public_key(path.read_bytes())
            except OSError as exc:
                msg = f"[auth.jwt] public_key_file: cannot read {str(path)!r}: {exc.strerror}"
                raise ConfigError(msg) from exc
            except ValueError:
                msg = f"[auth.jwt] public_key_file: {str(path)!r} is not a PEM public key or certificate"
                raise ConfigError(msg) from None
        if not isinstance(key, _VerifyingKey):
            msg = "[auth.jwt] the public key must be an RSA, EC or Ed25519/Ed448 key"
            raise ConfigError(msg)
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
            msg = f"[auth.jwt] the RSA public key has {key.key_size} bits; {_MIN_RSA_BITS} at least"
            raise ConfigError(msg)
        return key

    async def verify(self, token: str) -> JWTIdentity:
        """The identity of a valid token; `UnauthorizedError` (401, `invalid_token`) otherwise.

        The error message gives a short reason and never contains the token.
        """
        if not looks_like_jwt(token):
            raise _invalid("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid(_reason(exc)) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise _invalid("algorithm not allowed")  # `none`, and HS* against a public key
        key: _VerifyingKey | bytes | jwt.PyJWK
        if self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise _invalid("no key id (`kid`) in the header")
            key = await self._jwks.key(kid)
        else:
            assert self._static_key is not None
            key = self._static_key
        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options=self._options,
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
            )
        except jwt.PyJWTError as exc:
            raise _invalid(_reason(exc)) from None
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> JWTIdentity:
        settings = self.settings
        exp = int(claims["exp"])  # PyJWT checked that `exp` (and `iat`, if present) are integers
        if "iat" in claims:
            issued = int(claims["iat"])
            if settings.max_lifetime_seconds is not None and exp - issued > settings.max_lifetime_seconds:
                raise _invalid("lifetime longer than allowed")
            if settings.max_age_seconds is not None and (
                time.time() - issued > settings.max_age_seconds + settings.leeway_seconds
            ):
                raise _invalid("issued too long ago")
        try:
            expires_at = datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            raise _invalid("malformed `exp`") from None
        user = _text_claim(claims, settings.user_claim, allow_int=True)
        if user is None:
            raise _invalid(f"missing claim `{settings.user_claim}`")
        role = _text_claim(claims, settings.role_claim)
        return JWTIdentity(
            user_id=user,
            role=role if role is not None else settings.default_role,
            team=_text_claim(claims, settings.team_claim),
            claims=claims,
            expires_at=expires_at,
        )


def _claim(claims: dict[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text_claim(claims: dict[str, Any], name: str, *, allow_int: bool = False) -> str | None:
    value = _claim(claims, name)
    if value is None or value == "":
        return None
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _invalid(f"claim `{name}` must be a string")
    if len(value) > _MAX_IDENTITY_LENGTH:
        raise _invalid(f"claim `{name}` is too long")
    return value
