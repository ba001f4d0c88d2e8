"""JWT verification as an attacker would probe it: accepted tokens map to the right identity; unsigned,
algorithm-confused, forged, tampered, expired and mis-addressed tokens are 401s; JWKS keys are cached,
refreshed on rotation, rate-limited against kid floods and kept through an endpoint outage; and
`agenthost token create` signs tokens the verifier accepts. Keys are generated at run time."""

from __future__ import annotations

import asyncio
import base64
import doctest
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

import agenthost.security.jwt as jwt_module
from agenthost.cli.token import parse_duration, token_app
from agenthost.config.auth import JWTSettings
from agenthost.errors import ConfigError, UnauthorizedError
from agenthost.security.jwt import JWTVerifier, looks_like_jwt

ISSUER = "https://issuer.test"
AUDIENCE = "agenthost"


# ---------------------------------------------------------------- keys and token helpers


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    rsa_other: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    secret: str


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_other=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        secret=secrets.token_urlsafe(48),
    )


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None = None) -> str:
    """A token signed outside PyJWT (which refuses to build the malicious ones)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def rsa_settings(keys: Keys, **extra: Any) -> JWTSettings:
    return JWTSettings(public_key=public_pem(keys.rsa), issuer=ISSUER, audience=AUDIENCE, **extra)


async def rejected(verifier: JWTVerifier, token: str) -> str:
    """Verify `token`, expect a 401 `invalid_token`, and return the message."""
    with pytest.raises(UnauthorizedError) as info:
        await verifier.verify(token)
    error = info.value
    assert error.status == 401
    assert error.code == "invalid_token"
    assert error.headers["WWW-Authenticate"].startswith("Bearer ")
    if token:
        assert token not in error.message
    return error.message


# ---------------------------------------------------------------- accepted tokens


async def test_hs256_token_maps_user_role_team_and_expiry(keys: Keys) -> None:
    verifier = JWTVerifier(JWTSettings(secret=keys.secret, issuer=ISSUER, audience=AUDIENCE))
    payload = claims(role="operator", team="support")
    identity = await verifier.verify(jwt.encode(payload, keys.secret, algorithm="HS256"))
    assert (identity.user_id, identity.role, identity.team) == ("alice", "operator", "support")
    assert identity.expires_at.timestamp() == payload["exp"]
    assert identity.claims["iss"] == ISSUER


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_rs256_and_es256_tokens_are_accepted_with_a_public_key(
    keys: Keys, kind: str, tmp_path: Path
) -> None:
    private = keys.rsa if kind == "rsa" else keys.ec
    algorithm = "RS256" if kind == "rsa" else "ES256"
    (tmp_path / "issuer.pem").write_text(public_pem(private))
    settings = JWTSettings(public_key_file=Path("issuer.pem"), issuer=ISSUER, audience=AUDIENCE)
    verifier = JWTVerifier(settings, config_dir=tmp_path)  # relative to the config file's folder
    assert verifier.algorithms == {algorithm}  # narrowed to the key type
    identity = await verifier.verify(jwt.encode(claims(role="admin"), private, algorithm=algorithm))
    assert (identity.user_id, identity.role) == ("alice", "admin")


async def test_default_role_custom_and_nested_claim_names(keys: Keys) -> None:
    settings = rsa_settings(
        keys, user_claim="email", role_claim="app.role", team_claim="org", default_role="viewer"
    )
    verifier = JWTVerifier(settings)
    no_role = jwt.encode(claims(email="a@example.test"), keys.rsa, algorithm="RS256")
    identity = await verifier.verify(no_role)
    assert (identity.user_id, identity.role, identity.team) == ("a@example.test", "viewer", None)
    nested = claims(email="b@example.test", app={"role": "operator"}, org="acme")
    identity = await verifier.verify(jwt.encode(nested, keys.rsa, algorithm="RS256"))
    assert (identity.user_id, identity.role, identity.team) == ("b@example.test", "operator", "acme")


async def test_a_certificate_works_as_the_public_key(keys: Keys) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(keys.rsa.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(keys.rsa, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    verifier = JWTVerifier(JWTSettings(public_key=pem, issuer=ISSUER, audience=AUDIENCE))
    assert (await verifier.verify(jwt.encode(claims(), keys.rsa, algorithm="RS256"))).user_id == "alice"


async def test_leeway_tolerates_small_clock_skew_only(keys: Keys) -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 10), keys.rsa, algorithm="RS256")
    assert (await JWTVerifier(rsa_settings(keys)).verify(token)).user_id == "alice"
    assert "expired" in await rejected(JWTVerifier(rsa_settings(keys, leeway_seconds=0)), token)


# ---------------------------------------------------------------- rejected tokens


def _alg_none(keys: Keys, variant: str) -> str:
    return handmade({"alg": variant, "typ": "JWT"}, claims(role="admin"))


def _tampered(keys: Keys) -> str:
    header, _, signature = jwt.encode(claims(role="user"), keys.rsa, algorithm="RS256").split(".")
    return f"{header}.{b64(claims(role='admin'))}.{signature}"


REJECTIONS: dict[str, tuple[Callable[[Keys], str], str]] = {
    "alg none": (lambda k: _alg_none(k, "none"), "algorithm not allowed"),
    "alg None": (lambda k: _alg_none(k, "None"), "algorithm not allowed"),
    "alg NONE": (lambda k: _alg_none(k, "NONE"), "algorithm not allowed"),
    "no alg": (lambda k: handmade({"typ": "JWT"}, claims()), "algorithm not allowed"),
    "HS256 signed with the RSA public key PEM": (
        lambda k: handmade({"alg": "HS256", "typ": "JWT"}, claims(role="admin"), public_pem(k.rsa).encode()),
        "algorithm not allowed",
    ),
    "ES256 against an RSA key": (
        lambda k: jwt.encode(claims(), k.ec, algorithm="ES256"),
        "algorithm not allowed",
    ),
    "PS256 (not configured)": (
        lambda k: jwt.encode(claims(), k.rsa, algorithm="PS256"),
        "algorithm not allowed",
    ),
    "wrong audience": (
        lambda k: jwt.encode(claims(aud="another-service"), k.rsa, algorithm="RS256"),
        "wrong audience",
    ),
    "missing audience": (lambda k: jwt.encode(claims(aud=None), k.rsa, algorithm="RS256"), "`aud`"),
    "wrong issuer": (
        lambda k: jwt.encode(claims(iss="https://evil.test"), k.rsa, algorithm="RS256"),
        "wrong issuer",
    ),
    "expired": (
        lambda k: jwt.encode(claims(exp=int(time.time()) - 120), k.rsa, algorithm="RS256"),
        "expired",
    ),
    "nbf in the future": (
        lambda k: jwt.encode(claims(nbf=int(time.time()) + 600), k.rsa, algorithm="RS256"),
        "not yet valid",
    ),
    "iat in the future": (
        lambda k: jwt.encode(claims(iat=int(time.time()) + 600), k.rsa, algorithm="RS256"),
        "not yet valid",
    ),
    "missing exp": (lambda k: jwt.encode(claims(exp=None), k.rsa, algorithm="RS256"), "missing claim `exp`"),
    "non-numeric exp": (lambda k: jwt.encode(claims(exp="later"), k.rsa, algorithm="RS256"), "malformed"),
    "missing sub": (lambda k: jwt.encode(claims(sub=None), k.rsa, algorithm="RS256"), "`sub`"),
    "role not a string": (
        lambda k: jwt.encode(claims(role=["admin"]), k.rsa, algorithm="RS256"),
        "`role` must be a string",
    ),
    "tampered payload": (_tampered, "bad signature"),
    "signed by another key": (
        lambda k: jwt.encode(claims(), k.rsa_other, algorithm="RS256"),
        "bad signature",
    ),
    "garbage": (lambda k: "not a token", "malformed"),
    "empty": (lambda k: "", "malformed"),
    "three garbage segments": (lambda k: "abc.def.ghi", "malformed"),
    "api key shape": (lambda k: "ahk_" + "a" * 12 + "_" + "b" * 43, "malformed"),
    "huge": (lambda k: "a" * 9000 + ".b.c", "malformed"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
async def test_bad_tokens_are_rejected_with_a_short_reason(keys: Keys, case: str) -> None:
    make, reason = REJECTIONS[case]
    message = await rejected(JWTVerifier(rsa_settings(keys)), make(keys))
    assert reason in message


async def test_a_secret_configuration_refuses_public_key_algorithms(keys: Keys) -> None:
    verifier = JWTVerifier(JWTSettings(secret=keys.secret, issuer=ISSUER, audience=AUDIENCE))
    token = jwt.encode(claims(), keys.rsa, algorithm="RS256")
    assert "algorithm not allowed" in await rejected(verifier, token)
    other_secret = jwt.encode(claims(), secrets.token_urlsafe(48), algorithm="HS256")
    assert "bad signature" in await rejected(verifier, other_secret)


async def test_without_a_configured_audience_tokens_with_an_audience_are_refused(keys: Keys) -> None:
    verifier = JWTVerifier(JWTSettings(public_key=public_pem(keys.rsa)))
    assert (await verifier.verify(jwt.encode(claims(aud=None), keys.rsa, algorithm="RS256"))).user_id
    assert "wrong audience" in await rejected(verifier, jwt.encode(claims(), keys.rsa, algorithm="RS256"))


async def test_max_lifetime_and_max_age(keys: Keys) -> None:
    now = int(time.time())
    verifier = JWTVerifier(rsa_settings(keys, max_lifetime_seconds=3600, max_age_seconds=600))
    assert await verifier.verify(jwt.encode(claims(exp=now + 3000), keys.rsa, algorithm="RS256"))
    long_lived = jwt.encode(claims(exp=now + 7200), keys.rsa, algorithm="RS256")
    assert "lifetime" in await rejected(verifier, long_lived)
    old = jwt.encode(claims(iat=now - 1200, exp=now + 60), keys.rsa, algorithm="RS256")
    assert "too long ago" in await rejected(verifier, old)
    no_iat = jwt.encode(claims(iat=None), keys.rsa, algorithm="RS256")
    assert "missing claim `iat`" in await rejected(verifier, no_iat)


async def test_required_claims(keys: Keys) -> None:
    verifier = JWTVerifier(rsa_settings(keys, required_claims=["jti"]))
    assert "missing claim `jti`" in await rejected(
        verifier, jwt.encode(claims(), keys.rsa, algorithm="RS256")
    )
    assert await verifier.verify(jwt.encode(claims(jti="1"), keys.rsa, algorithm="RS256"))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(
            st.text(alphabet="ABCDEF" + "abcdef" + "0123456789" + "-_=", max_size=60), min_size=3, max_size=3
        ).map(".".join),
        st.tuples(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)), st.binary()).map(
            lambda hp: f"{b64(hp[0])}.{b64(hp[0])}.{b64(hp[1])}"
        ),
    )
)
def test_arbitrary_input_only_ever_raises_a_401(token: str) -> None:
    verifier = JWTVerifier(JWTSettings(secret="k" * 32))
    with pytest.raises(UnauthorizedError):
        asyncio.run(verifier.verify(token))


def test_looks_like_jwt() -> None:
    assert looks_like_jwt(f"{b64({'alg': 'none'})}.{b64({'sub': 'a'})}.")  # unsigned: still a JWT
    assert not looks_like_jwt("ahk_abcdefabcdef_" + "x" * 43)
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")
    assert not looks_like_jwt("a b.c.d")


def test_module_examples() -> None:
    assert doctest.testmod(jwt_module).failed == 0


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "needs one of"),
        ({"secret": "s" * 40, "jwks_url": "https://idp.test/jwks"}, "one key source"),
        ({"jwks_url": "https://idp.test/jwks", "public_key_file": "k.pem"}, "one key source"),
        ({"secret": "s" * 40, "algorithms": ["HS256", "RS256"]}, "HS256/HS384/HS512 only"),
        ({"jwks_url": "https://idp.test/jwks", "algorithms": ["HS256"]}, "never an HMAC secret"),
        ({"jwks_url": "https://idp.test/jwks", "algorithms": ["RS256", "HS256"]}, "never an HMAC secret"),
        ({"secret": "s" * 20}, "at least 32 bytes"),
        ({"secret": "s" * 40, "algorithms": ["HS512"]}, "at least 64 bytes"),
        ({"jwks_url": "file:///etc/passwd"}, "http:// or https://"),
        ({"public_key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"}, "not a PEM"),
        ({"secret": "s" * 40, "algorithms": ["none"]}, "algorithms"),
    ],
)
def test_invalid_configurations_are_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        JWTSettings.model_validate(fields)
    assert problem in str(info.value)
    assert "s" * 20 not in str(info.value)  # the secret is not echoed


def test_private_key_pem_is_refused_as_public_key(keys: Keys) -> None:
    with pytest.raises(ValidationError, match="not a PEM public key"):
        JWTSettings(public_key=private_pem(keys.rsa).decode())


def test_default_algorithms_follow_the_key_source(keys: Keys) -> None:
    assert JWTSettings(secret=keys.secret).algorithms == ["HS256"]
    assert JWTSettings(jwks_url="http://127.0.0.1:1/jwks").algorithms == ["RS256", "ES256"]
    assert JWTVerifier(JWTSettings(public_key=public_pem(keys.ec))).algorithms == {"ES256"}


def test_a_public_key_that_fits_no_configured_algorithm_is_a_config_error(keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="do not fit the public key"):
        JWTVerifier(JWTSettings(public_key=public_pem(keys.ec), algorithms=["RS256"]))
    with pytest.raises(ConfigError, match="cannot read"):
        JWTVerifier(JWTSettings(public_key_file=tmp_path / "missing.pem"))
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="1024 bits"):
        JWTVerifier(JWTSettings(public_key=public_pem(weak)))


# ---------------------------------------------------------------- JWKS


class JWKSServer:
    """A JWKS endpoint on 127.0.0.1 whose key set, latency and request count tests control."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                time.sleep(outer.delay)
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.stop()


def jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "RS256"
    else:
        data = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "ES256"
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


def signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, **overrides: Any) -> str:
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers={"kid": kid})


def jwks_verifier(url: str, **extra: Any) -> JWTVerifier:
    return JWTVerifier(JWTSettings(jwks_url=url, issuer=ISSUER, audience=AUDIENCE, **extra))


async def test_jwks_keys_are_fetched_once_and_cached(keys: Keys, jwks_server: JWKSServer) -> None:
    jwks_server.keys = [jwk(keys.rsa, "r1"), jwk(keys.ec, "e1")]
    verifier = jwks_verifier(jwks_server.url)
    for _ in range(3):
        assert (await verifier.verify(signed(keys.rsa, "r1", role="operator"))).role == "operator"
        assert (await verifier.verify(signed(keys.ec, "e1"))).user_id == "alice"
    assert jwks_server.requests == 1


async def test_jwks_confusion_and_header_checks(keys: Keys, jwks_server: JWKSServer) -> None:
    secret = secrets.token_bytes(32)
    oct_key = {"kty": "oct", "kid": "h1", "k": b64(secret), "alg": "HS256"}
    jwks_server.keys = [jwk(keys.rsa, "r1"), oct_key]
    verifier = jwks_verifier(jwks_server.url, jwks_min_refresh_seconds=60)
    await verifier.verify(signed(keys.rsa, "r1"))
    hs_with_rsa_kid = handmade({"alg": "HS256", "kid": "r1"}, claims(), public_pem(keys.rsa).encode())
    assert "algorithm not allowed" in await rejected(verifier, hs_with_rsa_kid)
    hs_with_oct_kid = handmade({"alg": "HS256", "kid": "h1"}, claims(), secret)
    assert "algorithm not allowed" in await rejected(verifier, hs_with_oct_kid)
    es_with_rsa_kid = signed(keys.ec, "r1")  # ES256 is allowed, but r1 is an RS256 key
    assert "algorithm not allowed" in await rejected(verifier, es_with_rsa_kid)
    no_kid = jwt.encode(claims(), keys.rsa, algorithm="RS256")
    assert "kid" in await rejected(verifier, no_kid)
    assert "bad signature" in await rejected(verifier, signed(keys.rsa_other, "r1"))


