"""Rate limits: exact counts in process and on a real Redis (also across two OS processes),
all-or-nothing across scopes, per-key overrides, token budgets, window refill, headers, and what
happens when Redis is down or comes back."""

from __future__ import annotations

import asyncio
import doctest
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
import structlog
from pydantic import ValidationError

from agenthost.config.security import RateLimit, RateLimitSettings
from agenthost.errors import AgentHostError, RateLimitedError
from agenthost.security import ratelimit
from agenthost.security.ratelimit import (
    RateLimiter,
    RateLimitUnavailableError,
    client_ip,
)
from tests.harness import REDIS_URL, REPO, free_port, rate_limiter

IP = "203.0.113.9"
MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """Builds limiters on the backend under test (a fresh Redis prefix for `redis`)."""
    url, prefix = (
        (None, "agenthost")
        if request.param == "memory"
        else (REDIS_URL, request.getfixturevalue("redis_prefix"))
    )
    made: list[Any] = []

    def make(**settings: Any) -> RateLimiter:
        # A loaded CI machine can take longer than the 0.5 s default to open 200 connections' worth
        # of work; a timeout would fall back to local counting and the exact counts below would not
        # be about Redis any more. Tests of the timeout itself pass their own value.
        if url is not None:
            settings.setdefault("store_timeout_seconds", 5)
        limiter, close = rate_limiter(RateLimitSettings.model_validate(settings), url, prefix)
        assert limiter.backend == request.param
        made.append(close)
        return limiter

    yield make
    for close in made:
        await close()


