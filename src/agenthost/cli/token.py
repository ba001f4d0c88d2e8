"""`agenthost token create`: sign a JWT for development and tests.

The signing key is `--secret` / `--secret-file` (HS256/384/512) or `--private-key-file` (a PEM
RSA, EC or Ed25519 private key for RS*/PS*, ES*, EdDSA). Without a key on the command line, or
with `--config`, the `[auth.jwt]` section supplies the secret, issuer, audience, claim names and
algorithm (`$AGENTHOST_CONFIG` or `./agenthost.toml` when `--config` is not given). Only the token
is printed on stdout, so `TOKEN=$(agenthost token create --sub alice)` works.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any

import jwt
import typer
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from agenthost.cli.common import ConfigOption, fail
from agenthost.config.auth import HMAC_ALGORITHMS, HMAC_MIN_BYTES, JWTSettings, compatible_algorithms
from agenthost.errors import AgentHostError

__all__ = ["parse_duration", "token_app"]

token_app = typer.Typer(
    help=r"Create JWTs for development (verified by the server with `\[auth.jwt]`).", no_args_is_help=True
)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SigningKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)


def parse_duration(text: str) -> int:
    """Seconds in `3600`, `90s`, `30m`, `1h` or `7d`; `ValueError` otherwise.

    Example:
        >>> parse_duration("1h"), parse_duration("90")
        (3600, 90)
    """
    match = _DURATION.match(text.lower())
    if match is None or int(match.group(1)) == 0:
        msg = f"not a positive duration: {text!r} (use e.g. 3600, 90s, 30m, 1h, 7d)"
        raise ValueError(msg)
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _configured(config: Path | None) -> JWTSettings | None:
    from agenthost.settings import load_settings

    return load_settings(config).auth.jwt


def _private_key(path: Path) -> _SigningKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise fail(f"cannot read {str(path)!r}: {exc.strerror}", 2) from None
    except (TypeError, ValueError):
        raise fail(f"{str(path)!r} is not an unencrypted PEM private key", 2) from None
    if not isinstance(key, _SigningKey):
        raise fail("the private key must be an RSA, EC or Ed25519/Ed448 key", 2)
    return key


def _asymmetric_algorithm(key: _SigningKey, algorithm: str | None, configured: JWTSettings | None) -> str:
    fits = compatible_algorithms(key.public_key())
    if not fits:
        raise fail("the private key's curve is not one JWS supports (P-256, P-384, P-521)", 2)
    if algorithm is not None:
        if algorithm not in fits:
            raise fail(f"--algorithm {algorithm} does not fit this key (it signs {sorted(fits)})", 2)
        return algorithm
    for name in configured.algorithms if configured is not None else []:
        if name in fits:
            return name
    preferred = ("RS256", "ES256", "ES384", "ES512", "EdDSA")
    return next(name for name in preferred if name in fits)


def _hmac_algorithm(secret: bytes, algorithm: str | None, configured: JWTSettings | None) -> str:
    if algorithm is None:
        algorithm = configured.algorithms[0] if configured is not None else "HS256"
    if algorithm not in HMAC_ALGORITHMS:
        raise fail(f"--algorithm {algorithm}: a secret signs HS256, HS384 or HS512 only", 2)
    if len(secret) < HMAC_MIN_BYTES[algorithm]:
        raise fail(f"the secret must be at least {HMAC_MIN_BYTES[algorithm]} bytes for {algorithm}", 2)
    return algorithm


@token_app.command("create")
def create(  # noqa: PLR0917 - typer maps each parameter to an option
    sub: Annotated[str, typer.Option("--sub", help=r"The user id (the `\[auth.jwt] user_claim`).")],
    role: Annotated[
        str | None, typer.Option("--role", help=r"Role (a `\[roles]` name); default: the server's default.")
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Team claim.")] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime: seconds, or 90s, 30m, 1h, 7d.")] = "1h",
    iss: Annotated[str | None, typer.Option("--iss", help=r"Issuer (default: `\[auth.jwt] issuer`).")] = None,
    aud: Annotated[
        str | None, typer.Option("--aud", help=r"Audience (default: `\[auth.jwt] audience`).")
    ] = None,
    algorithm: Annotated[
        str | None,
        typer.Option("--algorithm", help="HS256/384/512 with a secret; RS*, PS*, ES*, EdDSA with a key."),
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="HMAC secret (visible in `ps`: prefer --secret-file).")
    ] = None,
    secret_file: Annotated[
        Path | None, typer.Option("--secret-file", help="File holding the HMAC secret.")
    ] = None,
    private_key_file: Annotated[
        Path | None, typer.Option("--private-key-file", help="PEM private key (RSA, EC, Ed25519).")
    ] = None,
    kid: Annotated[
        str | None, typer.Option("--kid", help="Key id header (for JWKS-verified servers).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print a signed JWT for `--sub` (development and tests)."""
    try:
        lifetime = parse_duration(ttl)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if sum(value is not None for value in (secret, secret_file, private_key_file)) > 1:
        raise fail("give one of --secret, --secret-file or --private-key-file", 2)
    configured: JWTSettings | None = None
    if config is not None or (secret is None and secret_file is None and private_key_file is None):
        try:
            configured = _configured(config)
        except AgentHostError as exc:
            raise fail(exc.message, 2) from None
    limit = configured.max_lifetime_seconds if configured is not None else None
    if limit is not None and lifetime > limit:
        raise fail(f"--ttl ({lifetime} s) is longer than [auth.jwt] max_lifetime_seconds ({limit})", 2)
    key: _SigningKey | bytes
    if private_key_file is not None:
        key = _private_key(private_key_file)
        algorithm = _asymmetric_algorithm(key, algorithm, configured)
    else:
        key = _secret(secret, secret_file, configured)
        algorithm = _hmac_algorithm(key, algorithm, configured)
    # Without a config, the claim names are JWTSettings' defaults (unvalidated: it has no key source).
    claims = _claims(sub, role, team, iss, aud, lifetime, configured or JWTSettings.model_construct())
    headers = {"kid": kid} if kid is not None else None
    typer.echo(jwt.encode(claims, key, algorithm=algorithm, headers=headers))


def _secret(secret: str | None, secret_file: Path | None, configured: JWTSettings | None) -> bytes:
    if secret_file is not None:
        try:
            secret = secret_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise fail(f"cannot read {str(secret_file)!r}: {exc.strerror}", 2) from None
    elif secret is None and configured is not None and configured.secret is not None:
        secret = configured.secret.get_secret_value()
    if secret is None:
        msg = (
            "no signing key: give --secret-file, --secret or --private-key-file, "
            "or a config whose [auth.jwt] has a `secret`"
        )
        raise fail(msg, 2)
    return secret.encode()


def _claims(  # noqa: PLR0917 - the token's claims, one argument each
    sub: str,
    role: str | None,
    team: str | None,
    iss: str | None,
    aud: str | None,
    lifetime: int,
    configured: JWTSettings,
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, configured.user_claim: sub, "iat": now, "exp": now + lifetime}
    if role is not None:
        claims[configured.role_claim] = role
    if team is not None:
        claims[configured.team_claim] = team
    issuer = iss if iss is not None else configured.issuer
    audience = aud if aud is not None else configured.audience
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return claims