async def test_jwks_key_rotation_is_picked_up_and_removed_keys_stop_working(
    keys: Keys, jwks_server: JWKSServer
) -> None:
    jwks_server.keys = [jwk(keys.rsa, "old")]
    verifier = jwks_verifier(jwks_server.url, jwks_min_refresh_seconds=0)
    await verifier.verify(signed(keys.rsa, "old"))
    jwks_server.keys = [jwk(keys.rsa_other, "new")]  # the issuer rotates
    identity = await verifier.verify(signed(keys.rsa_other, "new", sub="bob"))
    assert identity.user_id == "bob"
    assert jwks_server.requests == 2
    assert "unknown key id" in await rejected(verifier, signed(keys.rsa, "old"))


async def test_unknown_kid_flood_refreshes_at_most_once_per_interval(
    keys: Keys, jwks_server: JWKSServer
) -> None:
    jwks_server.keys = [jwk(keys.rsa, "r1")]
    verifier = jwks_verifier(jwks_server.url, jwks_min_refresh_seconds=0.5)
    await verifier.verify(signed(keys.rsa, "r1"))
    flood = [signed(keys.rsa_other, f"bogus-{n}") for n in range(50)]

    async def attempt(token: str) -> bool:
        try:
            await verifier.verify(token)
        except UnauthorizedError:
            return False
        return True

    assert not any(await asyncio.gather(*(attempt(token) for token in flood)))
    assert jwks_server.requests == 1  # within the interval of the first fetch: no refresh at all
    await asyncio.sleep(0.6)
    assert not any(await asyncio.gather(*(attempt(token) for token in flood)))
    assert jwks_server.requests == 2  # one refresh for the whole flood
    assert not any(await asyncio.gather(*(attempt(token) for token in flood)))
    assert jwks_server.requests == 2
    assert verifier.jwks_fetches == 2
    assert (await verifier.verify(signed(keys.rsa, "r1"))).user_id == "alice"