async def admitted(call: Callable[[], Awaitable[object]], times: int) -> int:
    """How many of `times` concurrent calls were admitted (the others must be 429s)."""
    results = await asyncio.gather(*(call() for _ in range(times)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, RateLimitedError):
            raise result
    return sum(not isinstance(result, BaseException) for result in results)


async def test_admits_exactly_the_limit_then_answers_429_with_headers(make_limiter: MakeLimiter) -> None:
    """N requests in a window are admitted with a falling RateLimit-Remaining; the next is a 429 with
    Retry-After > 0 and the RateLimit-* fields of the exhausted limit."""
    limiter = make_limiter(per_ip={"requests_per_minute": 5})
    remaining = []
    for _ in range(5):
        state = await limiter.hit_request({"ip": IP})
        headers = state.headers()
        assert headers["RateLimit-Limit"] == "5"
        assert headers["RateLimit-Policy"] == "5;w=60"
        assert 1 <= int(headers["RateLimit-Reset"]) <= 120
        remaining.append(int(headers["RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]

    with pytest.raises(RateLimitedError) as refused:
        await limiter.hit_request({"ip": IP})
    error = refused.value
    assert (error.status, error.code) == (429, "rate_limited")
    assert 1 <= error.retry_after <= 120
    assert error.headers["Retry-After"] == str(error.retry_after)
    assert error.headers["RateLimit-Limit"] == "5"
    assert error.headers["RateLimit-Remaining"] == "0"
    assert error.headers["RateLimit-Reset"] == str(error.retry_after)
    assert error.headers["RateLimit-Policy"] == "5;w=60"
    assert "5 requests per minute" in error.message
    assert "client address" in error.message
    # Another client has its own quota.
    assert (await limiter.hit_request({"ip": "203.0.113.10"})).headers()["RateLimit-Remaining"] == "4"


async def test_concurrent_requests_in_one_process_admit_exactly_the_limit(make_limiter: MakeLimiter) -> None:
    """200 concurrent hits on a limit of 37: exactly 37 are admitted."""
    limiter = make_limiter(per_key={"requests_per_minute": 37})
    assert await admitted(lambda: limiter.hit_request({"key": "k1"}), 200) == 37


async def test_a_refusal_uses_no_quota_of_the_other_scopes(make_limiter: MakeLimiter) -> None:
    """A request refused by its key's limit is counted nowhere: the address keeps its quota."""
    limiter = make_limiter(per_key={"requests_per_minute": 2}, per_ip={"requests_per_minute": 10})
    caller = {"key": "k1", "user": "u1", "ip": IP}
    assert await admitted(lambda: limiter.hit_request(caller), 6) == 2
    # 2 of the address's 10 are used; 8 remain for other keys from the same address.
    state = await limiter.hit_request({"key": "k2", "ip": IP})
    assert {s.scope: s.remaining for s in state.limits} == {"key": 1, "ip": 7}
    assert await admitted(lambda: limiter.hit_request({"ip": IP}), 20) == 7


async def test_the_tightest_limit_names_the_headers(make_limiter: MakeLimiter) -> None:
    """With several limits, the headers describe the one closest to exhaustion."""
    limiter = make_limiter(per_key={"requests_per_minute": 100}, per_user={"requests_per_minute": 3})
    state = await limiter.hit_request({"key": "k1", "user": "u1", "ip": None})
    assert {(s.scope, s.limit, s.remaining) for s in state.limits} == {("key", 100, 99), ("user", 3, 2)}
    assert state.headers()["RateLimit-Policy"] == "3;w=60"
    assert state.headers()["RateLimit-Remaining"] == "2"


async def test_a_key_override_replaces_the_configured_key_limit(make_limiter: MakeLimiter) -> None:
    """A key's own limit (overrides) wins over `per_key`; 0 makes it unlimited; other keys keep `per_key`."""
    limiter = make_limiter(per_key={"requests_per_minute": 50})
    tight = {"key": RateLimit(requests_per_minute=2)}
    assert await admitted(lambda: limiter.hit_request({"key": "small"}, tight), 5) == 2
    assert (await limiter.hit_request({"key": "default"})).headers()["RateLimit-Limit"] == "50"
    unlimited = {"key": RateLimit()}
    assert await admitted(lambda: limiter.hit_request({"key": "vip"}, unlimited), 80) == 80
    assert (await limiter.hit_request({"key": "vip"}, unlimited)).headers() == {}


def test_updated_keeps_configured_values_the_key_does_not_set() -> None:
    """An API key's `rate_limits` with None fields inherit the configured value of that field."""
    base = RateLimit(requests_per_minute=60, tokens_per_minute=5000)
    assert base.updated({"requests_per_minute": 10, "tokens_per_minute": None}) == RateLimit(
        requests_per_minute=10, tokens_per_minute=5000
    )
    assert base.updated(None) is base
    with pytest.raises(ValidationError):
        base.updated({"requests_per_minute": -1})


async def test_token_budget_refuses_model_calls_once_used_up(make_limiter: MakeLimiter) -> None:
    """check_tokens passes while budget remains, consumes nothing; record_tokens counts even past the
    limit; then check_tokens is a 429 naming tokens per minute. Request limits are separate."""
    limiter = make_limiter(per_user={"tokens_per_minute": 1000, "requests_per_minute": 100})
    user = {"user": "u1"}
    state = await limiter.check_tokens(user)
    assert state.headers()["RateLimit-Remaining"] == "1000"
    assert (await limiter.check_tokens(user)).headers()["RateLimit-Remaining"] == "1000"

    assert (await limiter.record_tokens(user, 600)).headers()["RateLimit-Remaining"] == "400"
    assert (await limiter.check_tokens(user)).headers()["RateLimit-Remaining"] == "400"
    over = await limiter.record_tokens(user, 700)  # past the budget: recorded, not refused
    assert over.headers()["RateLimit-Remaining"] == "0"
    assert over.limits[0].used > 1000

    with pytest.raises(RateLimitedError) as refused:
        await limiter.check_tokens(user)
    assert "1000 tokens per minute for this user" in refused.value.message
    assert refused.value.retry_after >= 1
    assert refused.value.headers["RateLimit-Policy"] == "1000;w=60"
    # Requests are limited on their own count, and other users have their own budget.
    assert (await limiter.hit_request(user)).headers()["RateLimit-Remaining"] == "99"
    await limiter.check_tokens({"user": "u2"})
    assert (await limiter.record_tokens(user, 0)).limits == ()
    with pytest.raises(ValueError, match="tokens"):
        await limiter.record_tokens(user, -1)


async def test_quota_refills_after_retry_after_and_fully_after_two_windows(make_limiter: MakeLimiter) -> None:
    """After waiting Retry-After a request is admitted again; two windows after the last hit the
    whole quota is back."""
    limiter = make_limiter(per_ip={"requests_per_minute": 3}, window_seconds=1)
    assert await admitted(lambda: limiter.hit_request({"ip": IP}), 10) == 3
    with pytest.raises(RateLimitedError) as refused:
        await limiter.hit_request({"ip": IP})
    assert refused.value.headers["RateLimit-Policy"] == "3;w=1"
    await asyncio.sleep(refused.value.retry_after)
    await limiter.hit_request({"ip": IP})
    await asyncio.sleep(2.05)
    assert await admitted(lambda: limiter.hit_request({"ip": IP}), 10) == 3


async def test_no_limits_apply_when_disabled_unset_or_unknown_to_the_caller(
    make_limiter: MakeLimiter,
) -> None:
    """Disabled limits, zero quotas and absent identities admit everything with no headers; an
    unknown scope name is a programming error."""
    off = make_limiter(enabled=False, per_ip={"requests_per_minute": 1})
    assert await admitted(lambda: off.hit_request({"ip": IP}), 5) == 5
    on = make_limiter(per_ip={"requests_per_minute": 1})
    assert (await on.hit_request({"key": "k1", "user": "u1", "ip": None})).headers() == {}
    assert (await on.check_tokens({"ip": IP})).headers() == {}
    with pytest.raises(ValueError, match="team"):
        await on.hit_request({"team": "t1"})


async def test_redis_keys_are_prefixed_and_expire(redis_prefix: str) -> None:
    """Counters live under `<prefix>:ratelimit:` and expire two windows after the last write; a very
    long identity is hashed into a short key."""
    limiter, close = rate_limiter(
        RateLimitSettings(per_user=RateLimit(requests_per_minute=5)), REDIS_URL, redis_prefix
    )
    await limiter.hit_request({"user": "u1"})
    await limiter.hit_request({"user": "x" * 500})
    await close()
    client = redis.Redis.from_url(REDIS_URL)
    keys = sorted(key.decode() for key in client.scan_iter(f"{redis_prefix}:*"))
    assert keys[1] == f"{redis_prefix}:ratelimit:req:60:user:u1"
    assert keys[0].startswith(f"{redis_prefix}:ratelimit:req:60:user:sha256-")
    assert len(keys[0]) < 120
    assert 60_000 < client.pttl(keys[1]) <= 120_000
    client.close()


def test_two_processes_sharing_redis_admit_exactly_the_limit_in_total(redis_prefix: str) -> None:
    """Two OS processes, each with its own RateLimiter, fire 150 concurrent hits each at the same
    instant on one Redis prefix: exactly `limit` are admitted in total, none fails."""
    limit, hits = 40, 150
    start_at = time.time() + 2.5  # both processes are importing and connected by then
    command = [sys.executable, "-m", "tests.security.ratelimit_worker", REDIS_URL, redis_prefix]
    workers = [
        subprocess.Popen(
            [*command, str(limit), str(hits), str(start_at)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        outcomes.append(json.loads(out))
    assert sum(o["failed"] for o in outcomes) == 0
    assert sum(o["admitted"] for o in outcomes) == limit
    assert sum(o["refused"] for o in outcomes) == 2 * hits - limit


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_redis_down_closed_refuses_with_503_but_records_tokens_quietly() -> None:
    """`on_store_error = "closed"`: requests and token checks get 503 `rate_limit_unavailable` with
    Retry-After; recording tokens after a model call never fails the call."""
    settings = RateLimitSettings(
        on_store_error="closed", per_ip=RateLimit(requests_per_minute=5, tokens_per_minute=100)
    )
    limiter, close = rate_limiter(settings, closed_port_url(), "agenthost")
    for _ in range(2):  # the first call fails on Redis, the second inside the retry back-off
        with pytest.raises(RateLimitUnavailableError) as unavailable:
            await limiter.hit_request({"ip": IP})
        error = unavailable.value
        assert isinstance(error, AgentHostError)
        assert (error.status, error.code) == (503, "rate_limit_unavailable")
        assert int(error.headers["Retry-After"]) >= 1
    with pytest.raises(RateLimitUnavailableError):
        await limiter.check_tokens({"ip": IP})
    state = await limiter.record_tokens({"ip": IP}, 50)
    assert state.degraded
    await close()


async def test_redis_down_open_admits_everything_and_warns_once() -> None:
    """`on_store_error = "open"`: every request is admitted, without RateLimit headers, flagged as
    degraded; the warning is logged once, not once per request."""
    settings = RateLimitSettings(on_store_error="open", per_ip=RateLimit(requests_per_minute=2))
    limiter, close = rate_limiter(settings, closed_port_url(), "agenthost")
    with structlog.testing.capture_logs() as logs:
        states = [await limiter.hit_request({"ip": IP}) for _ in range(10)]
    assert all(state.degraded and state.headers() == {} for state in states)
    warnings = [log for log in logs if log["event"] == "rate_limit_store_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["on_store_error"] == "open"
    assert "ConnectionError" in warnings[0]["error"]
    await close()


async def test_redis_down_local_keeps_limiting_in_process() -> None:
    """`on_store_error = "local"` (the default): while Redis is down each process still enforces the
    limits on its own counts."""
    settings = RateLimitSettings(per_ip=RateLimit(requests_per_minute=3))
    assert settings.on_store_error == "local"
    limiter, close = rate_limiter(settings, closed_port_url(), "agenthost")
    states = [await limiter.hit_request({"ip": IP}) for _ in range(3)]
    assert all(state.degraded for state in states)
    assert states[-1].headers()["RateLimit-Remaining"] == "0"
    with pytest.raises(RateLimitedError):
        await limiter.hit_request({"ip": IP})
    await close()


class Relay:
    """A TCP relay to the real Redis that can be cut and restored, to take Redis away and back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_limiter_returns_to_redis_after_an_outage(redis_prefix: str) -> None:
    """Redis goes away: calls fall back (degraded) without waiting on Redis; once it is back and
    `store_retry_seconds` has passed, counting is shared in Redis again."""
    relay = Relay()
    await relay.start()
    settings = RateLimitSettings(per_ip=RateLimit(requests_per_minute=100), store_retry_seconds=0.3)
    limiter, close = rate_limiter(settings, f"redis://127.0.0.1:{relay.port}/0", redis_prefix)
    client = redis.Redis.from_url(REDIS_URL)
    key = f"{redis_prefix}:ratelimit:req:60:ip:{IP}"

    assert not (await limiter.hit_request({"ip": IP})).degraded
    assert client.hget(key, "c") == b"1"

    await relay.stop()
    assert (await limiter.hit_request({"ip": IP})).degraded
    assert (await limiter.hit_request({"ip": IP})).degraded  # inside the back-off: Redis not tried
    assert client.hget(key, "c") == b"1"

    await relay.start()
    await asyncio.sleep(0.4)
    state = await limiter.hit_request({"ip": IP})
    assert not state.degraded
    assert client.hget(key, "c") == b"2"
    await close()
    await relay.stop()
    client.close()


@pytest.mark.parametrize(
    ("peer", "forwarded", "settings", "expected"),
    [
        ("10.0.0.2", "198.51.100.7", {}, "10.0.0.2"),  # not trusted: the header is ignored
        ("10.0.0.2", "198.51.100.7, 203.0.113.9", {"trust_forwarded_for": True}, "203.0.113.9"),
        (
            "10.0.0.2",
            "6.6.6.6, 198.51.100.7, 203.0.113.9",
            {"trust_forwarded_for": True, "trusted_proxy_hops": 2},
            "198.51.100.7",
        ),
        ("10.0.0.2", "203.0.113.9", {"trust_forwarded_for": True, "trusted_proxy_hops": 3}, "203.0.113.9"),
        ("10.0.0.2", "not-an-ip", {"trust_forwarded_for": True}, "10.0.0.2"),
        ("10.0.0.2", " , ", {"trust_forwarded_for": True}, "10.0.0.2"),
        ("2001:db8:1:2:aaaa::1", None, {}, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", None, {}, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", None, {"ipv6_prefix_length": 128}, "2001:db8:1:2:bbbb::7/128"),
        ("::ffff:192.0.2.1", None, {}, "192.0.2.1"),
        ("10.0.0.2", "[2001:db8::5]", {"trust_forwarded_for": True}, "2001:db8::/64"),
        ("testclient", None, {}, "testclient"),
        (None, None, {}, None),
    ],
)
def test_client_ip(
    peer: str | None, forwarded: str | None, settings: dict[str, Any], expected: str | None
) -> None:
    """The client address: the peer unless X-Forwarded-For is trusted (then the entry `hops` from the
    right); IPv6 grouped by network; IPv4-mapped unwrapped."""
    assert client_ip(peer, forwarded, RateLimitSettings.model_validate(settings)) == expected


def test_settings_defaults_and_validation() -> None:
    """Only the per-address request limit is on by default; quotas cannot be negative; typos are errors."""
    settings = RateLimitSettings()
    assert settings.per_ip == RateLimit(requests_per_minute=600)
    assert settings.per_key == settings.per_user == RateLimit()
    assert (settings.window_seconds, settings.on_store_error, settings.trust_forwarded_for) == (
        60,
        "local",
        False,
    )
    with pytest.raises(ValidationError):
        RateLimitSettings.model_validate({"per_ip": {"requests_per_minute": -1}})
    with pytest.raises(ValidationError):
        RateLimitSettings.model_validate({"per_ip": {"request_per_minute": 5}})
    with pytest.raises(ValidationError):
        RateLimitSettings.model_validate({"on_store_error": "maybe"})


def test_docstring_examples() -> None:
    """The examples in the module's docstrings run as written."""
    assert doctest.testmod(ratelimit).failed == 0
