"""Agent for durability tests: its tools log every execution to files the tests read.

`AGENTHOST_TEST_TOOL_LOG` names the directory. `charge` is configured at-most-once by the tests;
`explode` raises until the file `explode.ok` exists; `suicide` kills its own server process.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from pydantic_ai import Agent

agent = Agent(name="crashy", instructions="Use the tools you are told to use.")


def _log_dir() -> Path:
    path = Path(os.environ.get("AGENTHOST_TEST_TOOL_LOG", "."))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _append(name: str, line: str) -> None:
    with (_log_dir() / name).open("a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


@agent.tool_plain
async def lookup(item: str) -> str:
    """Look an item up (idempotent)."""
    _append("lookup.log", item)
    await asyncio.sleep(0.1)
    return f"{item} is in stock"


@agent.tool_plain
async def charge(item: str) -> str:
    """Charge for an item (a side effect: must not run twice)."""
    _append("charge.log", item)
    await asyncio.sleep(0.2)
    return f"charged {item}"


@agent.tool_plain
async def pay(item: str) -> str:
    """Pay for an item: the tests configure it to need approval."""
    _append("pay.log", item)
    return f"paid {item}"


@agent.tool_plain
async def reserve(item: str) -> str:
    """Reserve an item: needs approval, with a short deadline in the tests."""
    _append("reserve.log", item)
    return f"reserved {item}"


@agent.tool_plain
async def explode(item: str) -> str:
    """Fails until the test fixes the cause (creates explode.ok)."""
    _append("explode.log", item)
    if not (_log_dir() / "explode.ok").exists():
        raise RuntimeError("the payment service is down")
    return f"exploded {item} safely"


@agent.tool_plain
def suicide(item: str) -> str:
    """Kill this server process: a run that crashes its server every time."""
    _append("suicide.log", item)
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"
