"""Rate limits per API key, per user and per client address, on requests and on model tokens.

Each limit is a sliding-window counter: the current fixed window's count plus the previous
window's, weighted by how much of it still overlaps the last `window_seconds`
(`used = previous * (1 - elapsed fraction) + current`). A request is admitted when
`used + 1 <= limit` for every limit that applies. A limit is three numbers whatever its quota,
and a token cost of any size is one addition (a moving-window log keeps an entry per unit).

The counters live in process (a dict changed under a lock with no await between check and
increment; each process counts on its own) or, with `[redis] url`, in Redis: one Lua script per
call checks every limit and increments all of them or none, on Redis's clock (`TIME`), so all
replicas share exact counts whatever their clocks say. The `limits` library does not fit: it
hits one limit per call (a refusal by one scope would still use another's quota; headers need
extra round trips), refuses a cost that passes the limit (token use is known only after the
model call and must be recorded), and its Redis scripts use the client's clock.

When Redis fails, `on_store_error` decides (`local`: count in process, `open`: admit, `closed`:
503 `rate_limit_unavailable`) and Redis is left alone for `store_retry_seconds`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from agenthost.config.security import RateLimit, RateLimitSettings
from agenthost.errors import RateLimitedError, RateLimitUnavailableError, StoreUnavailableError
from agenthost.storage.protocols import RateCounterStore, refuses
from agenthost.storage.protocols import RateKind as Kind
from agenthost.storage.protocols import RateLimitEntry as Limit
from agenthost.storage.protocols import RateMode as Mode
from agenthost.storage.protocols import RateOutcome as Outcome
from agenthost.storage.protocols import RateScope as Scope
from agenthost.storage.ratelimit_memory import MemoryCounters
from agenthost.storage.redis_client import RedisKeys

__all__ = [
    "LimitStatus",
    "RateLimit",
    "RateLimitSettings",
    "RateLimitUnavailableError",
    "RateLimiter",
    "RateState",
    "client_ip",
]


SCOPES: tuple[Scope, ...] = ("key", "user", "ip")
_SCOPE_LABELS: dict[str, str] = {"key": "API key", "user": "user", "ip": "client address"}
_KIND_KEYS: dict[Kind, str] = {"requests": "req", "tokens": "tok"}
_MAX_IDENTITY = 128
_WARN_INTERVAL = 30.0

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LimitStatus:
    """One limit after a call: its quota, its use and when it frees up.

    Attributes:
        scope: `key`, `user` or `ip`.
        kind: `requests` or `tokens`.
        limit: Quota per window.
        window: Window length in seconds.
        used: Weighted use in the sliding window (may pass `limit` for tokens).
        remaining: Whole units that would be admitted now (never negative).
        reset: Seconds until the quota grows: until a unit is admitted again when `remaining` is 0,
            else until the current window closes.
        retry_after: Seconds until the refused call would be admitted; 0 if this limit admitted it.
    """

    scope: Scope
    kind: Kind
    limit: int
    window: int
    used: float
    remaining: int
    reset: int
    retry_after: int

    @property
    def policy(self) -> str:
        """The `RateLimit-Policy` item, e.g. `600;w=60`."""
        return f"{self.limit};w={self.window}"

    def headers(self) -> dict[str, str]:
        """This limit as `RateLimit-Limit`, `-Remaining`, `-Reset` and `-Policy` fields."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": self.policy,
        }


@dataclass(frozen=True)
class RateState:
    """The limits that applied to a call, for the `RateLimit-*` response headers.

    `degraded` is true when the store failed and `on_store_error` admitted the call.
    """

    limits: tuple[LimitStatus, ...] = ()
    degraded: bool = False

    @property
    def tightest(self) -> LimitStatus | None:
        """The limit closest to exhaustion (fewest remaining, then smallest quota)."""
        return min(self.limits, key=lambda s: (s.remaining, s.limit), default=None)

    def headers(self) -> dict[str, str]:
        """`RateLimit-Limit`, `-Remaining`, `-Reset` and `-Policy` of the tightest limit (IETF
        draft-ietf-httpapi-ratelimit-headers); empty when no limit applied."""
        tightest = self.tightest
        return tightest.headers() if tightest is not None else {}

    def merged(self, other: RateState) -> RateState:
        """Both states' limits (e.g. requests and tokens), for one set of headers."""
        return RateState(self.limits + other.limits, self.degraded or other.degraded)


