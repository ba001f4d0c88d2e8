"""`[auth]`: API keys, the bootstrap admin key, and `[auth.jwt]` (JWT bearer tokens).

The JWT section validates its key material when the configuration loads, so a wrong PEM or a weak
HMAC secret stops start-up with a message naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from agenthost.config.base import Section

__all__ = [
    "HMAC_ALGORITHMS",
    "HMAC_MIN_BYTES",
    "AuthSettings",
    "JWTAlgorithm",
    "JWTSettings",
    "compatible_algorithms",
    "load_public_key",
]


JWTAlgorithm = Literal[
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]


HMAC_ALGORITHMS: frozenset[str] = frozenset({"HS256", "HS384", "HS512"})


HMAC_MIN_BYTES: dict[str, int] = {"HS256": 32, "HS384": 48, "HS512": 64}
"""Shortest HMAC secret per algorithm (RFC 7518 §3.2: at least the hash size)."""


_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})


_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def load_public_key(pem: str | bytes) -> PublicKeyTypes:
    """A public key from PEM text: a `PUBLIC KEY` block or an X.509 `CERTIFICATE`.

    Raises `ValueError` for anything else (a private key is refused too: it has no place here).
    """
    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return load_pem_public_key(data)


def compatible_algorithms(key: PublicKeyTypes) -> frozenset[str]:
    """The JWS algorithms a public key can verify: RS*/PS* for RSA, the curve's ES* for EC,
    EdDSA for Ed25519/Ed448; empty for other key types."""
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({name}) if name else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


class JWTSettings(Section):
    """`[auth.jwt]`: accept JWT bearer tokens, verified with one key source."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # errors never echo the secret

    algorithms: list[JWTAlgorithm] = Field(
        default_factory=list,
        description="Accepted `alg` values. Default: `HS256` with `secret`; `RS256` and `ES256` with a "
        "public key or JWKS (a static key narrows them to its key type). HMAC (`HS*`) and public-key "
        "algorithms never mix; `none` is never accepted.",
    )
    secret: SecretStr | None = Field(
        None,
        description="HMAC secret for HS256/384/512, at least as many bytes as the hash (32 for HS256); "
        "prefer `AGENTHOST_AUTH__JWT__SECRET` or its `_FILE` form.",
    )
    public_key: str | None = Field(
        None, description="PEM public key (or X.509 certificate) of the token issuer, inline."
    )
    public_key_file: Path | None = Field(
        None,
        description="File holding the PEM public key or certificate (relative: to the config file's folder).",
    )
    jwks_url: str | None = Field(
        None, description="http(s) URL of the issuer's JWKS (e.g. `.../.well-known/jwks.json`)."
    )
    jwks_cache_seconds: float = Field(
        300.0, gt=0, description="How long fetched JWKS keys are used before the set is fetched again."
    )
    jwks_min_refresh_seconds: float = Field(
        30.0,
        ge=0,
        description="Least time between two JWKS fetches (an unknown `kid` or an outage never causes more).",
    )
    jwks_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of one JWKS fetch.")
    issuer: str | None = Field(None, description="When set, the `iss` claim must equal it.")
    audience: str | None = Field(
        None,
        description="When set, `aud` is required and must contain it. Unset: tokens carrying an `aud` "
        "are refused (RFC 7519 §4.1.3).",
    )
    leeway_seconds: float = Field(
        30.0, ge=0, le=600, description="Clock skew tolerated on `exp`, `nbf` and `iat`."
    )
    required_claims: list[str] = Field(
        default_factory=list,
        description="Claims every token must carry besides `exp` (always required), e.g. `iat`, `jti`.",
    )
    max_lifetime_seconds: int | None = Field(
        None, ge=1, description="Refuse tokens whose `exp - iat` is longer (requires `iat`)."
    )
    max_age_seconds: int | None = Field(
        None, ge=1, description="Refuse tokens issued (`iat`) longer ago than this (requires `iat`)."
    )
    user_claim: str = Field(
        "sub", min_length=1, description="Claim holding the user id (required in every token)."
    )
    role_claim: str = Field(
        "role",
        min_length=1,
        description="Claim holding the role name (a `[roles]` name); a dotted name reaches into nested "
        "objects when no top-level claim has that exact name.",
    )
    team_claim: str = Field("team", min_length=1, description="Claim holding the team (optional).")
    default_role: str = Field("user", min_length=1, description="Role of tokens without a role claim.")

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in {"http", "https"} or not parsed.netloc:
                msg = "must be an http:// or https:// URL"
                raise ValueError(msg)
        return value

    @field_validator("public_key")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                key = load_public_key(value)
            except ValueError:
                msg = "is not a PEM public key or certificate"
                raise ValueError(msg) from None
            if not compatible_algorithms(key):
                msg = "must be an RSA, EC (P-256/384/521) or Ed25519/Ed448 key"
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _key_source(self) -> JWTSettings:
        public = [
            name for name in ("public_key", "public_key_file", "jwks_url") if getattr(self, name) is not None
        ]
        if self.secret is None and not public:
            msg = "needs one of `secret`, `public_key`, `public_key_file` or `jwks_url`"
            raise ValueError(msg)
        if self.secret is not None and public:
            msg = f"sets both `secret` (HMAC) and {public}: use one key source only"
            raise ValueError(msg)
        if len(public) > 1:
            msg = f"sets {public}: use one key source only"
            raise ValueError(msg)
        hmac_algorithms = [name for name in self.algorithms if name in HMAC_ALGORITHMS]
        if self.secret is not None:
            if len(hmac_algorithms) != len(self.algorithms):
                msg = "algorithms: a `secret` verifies HS256/HS384/HS512 only"
                raise ValueError(msg)
            self.algorithms = self.algorithms or ["HS256"]
            needed = max(HMAC_MIN_BYTES[name] for name in self.algorithms)
            if len(self.secret.get_secret_value().encode()) < needed:
                msg = f"secret: must be at least {needed} bytes for {self.algorithms}"
                raise ValueError(msg)
        else:
            if hmac_algorithms:
                msg = "algorithms: HS* need `secret`; a public key is never an HMAC secret"
                raise ValueError(msg)
            self.algorithms = self.algorithms or ["RS256", "ES256"]
        return self


class AuthSettings(Section):
    """`[auth]`: how callers authenticate (`auth = "none"` is short for `[auth] mode = "none"`)."""

    mode: Literal["keys", "none"] = Field(
        "keys",
        description="`keys`: every `/v1` request needs an API key (or a JWT, with `[auth.jwt]`). `none`: no "
        "authentication, every caller is an admin (development only; logged loudly at start).",
    )
    admin_key: SecretStr | None = Field(
        None,
        description="A bootstrap admin credential (from `AGENTHOST_AUTH__ADMIN_KEY` or its `_FILE`), "
        "for creating the first keys over HTTP; `agenthost keys create` needs none.",
    )
    key_cache_seconds: float = Field(
        5.0, ge=0, description="How long a process trusts a looked-up key; revocation is seen within this."
    )
    rotation_grace_seconds: float = Field(
        86_400.0, ge=0, description="How long a rotated-out key secret keeps working."
    )
    jwt: JWTSettings | None = Field(
        None, description="`[auth.jwt]`: also accept JWT bearer tokens (off unless set)."
    )
    public_metrics: bool = Field(
        default=False,
        description="Serve `/metrics` without credentials (otherwise an operator or admin key).",
    )
