"""The runtime in this process: `open_runtime` builds storage, gateway, agents, policies and DBOS
over SQLite here (no server subprocess), runs execute on durable steps, and closing it leaves
nothing behind, so it can be opened again in the same process."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agenthost.records import EventType
from agenthost.runtime.process import Runtime, open_runtime
from agenthost.runtime.spec import RunSpec
from agenthost.security.sealing import Sealer
from agenthost.settings import Settings
from agenthost.storage.engine import create_dbos_engine
from agenthost.testing import MockLLMServer
from tests.harness import mock_models


def _settings(tmp_path: Path, mock_url: str) -> Settings:
    return Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp_path / 'data' / 'agenthost.db'}",
            "agents": {
                "plain": {"path": "tests.agents.plain:agent", "model": "mock"},
                "crashy": {
                    "path": "tests.agents.crashy:agent",
                    "model": "mock",
                    "tools": {"charge": {"execution": "at_most_once"}},
                },
            },
            "models": mock_models(mock_url),
            "durability": {"app_name": "agenthost-inproc", "events_flush_interval": 0.05},
            "default_tool_risk": "low",
        }
    )


@pytest.fixture
def tool_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTHOST_TEST_TOOL_LOG", str(tmp_path / "tools"))
    return tmp_path / "tools"


async def _run(runtime: Runtime, agent: str, text: str) -> tuple[dict[str, Any], list[Any]]:
    submission = await runtime.service.submit(RunSpec(agent=agent, input=text), idempotency_key=None)
    row = await runtime.service.wait(submission, 30)
    assert row is not None
    events = [event async for event in runtime.service.follow(row["id"])]
    return row, events


def _dbos_text(runtime: Runtime) -> str:
    """Everything DBOS recorded (its input, output and step output columns), as text: as stored,
    and base64-decoded (DBOS stores pickles in base64)."""
    engine = create_dbos_engine(runtime.backends.urls)
    assert engine is not None
    texts = []
    with engine.connect() as conn:
        for table, columns in (
            ("workflow_status", ("inputs", "output")),
            ("operation_outputs", ("output",)),
        ):
            for row in conn.execute(sa.text(f"SELECT {', '.join(columns)} FROM {table}")):
                for value in row:
                    texts.append(str(value))
                    with contextlib.suppress(binascii.Error, ValueError):
                        texts.append(base64.b64decode(str(value), validate=True).decode("utf-8", "replace"))
    engine.dispose()
    return "\n".join(texts)


async def test_a_run_executes_in_process_and_dbos_keeps_its_words_sealed(
    tmp_path: Path, mock: MockLLMServer, tool_log: Path
) -> None:
    """A tool-using run ends `succeeded` with consecutive event ids; its row, its events and the
    summary the workflow returned agree; DBOS's records hold its words only sealed with the run's
    key, and they open with it."""
    async with open_runtime(_settings(tmp_path, mock.url)) as runtime:
        row, events = await _run(runtime, "crashy", "[crash] SECRET-WIDGET")
        stored = await runtime.service.get(row["id"])
        steps = await runtime.recovery.steps(row["id"])
        key = await runtime.backends.runs.data_key(row["id"])
        recorded = _dbos_text(runtime)
    assert row["status"] == stored["status"] == "succeeded"
    assert row["output"] == stored["output"] == "done: [crash] SECRET-WIDGET"
    assert (row["tool_calls"], row["requests"]) == (stored["tool_calls"], stored["requests"]) == (2, 3)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type is EventType.RUN_STARTED
    assert events[-1].type is EventType.RUN_COMPLETED
    tools = [event.data["name"] for event in events if event.type is EventType.TOOL_RESULT]
    assert tools == ["lookup", "charge"]
    assert [step["kind"] for step in steps if step["kind"] != "other"] == [
        "model",
        "tool",
        "model",
        "tool",
        "tool",
        "model",
    ]
    assert (tool_log / "charge.log").read_text().splitlines() == ["[crash] SECRET-WIDGET"]
    # DBOS keeps the prompt, the responses and the tool values only sealed with the run's key.
    assert "SECRET-WIDGET" not in recorded
    assert key is not None
    blobs = set(re.findall(r"s1\.[A-Za-z0-9_=-]+", recorded))
    assert blobs
    opened = json.dumps([Sealer(key).open(blob) for blob in blobs])
    assert "SECRET-WIDGET" in opened


async def test_the_runtime_opens_again_in_the_same_process(tmp_path: Path, mock: MockLLMServer) -> None:
    """Nothing is left registered or open after a runtime closes: a second one (another database,
    the same process) runs too, and the first one's runs are still readable by a third."""
    first = tmp_path / "first"
    async with open_runtime(_settings(first, mock.url)) as runtime:
        row, _ = await _run(runtime, "plain", "hello one")
    async with open_runtime(_settings(tmp_path / "second", mock.url)) as runtime:
        again, _ = await _run(runtime, "plain", "hello two")
    async with open_runtime(_settings(first, mock.url)) as runtime:
        reread = await runtime.service.get(row["id"])
    assert (row["status"], again["status"]) == ("succeeded", "succeeded")
    assert again["output"] == "Mock reply to: hello two"
    assert reread["output"] == "Mock reply to: hello one"