async def test_cached_keys_keep_working_while_the_jwks_endpoint_is_down(
    keys: Keys, jwks_server: JWKSServer
) -> None:
    jwks_server.keys = [jwk(keys.rsa, "r1")]
    verifier = jwks_verifier(jwks_server.url, jwks_cache_seconds=0.2, jwks_min_refresh_seconds=0)
    await verifier.verify(signed(keys.rsa, "r1"))
    jwks_server.stop()
    await asyncio.sleep(0.3)  # the cache is stale: each verify tries a refresh, which fails
    for _ in range(3):
        assert (await verifier.verify(signed(keys.rsa, "r1"))).user_id == "alice"
    assert verifier.jwks_fetches == 4
    assert "unknown key id" in await rejected(verifier, signed(keys.rsa_other, "r2"))


async def test_unreachable_jwks_without_cached_keys_is_a_401() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = jwks_verifier(f"http://127.0.0.1:{port}/jwks", jwks_timeout_seconds=2)
    key = ec.generate_private_key(ec.SECP256R1())
    assert "signing keys unavailable" in await rejected(verifier, signed(key, "k1"))


async def test_a_slow_jwks_fetch_does_not_block_the_event_loop(keys: Keys, jwks_server: JWKSServer) -> None:
    jwks_server.keys = [jwk(keys.rsa, "r1")]
    jwks_server.delay = 0.5
    verifier = jwks_verifier(jwks_server.url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        results = await asyncio.gather(*(verifier.verify(signed(keys.rsa, "r1")) for _ in range(5)))
    finally:
        task.cancel()
    assert [identity.user_id for identity in results] == ["alice"] * 5
    assert ticks >= 10  # the loop kept running during the 0.5 s fetch
    assert jwks_server.requests == 1  # concurrent first requests share one fetch


# ---------------------------------------------------------------- agenthost token create


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(token_app, name="token")
    return app


def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli(), ["token", "create", *args], env=env)


