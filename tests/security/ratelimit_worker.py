"""One process of the cross-process rate-limit test: its own `RateLimiter` on a shared Redis prefix.

    python -m tests.security.ratelimit_worker REDIS_URL PREFIX LIMIT HITS START_AT

Waits until the wall-clock time START_AT, fires HITS concurrent requests from one client address
and prints `{"admitted": n, "refused": n, "failed": n}` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from agenthost.config.security import RateLimit, RateLimitSettings
from agenthost.errors import RateLimitedError
from tests.harness import rate_limiter

ADDRESS = "198.51.100.23"


async def main(url: str, prefix: str, limit: int, hits: int, start_at: float) -> dict[str, int]:
    # A long window, so the burst cannot straddle a window boundary in any meaningful way.
    settings = RateLimitSettings(
        per_ip=RateLimit(requests_per_minute=limit),
        window_seconds=600,
        on_store_error="closed",
        # A loaded CI machine must not turn a slow connect into a failure.
        store_timeout_seconds=5,
    )
    limiter, close = rate_limiter(settings, url, prefix)
    outcomes = {"admitted": 0, "refused": 0, "failed": 0}

    async def one() -> None:
        try:
            await limiter.hit_request({"ip": ADDRESS})
        except RateLimitedError:
            outcomes["refused"] += 1
        except Exception:
            outcomes["failed"] += 1
        else:
            outcomes["admitted"] += 1

    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(one() for _ in range(hits)))
    await close()
    return outcomes


if __name__ == "__main__":
    url, prefix, limit, hits, start_at = sys.argv[1:6]
    print(json.dumps(asyncio.run(main(url, prefix, int(limit), int(hits), float(start_at)))))