def client_ip(peer: str | None, forwarded_for: str | None, settings: RateLimitSettings) -> str | None:
    """The client address a request is limited by.

    `peer` is the TCP peer (`request.client.host`); `forwarded_for` the `X-Forwarded-For` header,
    used only with `trust_forwarded_for`. IPv4-mapped IPv6 becomes IPv4; other IPv6 addresses
    become their `/ipv6_prefix_length` network. A peer that is not an address is returned as is.

    >>> s = RateLimitSettings(trust_forwarded_for=True)
    >>> client_ip("10.0.0.2", "198.51.100.7, 203.0.113.9", s)
    '203.0.113.9'
    >>> client_ip("2001:db8::1", None, s)
    '2001:db8::/64'
    """
    candidate = peer
    if settings.trust_forwarded_for and forwarded_for:
        hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if hops:
            chosen = (
                hops[-settings.trusted_proxy_hops] if len(hops) >= settings.trusted_proxy_hops else hops[0]
            )
            if _parse_ip(chosen) is not None:
                candidate = chosen
    if candidate is None:
        return None
    address = _parse_ip(candidate)
    if address is None:
        return candidate or None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, settings.ipv6_prefix_length), strict=False))
    return str(address)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _wait(limit: int, need: float, counts: tuple[int, int], elapsed: float, window: int) -> float:
    """Seconds until `used + need <= limit`, with no further traffic (used decays linearly)."""
    cur, prev = counts
    if prev * (1 - elapsed) + cur + need <= limit:
        return 0.0
    if cur + need > limit:
        # Only after this window closes, while `cur` (then the previous count) decays.
        fraction = 1 - (limit - need) / max(cur, 1)
        return (1 - elapsed) * window + max(0.0, fraction) * window
    fraction = 1 - (limit - cur - need) / prev
    return max(0.0, fraction - elapsed) * window


def _status(limit: Limit, mode: Mode, outcome: Outcome, window: int, counts: tuple[int, int]) -> LimitStatus:
    cur, prev = counts
    elapsed = outcome.now / window - math.floor(outcome.now / window)
    used = prev * (1 - elapsed) + cur
    remaining = max(0, math.floor(limit.limit - used + 1e-9))
    # A token check needs any budget left (`used < limit`); a request needs room for its cost.
    need = 1e-6 if mode == "check" else float(limit.cost)
    # Counts of a refused call are from before it (nothing was counted): find the limits that refused.
    refused = not outcome.passed and refuses(mode, limit, used)
    retry_after = max(1, math.ceil(_wait(limit.limit, need, counts, elapsed, window))) if refused else 0
    if remaining == 0:
        reset = max(1, math.ceil(_wait(limit.limit, min(need, 1.0), counts, elapsed, window)))
    else:
        reset = max(1, math.ceil((1 - elapsed) * window))
    return LimitStatus(limit.scope, limit.kind, limit.limit, window, used, remaining, reset, retry_after)