def test_parse_duration() -> None:
    assert [parse_duration(text) for text in ("3600", "90s", "30m", "1h", "2d")] == [
        3600,
        90,
        1800,
        3600,
        172800,
    ]
    for bad in ("", "0", "-5", "1w", "h"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


async def test_token_create_with_a_secret_file(keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(keys.secret + "\n")
    args = ["--sub", "alice", "--role", "operator", "--team", "t1", "--ttl", "2h"]
    result = run_cli(*args, "--secret-file", str(tmp_path / "secret"), "--iss", ISSUER, "--aud", AUDIENCE)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # the token alone on stdout
    assert looks_like_jwt(token)
    verifier = JWTVerifier(JWTSettings(secret=keys.secret, issuer=ISSUER, audience=AUDIENCE))
    identity = await verifier.verify(token)
    assert (identity.user_id, identity.role, identity.team) == ("alice", "operator", "t1")
    assert identity.claims["exp"] - identity.claims["iat"] == 7200


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_token_create_with_a_private_key(keys: Keys, kind: str, tmp_path: Path) -> None:
    private = keys.rsa if kind == "rsa" else keys.ec
    (tmp_path / "key.pem").write_bytes(private_pem(private))
    result = run_cli("--sub", "svc", "--private-key-file", str(tmp_path / "key.pem"), "--kid", "k9")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256" if kind == "rsa" else "ES256", "kid": "k9", "typ": "JWT"}
    identity = await JWTVerifier(JWTSettings(public_key=public_pem(private))).verify(token)
    assert (identity.user_id, identity.role) == ("svc", "user")


async def test_token_create_reads_auth_jwt_from_the_config(keys: Keys, tmp_path: Path) -> None:
    config = tmp_path / "agenthost.toml"
    config.write_text(
        "[auth.jwt]\n"
        f'issuer = "{ISSUER}"\naudience = "{AUDIENCE}"\n'
        'role_claim = "app_role"\nuser_claim = "uid"\nmax_lifetime_seconds = 7200\n'
    )
    env = {"AGENTHOST_AUTH__JWT__SECRET": keys.secret}  # secrets come from the environment
    result = run_cli("--sub", "carol", "--role", "admin", "--config", str(config), env=env)
    assert result.exit_code == 0, result.output
    settings = JWTSettings(
        secret=keys.secret, issuer=ISSUER, audience=AUDIENCE, role_claim="app_role", user_claim="uid"
    )
    identity = await JWTVerifier(settings).verify(result.stdout.strip())
    assert (identity.user_id, identity.role) == ("carol", "admin")
    assert identity.claims["exp"] - identity.claims["iat"] == 3600
    too_long = run_cli("--sub", "carol", "--ttl", "3h", "--config", str(config), env=env)
    assert too_long.exit_code == 2
    assert "max_lifetime_seconds" in too_long.stderr


def test_token_create_refuses_bad_input(keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no agenthost.toml here
    monkeypatch.delenv("AGENTHOST_CONFIG", raising=False)
    (tmp_path / "rsa.pem").write_bytes(private_pem(keys.rsa))
    rsa_file = str(tmp_path / "rsa.pem")
    cases = {
        "no signing key": ["--sub", "a"],
        "bad ttl": ["--sub", "a", "--secret", keys.secret, "--ttl", "soon"],
        "short secret": ["--sub", "a", "--secret", "short"],
        "two keys": ["--sub", "a", "--secret", keys.secret, "--private-key-file", rsa_file],
        "HMAC algorithm with a private key": [
            "--sub",
            "a",
            "--private-key-file",
            rsa_file,
            "--algorithm",
            "HS256",
        ],
        "ES256 with an RSA key": ["--sub", "a", "--private-key-file", rsa_file, "--algorithm", "ES256"],
        "RS256 with a secret": ["--sub", "a", "--secret", keys.secret, "--algorithm", "RS256"],
        "not a key": ["--sub", "a", "--private-key-file", str(tmp_path)],
        "no sub": ["--secret", keys.secret],
    }
    for case, args in cases.items():
        result = run_cli(*args)
        assert result.exit_code == 2, case
        assert result.stdout == "", case
        assert keys.secret not in result.output, case
