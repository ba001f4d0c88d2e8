"""Cost of one rate-limit check, the work agenthost adds to every request.

Each row is one way of checking a request against three limits (API key, user, client address):

* agenthost memory     `RateLimiter` in process (the default);
* agenthost redis      `RateLimiter` on Redis: one Lua script checks and counts all three limits;
* agenthost 429        the refusal path (an exhausted limit: what a flood costs the server);
* limits memory/redis  the `limits` library's sliding-window-counter strategy, per limit a `hit`
                       plus a `get_window_stats` for the headers (what agenthost would do with it).

Sequential columns: wall time per check, one at a time (p50, p99), and the process's CPU time per
check. `conc/s`: checks per second with `--concurrency` checks in flight (one event loop).

Usage: .venv/bin/python bench/ratelimit.py [--count 20000] [--concurrency 64] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from agenthost.config.security import RateLimit, RateLimitSettings
from agenthost.errors import RateLimitedError
from agenthost.security.ratelimit import RateLimiter
from agenthost.storage.ratelimit_redis import RedisCounters
from agenthost.storage.redis_client import RedisKeys, redis_client

BIG = RateLimit(requests_per_minute=1_000_000_000)
IDENTITIES = {"key": "k1", "user": "u1", "ip": "203.0.113.9"}

Check = Callable[[], Awaitable[object]]


async def measure(check: Check, count: int, concurrency: int) -> tuple[float, float, float, float]:
    """(p50 µs, p99 µs, CPU µs per check, checks/s at `concurrency`)."""
    for _ in range(min(count // 10, 500)):
        await check()
    samples = []
    cpu = time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        await check()
        samples.append(time.perf_counter() - started)
    cpu_per = (time.process_time() - cpu) / count
    samples.sort()
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]

    per_worker = count // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await check()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = per_worker * concurrency / (time.perf_counter() - started)
    return p50 * 1e6, p99 * 1e6, cpu_per * 1e6, rate


def limiter_for(settings: RateLimitSettings, url: str | None, prefix: str) -> tuple[RateLimiter, Any]:
    """A limiter in process, or on Redis with its own pool (closed by the caller)."""
    if url is None:
        return RateLimiter(settings, RedisKeys(prefix)), None
    client = redis_client(url, max_connections=64, timeout=settings.store_timeout_seconds)
    return RateLimiter(settings, RedisKeys(prefix), shared=RedisCounters(client)), client


def agenthost_check(url: str | None, prefix: str) -> tuple[Check, Any]:
    limiter, client = limiter_for(RateLimitSettings(per_key=BIG, per_user=BIG, per_ip=BIG), url, prefix)
    return lambda: limiter.hit_request(IDENTITIES), client


def refusal_check(url: str | None, prefix: str) -> tuple[Check, Any]:
    settings = RateLimitSettings(per_ip=RateLimit(requests_per_minute=1))
    limiter, client = limiter_for(settings, url, prefix)

    async def check() -> None:
        with contextlib.suppress(RateLimitedError):
            await limiter.hit_request({"ip": "198.51.100.1"})

    return check, client


def limits_check(storage: MemoryStorage | RedisStorage) -> Check:
    strategy = SlidingWindowCounterRateLimiter(storage)
    item = RateLimitItemPerMinute(1_000_000_000)

    async def check() -> None:
        for scope, identity in IDENTITIES.items():
            if not await strategy.hit(item, scope, identity):
                raise RuntimeError("refused")
            await strategy.get_window_stats(item, scope, identity)

    return check


async def main(count: int, concurrency: int, url: str) -> None:
    prefix = f"agenthost-bench-{secrets.token_hex(4)}"
    rows: list[tuple[str, tuple[float, float, float, float]]] = []
    clients: list[Any] = []
    for name, (check, client) in [
        ("agenthost memory", agenthost_check(None, prefix)),
        ("agenthost redis", agenthost_check(url, prefix)),
        ("agenthost 429 memory", refusal_check(None, prefix)),
        ("agenthost 429 redis", refusal_check(url, prefix)),
    ]:
        clients.append(client)
        rows.append((name, await measure(check, count, concurrency)))
    redis_storage = RedisStorage(f"async+{url}", implementation="redispy", key_prefix=prefix)
    rows.append(("limits memory", await measure(limits_check(MemoryStorage()), count, concurrency)))
    rows.append(("limits redis", await measure(limits_check(redis_storage), count, concurrency)))

    print(f"{count} checks of 3 limits each; concurrency {concurrency}")
    print(f"{'check':<22}{'p50 µs':>9}{'p99 µs':>9}{'CPU µs':>9}{'conc/s':>10}")
    for name, (p50, p99, cpu, rate) in rows:
        print(f"{name:<22}{p50:>9.1f}{p99:>9.1f}{cpu:>9.1f}{rate:>10.0f}")

    for client in clients:
        if client is not None:
            await client.aclose()
    client = redis.Redis.from_url(url)
    for pattern in (f"{prefix}:*", f"{prefix}*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.concurrency, args.redis))