class RateLimiter:
    """Admits or refuses requests and model calls by the configured limits.

    One per process; with `shared` counters (Redis), all processes sharing them count together.

    >>> import asyncio
    >>> settings = RateLimitSettings(per_ip=RateLimit(requests_per_minute=2))
    >>> limiter = RateLimiter(settings, RedisKeys("agenthost"))
    >>> state = asyncio.run(limiter.hit_request({"ip": "203.0.113.9"}))
    >>> state.headers()["RateLimit-Remaining"], state.headers()["RateLimit-Policy"]
    ('1', '2;w=60')
    """

    def __init__(
        self, settings: RateLimitSettings, keys: RedisKeys, *, shared: RateCounterStore | None = None
    ) -> None:
        self.settings = settings
        self._keys = keys
        self._memory = MemoryCounters()
        self._redis = shared
        """Counters shared by every replica (Redis); None: this process counts on its own."""
        self._redis_retry_at = 0.0
        self._warned_at = -math.inf
        self._suppressed = 0

    def key_overrides(self, own: Mapping[str, int | None] | None) -> dict[str, RateLimit] | None:
        """An API key's own `rate_limits` as overrides of `per_key` (None when it has none)."""
        return {"key": self.settings.per_key.updated(own)} if own else None

    @property
    def backend(self) -> Literal["memory", "redis"]:
        """Where the counters live."""
        return "memory" if self._redis is None else "redis"

    async def hit_request(
        self, identities: Mapping[str, str | None], overrides: Mapping[str, RateLimit] | None = None
    ) -> RateState:
        """Count one request against every requests-per-window limit that applies, or refuse it.

        `identities` maps scopes (`key`, `user`, `ip`) to the caller's id in each (None: the scope
        does not apply); `overrides` replace the configured limit of a scope (a key's own limits).
        The request is counted in all scopes or in none: a refusal uses up no quota.

        Raises:
            RateLimitedError: 429 `rate_limited`, with `Retry-After` and `RateLimit-*` headers.
            RateLimitUnavailableError: 503, Redis failed and `on_store_error = "closed"`.
        """
        return await self._apply("hit", "requests", identities, overrides, 1)

    async def check_tokens(
        self, identities: Mapping[str, str | None], overrides: Mapping[str, RateLimit] | None = None
    ) -> RateState:
        """Refuse a model call when a tokens-per-window budget that applies is already used up.

        Nothing is consumed: the call's tokens are known only afterwards (`record_tokens`).

        Raises:
            RateLimitedError: 429 `rate_limited`, the message naming the tokens limit.
            RateLimitUnavailableError: 503, Redis failed and `on_store_error = "closed"`.
        """
        return await self._apply("check", "tokens", identities, overrides, 0)

    async def record_tokens(
        self,
        identities: Mapping[str, str | None],
        tokens: int,
        overrides: Mapping[str, RateLimit] | None = None,
    ) -> RateState:
        """Count the tokens a model call used, in every scope, even past the limit.

        A call that passes the budget leaves it negative: `check_tokens` refuses until the use
        has decayed below the limit (at most two windows later). Never raises for store errors:
        the model call has already happened, so the tokens are counted in process (`local`) or
        dropped, with a warning.
        """
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if tokens == 0:
            return RateState()
        try:
            return await self._apply("record", "tokens", identities, overrides, tokens)
        except RateLimitUnavailableError:
            return RateState(degraded=True)

    def _limits(
        self,
        kind: Kind,
        identities: Mapping[str, str | None],
        overrides: Mapping[str, RateLimit] | None,
        cost: int,
    ) -> list[Limit]:
        unknown = (set(identities) | set(overrides or {})) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown rate-limit scopes {sorted(unknown)}; use {list(SCOPES)}")
        limits: list[Limit] = []
        for scope in SCOPES:
            identity = identities.get(scope)
            if not identity:
                continue
            override = (overrides or {}).get(scope)
            applied: RateLimit = override if override is not None else getattr(self.settings, f"per_{scope}")
            quota: int = getattr(applied, f"{kind}_per_minute")
            if quota:
                if len(identity) > _MAX_IDENTITY:  # keys stay short whatever a JWT's user claim holds
                    identity = "sha256-" + hashlib.sha256(identity.encode()).hexdigest()
                key = self._keys.rate(_KIND_KEYS[kind], self.settings.window_seconds, scope, identity)
                limits.append(Limit(scope, kind, key, quota, cost))
        return limits

    async def _apply(
        self,
        mode: Mode,
        kind: Kind,
        identities: Mapping[str, str | None],
        overrides: Mapping[str, RateLimit] | None,
        cost: int,
    ) -> RateState:
        if not self.settings.enabled:
            return RateState()
        limits = self._limits(kind, identities, overrides, cost)
        if not limits:
            return RateState()
        window = self.settings.window_seconds
        if self._redis is None:
            outcome: Outcome | None = await self._memory.apply(mode, window, limits)
            degraded = False
        else:
            outcome, degraded = await self._apply_redis(mode, window, limits)
        if outcome is None:
            return RateState(degraded=True)
        statuses = tuple(
            _status(limit, mode, outcome, window, counts)
            for limit, counts in zip(limits, outcome.counts, strict=True)
        )
        if not outcome.passed:
            raise _refusal(statuses)
        return RateState(statuses, degraded)

    async def _apply_redis(
        self, mode: Mode, window: int, limits: Sequence[Limit]
    ) -> tuple[Outcome | None, bool]:
        """Redis's answer, or `on_store_error`'s while Redis fails (None: admit uncounted)."""
        assert self._redis is not None
        error: BaseException | None = None
        if time.monotonic() >= self._redis_retry_at:
            try:
                # The pool is shared with slower callers: this bounds the wait for a connection too.
                async with asyncio.timeout(self.settings.store_timeout_seconds):
                    return await self._redis.apply(mode, window, limits), False
            except (StoreUnavailableError, TimeoutError) as exc:
                self._redis_retry_at = time.monotonic() + self.settings.store_retry_seconds
                error = exc
        policy = self.settings.on_store_error
        self._warn(policy, error)
        if policy == "closed":
            retry = max(1, math.ceil(self.settings.store_retry_seconds))
            raise RateLimitUnavailableError(
                "rate limits cannot be checked (the rate-limit store is unavailable); retry shortly"
            ).with_headers({"Retry-After": str(retry)})
        if policy == "open":
            return None, True
        return await self._memory.apply(mode, window, limits), True

    def _warn(self, policy: str, error: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._warned_at < _WARN_INTERVAL:
            self._suppressed += 1
            return
        detail = f"{type(error).__name__}: {error}"[:300] if error is not None else "retry back-off"
        _log.warning(
            "rate_limit_store_unavailable", on_store_error=policy, error=detail, suppressed=self._suppressed
        )
        self._warned_at, self._suppressed = now, 0


def _refusal(statuses: Sequence[LimitStatus]) -> RateLimitedError:
    refusing = [s for s in statuses if s.retry_after] or list(statuses)
    worst = max(refusing, key=lambda s: s.retry_after)
    per = "minute" if worst.window == 60 else f"{worst.window} s"  # noqa: PLR2004
    message = (
        f"rate limit exceeded: {worst.limit} {worst.kind} per {per} for this {_SCOPE_LABELS[worst.scope]}; "
        f"retry in {worst.retry_after} s"
    )
    headers = {**worst.headers(), "RateLimit-Remaining": "0", "RateLimit-Reset": str(worst.retry_after)}
    details = {"scope": worst.scope, "limit": f"{worst.kind}_per_minute", "policy": worst.policy}
    return RateLimitedError(message, retry_after=worst.retry_after, headers=headers, details=details)


async def wait_for_tokens(
    limiter: RateLimiter,
    identities: Mapping[str, str | None],
    overrides: Mapping[str, RateLimit] | None = None,
    max_wait_seconds: float = 60.0,
) -> None:
    """Wait (up to `max_wait_seconds` in all) until the tokens-per-minute budgets have room, for
    work that can wait (a background run's model call); then `RateLimitedError`."""
    waited = 0.0
    while True:
        try:
            await limiter.check_tokens(identities, overrides)
        except RateLimitedError as exc:
            if waited + exc.retry_after > max_wait_seconds:
                raise
            await asyncio.sleep(exc.retry_after)
            waited += exc.retry_after
        else:
            return
