"""GDPR erasure and retention, on SQLite and Postgres.

Erasure is checked against a real server's data (runs on threads, tool calls, an approval, the
DBOS records of all of them): DBOS's records hold a run's words only sealed with the run's key;
after erasing one user, neither their words nor their id remain anywhere in agenthost's tables or
in clear in DBOS's (pickled records decoded), their runs' keys are gone, the other user's rows
are byte-for-byte unchanged, the ledger keeps its totals, and the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from agenthost.config.security import RetentionSettings
from agenthost.errors import ConflictError, ContentErasedError
from agenthost.records import UsageRecord
from agenthost.security.audit import ERASED, AuditLog
from agenthost.security.privacy import Privacy, pseudonym
from agenthost.security.sealing import Sealer
from agenthost.settings import Settings
from agenthost.storage.audit import AuditStore
from agenthost.storage.backends import Backends
from agenthost.storage.engine import (
    DatabaseURLs,
    create_app_engine,
    create_dbos_engine,
    create_sync_engine,
    database_urls,
)
from agenthost.storage.ledger import LedgerStore, ledger_row
from agenthost.storage.migrate import upgrade
from agenthost.storage.redis_client import RedisKeys
from agenthost.storage.runs import RunStore
from agenthost.storage.tables import (
    metadata,
    response_cache,
    run_events,
    runs,
    semantic_cache,
    spend_ledger,
    thread_messages,
)
from agenthost.storage.threads import ThreadStore
from agenthost.testing import MockLLMServer
from tests.harness import REDIS_URL, REPO, Server, postgres_database, server_config, wait_for_status

ENDED = {"succeeded", "failed", "dead", "cancelled"}
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
DBOS_SCHEMA = "dbos"
SEALED = re.compile(r"s1\.[A-Za-z0-9_=-]+")


@pytest.fixture(params=["sqlite", "postgres"])
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, mock_server: MockLLMServer
) -> Iterator[Server]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'data' / 'agenthost.db'}"
        server = Server(tmp_path, server_config(url, mock_server.url)).start()
        yield server
        server.stop()


# -------------------------------------------------------------------------------- inspection


def _texts(value: Any) -> Iterator[str]:
    """Every text form of a stored value, DBOS's base64 pickles decoded."""
    if value is None:
        return
    if isinstance(value, (bytes, memoryview)):
        yield bytes(value).decode("utf-8", "replace")
        return
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    yield text
    if isinstance(value, str) and len(value) >= 8:
        with contextlib.suppress(binascii.Error, ValueError):
            yield base64.b64decode(value, validate=True).decode("utf-8", "replace")


def _dbos_engine(urls: DatabaseURLs) -> tuple[sa.Engine, str | None]:
    engine = create_dbos_engine(urls) or create_sync_engine(urls)
    return engine, None if urls.is_sqlite else DBOS_SCHEMA


def _dump(urls: DatabaseURLs) -> dict[str, list[dict[str, Any]]]:
    """All rows of agenthost's tables and of DBOS's system tables."""
    tables: dict[str, list[dict[str, Any]]] = {}
    engine = create_sync_engine(urls)
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            tables[table.name] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    engine.dispose()
    engine, schema = _dbos_engine(urls)
    with engine.connect() as conn:
        for name in sa.inspect(engine).get_table_names(schema=schema):
            table = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema)
            tables[f"dbos.{name}"] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    engine.dispose()
    return tables


def _haystack(dump: dict[str, list[dict[str, Any]]]) -> str:
    return "\n".join(
        text for rows in dump.values() for row in rows for v in row.values() for text in _texts(v)
    )


def _rows_of(dump: dict[str, list[dict[str, Any]]], run_ids: set[str], user: str) -> dict[str, Any]:
    """One user's rows everywhere (to compare before and after erasing someone else)."""
    keyed = {
        "runs": "id",
        "run_events": "run_id",
        "thread_messages": "run_id",
        "approvals": "run_id",
        "spend_ledger": "run_id",
        "dbos.workflow_status": "workflow_uuid",
        "dbos.workflow_input": "workflow_uuid",
        "dbos.workflow_output": "workflow_uuid",
        "dbos.operation_outputs": "workflow_uuid",
    }
    mine = {name: [r for r in dump[name] if r[column] in run_ids] for name, column in keyed.items()}
    for name in ("response_cache", "semantic_cache"):
        mine[name] = [r for r in dump[name] if r["tenant"] == user]
    mine["audit_log"] = [r for r in dump["audit_log"] if r["actor_user"] == user]
    return mine


def _steps(client: httpx.Client, run_id: str) -> list[tuple[Any, ...]]:
    response = client.get(f"/v1/runs/{run_id}/steps")
    assert response.status_code == 200, response.text
    return [
        (s["step"], s["kind"], s.get("model"), s.get("input_tokens"), s.get("output_tokens"), s.get("cost"))
        for s in response.json()["data"]
    ]


async def _seed_side_data(urls: DatabaseURLs, users: dict[str, str]) -> None:
    """Cached answers (as the cache stores write them) and audit entries, for each user."""
    engine = create_app_engine(urls)
    log = AuditLog(AuditStore(engine))
    expires = datetime.now(UTC) + timedelta(hours=1)
    async with engine.begin() as conn:
        for user, words in users.items():
            await conn.execute(
                response_cache.insert().values(
                    key=f"k-{user}", value=f"answer to {words}".encode(), expires_at=expires, tenant=user
                )
            )
            await conn.execute(
                semantic_cache.insert().values(
                    partition="p1",
                    vector=b"\0" * 16,
                    value=f"answer to {words}".encode(),
                    expires_at=expires,
                    tenant=user,
                )
            )
    for user, words in users.items():
        await log.append(
            "run.started", actor="admin-key", actor_user=user, details={"input": words}, model="gpt-4o-mini"
        )
        await log.append(
            "approval.decided",
            actor="key:k1",
            actor_user="operator",
            subject_user=user,
            details={"reason": words},
        )
    await engine.dispose()


@contextlib.asynccontextmanager
async def _privacy(url: str, **config: Any) -> AsyncIterator[Privacy]:
    """Erasure and retention over the stores a server with this configuration opens."""
    settings = Settings.model_validate({"database_url": url, **config})
    backends = await Backends.open(settings)
    try:
        yield Privacy.over(backends, AuditLog(backends.audit), settings)
    finally:
        await backends.aclose()


async def _erase(urls: DatabaseURLs, user: str, url: str | None = None, **kwargs: Any) -> Any:
    async with _privacy(url or _url(urls), **kwargs.pop("config", {})) as privacy:
        return await privacy.erase_user(user, actor="admin-key", **kwargs)


def _url(urls: DatabaseURLs) -> str:
    return f"sqlite:///{urls.sqlite_path}" if urls.sqlite_path is not None else urls.dbos_url


def _sealed_words(dump: dict[str, list[dict[str, Any]]], run_ids: set[str]) -> str:
    """Everything sealed in DBOS's records that opens with the data key of one of `run_ids`."""
    keys = [bytes(r["data_key"]) for r in dump["runs"] if r["id"] in run_ids and r["data_key"] is not None]
    dbos = _haystack({k: v for k, v in dump.items() if k.startswith("dbos.")})
    opened = []
    for blob in set(SEALED.findall(dbos)):
        for key in keys:
            with contextlib.suppress(ValueError, ContentErasedError, binascii.Error):
                opened.append(json.dumps(Sealer(key).open(blob)))
    return "\n".join(opened)


async def _verify(urls: DatabaseURLs) -> Any:
    engine = create_app_engine(urls)
    try:
        return await AuditLog(AuditStore(engine)).verify()
    finally:
        await engine.dispose()


def _ledger(dump: dict[str, list[dict[str, Any]]]) -> tuple[int, int]:
    rows = dump["spend_ledger"]
    return len(rows), sum(r["cost_nanousd"] for r in rows)


# ------------------------------------------------------------------------------------ erasure


def test_erasure_removes_everything_of_one_user_and_nothing_else(
    deployment: Server, mock: MockLLMServer
) -> None:
    token = secrets.token_hex(4)
    alice, bob = f"alice-{token}", f"bob-{token}"
    alice_words, bob_words = f"ALPHA{token}", f"BRAVO{token}"
    urls = database_urls(deployment.config["database_url"])
    with deployment.client() as client:

        def run(agent: str, text: str, user: str, thread: str | None = None) -> str:
            body = {"input": text, "user_id": user, **({"thread_id": thread} if thread else {})}
            response = client.post(f"/v1/agents/{agent}/run", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "succeeded", response.json()
            return str(response.json()["id"])

        alice_runs = {
            run("plain", f"[remember] {alice_words} one", alice, f"t-{alice}"),
            run("plain", f"[remember] {alice_words} two", alice, f"t-{alice}"),
            run("support", f"[order] {alice_words}", alice),
        }
        bob_runs = {
            run("plain", f"[remember] {bob_words}", bob, f"t-{bob}"),
            run("support", f"[order] {bob_words}", bob),
        }
        refund = client.post(
            "/v1/agents/support/runs", json={"input": f"[refund] {alice_words}", "user_id": alice}
        )
        refund_id = refund.json()["id"]
        wait_for_status(client, refund_id, {"waiting_approval"})

        with pytest.raises(ConflictError) as refused:
            asyncio.run(_erase(urls, alice))
        assert refused.value.code == "user_has_active_runs"
        assert refused.value.details == {"runs": [refund_id]}

        approval = client.get("/v1/approvals", params={"run_id": refund_id}).json()["data"][0]
        decided = client.post(
            f"/v1/runs/{refund_id}/approvals/{approval['id']}",
            json={"decision": "approve", "reason": alice_words},
        )
        assert decided.status_code == 200, decided.text
        assert wait_for_status(client, refund_id, ENDED)["status"] == "succeeded"
        alice_runs.add(refund_id)
        views = {run_id: client.get(f"/v1/runs/{run_id}").json() for run_id in alice_runs}
        steps = {run_id: _steps(client, run_id) for run_id in alice_runs}

        asyncio.run(_seed_side_data(urls, {alice: alice_words, bob: bob_words}))
        before = _dump(urls)
        hay = _haystack(before)
        assert alice_words in hay  # the search finds them where they are, DBOS's pickles included
        assert alice in hay
        # DBOS's records hold her words only sealed: opened with her runs' keys, they are there.
        assert alice_words not in _haystack({k: v for k, v in before.items() if k.startswith("dbos.")})
        assert alice_words in _sealed_words(before, alice_runs)
        alice_ledger = [r for r in before["spend_ledger"] if r["user_id"] == alice]
        assert alice_ledger

        receipt = asyncio.run(_erase(urls, alice, actor_user="dpo"))
        after = _dump(urls)

        # Nothing of alice's words or id is left, in agenthost's tables or in DBOS's records: her
        # runs' keys are gone, so what DBOS keeps of them can never be opened again.
        hay = _haystack(after)
        assert alice_words not in hay
        assert alice not in hay
        assert all(r["data_key"] is None for r in after["runs"] if r["id"] in alice_runs)
        assert _sealed_words(after, alice_runs) == ""
        assert bob_words in _sealed_words(after, bob_runs)
        assert bob_words in hay
        assert bob in hay
        # Bob's data is exactly as it was.
        assert _rows_of(after, bob_runs, bob) == _rows_of(before, bob_runs, bob)
        # What was removed, as counted.
        counts = receipt.to_dict()
        assert {k: counts[k] for k in ("threads", "runs_scrubbed", "dbos_workflows_scrubbed")} == {
            "threads": 1,
            "runs_scrubbed": 4,
            "dbos_workflows_scrubbed": 4,
        }
        assert (counts["cache_entries"], counts["semantic_entries"], counts["approvals"]) == (1, 1, 1)
        assert counts["messages"] == 4  # two runs on the thread, a prompt and an answer each
        assert counts["events"] == sum(1 for r in before["run_events"] if r["run_id"] in alice_runs) > 0
        assert counts["ledger_rows_anonymised"] == len(alice_ledger)
        # The entries written for her (seeded, and the server's own run.started / tool.called).
        audited = [r for r in before["audit_log"] if alice in (r["actor_user"], r["subject_user"])]
        assert counts["audit_entries_anonymised"] == len(audited) >= 2
        # The ledger keeps every row and its totals; alice's rows carry a pseudonym.
        assert _ledger(after) == _ledger(before)
        alias = pseudonym(receipt.user_digest)
        assert sorted(r["seq"] for r in after["spend_ledger"] if r["user_id"] == alias) == sorted(
            r["seq"] for r in alice_ledger
        )
        costs = client.get("/v1/costs", params={"from": "2000-01-01"}).json()
        assert alias in [row["name"] for row in costs["by_user"]]
        # The runs stay, with status, cost and steps: the server still reads them and DBOS's records.
        for run_id in alice_runs:
            view = client.get(f"/v1/runs/{run_id}").json()
            assert (view["status"], view["cost"], view["usage"], view["input"]) == (
                views[run_id]["status"],
                views[run_id]["cost"],
                views[run_id]["usage"],
                ERASED,
            )
            assert view["output"] == ERASED
            assert view["user_id"] == alias
            assert _steps(client, run_id) == steps[run_id]
        assert client.get(f"/v1/threads/t-{alice}").status_code == 404
        # The audit log: alice blanked, bob intact, the erasure recorded, the chain whole.
        audit = {r["seq"]: r for r in after["audit_log"]}
        erased = audit[receipt.audit_seq]
        assert (erased["action"], erased["actor_user"], erased["subject_user"]) == (
            "data.erased",
            "dpo",
            ERASED,
        )
        assert erased["details"]["receipt_id"] == receipt.receipt_id
        assert asyncio.run(_verify(urls)).ok

        again = asyncio.run(_erase(urls, alice)).to_dict()
        zeroes = {k: v for k, v in again.items() if isinstance(v, int) and k != "audit_seq"}
        assert set(zeroes.values()) == {0}, zeroes

        # Retention, later: bob's finished runs and thread go too, through the same scrub (DBOS included).
        counts = asyncio.run(_retention(urls, RetentionSettings(audit_days=0), now=FUTURE))
        assert counts["runs_scrubbed"] == 2
        assert counts["dbos_workflows_scrubbed"] == 2
        assert counts["thread_messages"] == 1
        later = _dump(urls)
        audit_rows = {"audit_log": later.pop("audit_log")}
        assert bob_words not in _haystack(later)
        assert bob_words in _haystack(audit_rows)  # the audit log has its own, longer, retention
        assert bob in _haystack(later)  # retention scrubs words; the run rows keep their owner
        for run_id in bob_runs:
            assert client.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
            assert _steps(client, run_id)


async def _retention(urls: DatabaseURLs, settings: RetentionSettings, now: datetime) -> dict[str, int]:
    async with _privacy(_url(urls), retention=settings.model_dump()) as privacy:
        return await privacy.enforce_retention(now)


async def test_erasure_removes_the_users_redis_cache_entries(tmp_path: Path, redis_prefix: str) -> None:
    """With the cache in Redis, entries listed under the user's tenant index are deleted."""
    urls = database_urls(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(urls)
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(redis_prefix)
    try:
        for user in ("alice", "bob"):
            await client.set(f"{redis_prefix}:cache:key-{user}", b"answer")
            await client.sadd(keys.tenant_index("cache", user), f"key-{user}")
            index = f"{redis_prefix}:semantic:part-1"
            await client.set(f"{index}:{user}1:v", b"vector")
            await client.set(f"{index}:{user}1:a", b"answer")
            await client.zadd(index, {f"{user}1": 1.0})
            await client.sadd(keys.tenant_index("semantic", user), f"part-1:{user}1")
        config = {"redis": {"url": REDIS_URL, "key_prefix": redis_prefix}}
        receipt = await _erase(urls, "alice", config=config)
        left = sorted(k.decode() for k in await client.keys(f"{redis_prefix}:*"))
        members = await client.zrange(f"{redis_prefix}:semantic:part-1", 0, -1)
    finally:
        await client.aclose()
    assert (receipt.cache_entries, receipt.semantic_entries) == (1, 1)
    assert left == sorted(
        [
            f"{redis_prefix}:cache:key-bob",
            keys.tenant_index("cache", "bob"),
            f"{redis_prefix}:semantic:part-1",
            f"{redis_prefix}:semantic:part-1:bob1:a",
            f"{redis_prefix}:semantic:part-1:bob1:v",
            keys.tenant_index("semantic", "bob"),
        ]
    )
    assert members == [b"bob1"]


# ---------------------------------------------------------------------------------- retention


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseURLs]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'a.db'}"
        urls = database_urls(url)
        upgrade(urls)
        yield urls


def _run_row(run_id: str, status: str, at: datetime) -> dict[str, Any]:
    return {
        "id": run_id,
        "agent": "plain",
        "status": status,
        "user_id": "carol",
        "thread_id": f"t-{run_id}",
        "input": {"text": f"secret of {run_id}", "max_tokens": 50},
        "output": f"answer for {run_id}" if status == "succeeded" else None,
        "cost_nanousd": 1234,
        "created_at": at,
        "completed_at": None if status == "running" else at + timedelta(minutes=1),
    }


async def _seed_retention(engine: Any, log: AuditLog, audit_days: int) -> datetime:
    """Data on both sides of each cut-off; returns the `now` the cut-offs are computed from."""
    for i in range(3):
        await log.append("run.started", actor="system", actor_user="carol", target=f"run-{i}")
    boundary = datetime.now(UTC)
    await asyncio.sleep(0.01)
    for i in range(2):
        await log.append("run.started", actor="system", actor_user="carol", target=f"later-{i}")
    now = boundary + timedelta(days=audit_days)  # the audit cut-off lands between the two groups
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    store, threads = RunStore(engine), ThreadStore(engine)
    cases = {"old": (old, "succeeded"), "recent": (recent, "succeeded"), "old-running": (old, "running")}
    for run_id, (at, status) in cases.items():
        await store.create(_run_row(run_id, status, at))
        usage = {"model": "gpt-4o-mini", "input_tokens": 7, "output_tokens": 3, "cost": {"nanousd": 1234}}
        await store.append_events(
            [
                {
                    "run_id": run_id,
                    "seq": 1,
                    "type": "text.delta",
                    "data": {"delta": f"words of {run_id}"},
                    "created_at": at,
                },
                {"run_id": run_id, "seq": 2, "type": "usage", "data": usage, "created_at": at},
            ]
        )
        async with engine.begin() as conn:
            await threads.append(conn, f"t-{run_id}", run_id, [{"kind": "request", "text": run_id}], at)
    await LedgerStore(engine).record(
        [
            ledger_row(
                source="c-old",
                seq=1,
                kind="completion",
                usage=UsageRecord(model="m"),
                at=now - timedelta(days=3000),
            )
        ]
    )
    async with engine.begin() as conn:
        for key, expires in (("gone", now - timedelta(seconds=1)), ("live", now + timedelta(hours=1))):
            await conn.execute(
                response_cache.insert().values(key=key, value=b"v", expires_at=expires, tenant="carol")
            )
            await conn.execute(
                semantic_cache.insert().values(
                    partition="p", vector=b"v", value=b"v", expires_at=expires, tenant="carol"
                )
            )
    return now


async def test_retention_deletes_and_scrubs_only_what_is_older(fresh_urls: DatabaseURLs) -> None:
    engine = create_app_engine(fresh_urls)
    log = AuditLog(AuditStore(engine))
    try:
        audit_days = 10
        run_now = await _seed_retention(engine, log, audit_days)
        config = {
            "retention": {"conversations_days": 90, "audit_days": audit_days},
            "ledger": {"retention_days": 2557},
        }
        async with _privacy(_url(fresh_urls), **config) as privacy:
            counts = await privacy.enforce_retention(run_now)
            again = await privacy.enforce_retention(run_now)
        report = await log.verify()
        async with engine.connect() as conn:
            rows = {r.id: r for r in await conn.execute(sa.select(runs))}
            events = {(r.run_id, r.seq): r.data for r in await conn.execute(sa.select(run_events))}
            kept_threads = sorted(r.thread_id for r in await conn.execute(sa.select(thread_messages)))
            ledger_sources = sorted(r.source for r in await conn.execute(sa.select(spend_ledger)))
            caches = [sorted(r.key for r in await conn.execute(sa.select(response_cache)))]
            semantic = await conn.scalar(sa.select(sa.func.count()).select_from(semantic_cache))
        entries = await log.list()
    finally:
        await engine.dispose()
    assert counts == {
        "thread_messages": 2,  # old and old-running: conversations older than 90 days
        "runs_scrubbed": 1,  # only the finished old run; a running one is never touched
        "events": 2,
        "approvals": 0,
        "dbos_workflows_scrubbed": 0,
        "audit_entries": 3,
        "ledger_rows": 1,
        "cache_expired": 2,
    }
    assert set(again.values()) == {0}
    old, recent, running = rows["old"], rows["recent"], rows["old-running"]
    assert (old.input, old.output, old.scrubbed_at is not None) == (
        {"text": ERASED, "max_tokens": 50},
        ERASED,
        True,
    )
    assert (old.status, old.cost_nanousd, old.user_id) == ("succeeded", 1234, "carol")
    assert events["old", 1] == {"delta": ERASED}
    assert events["old", 2] == {
        "model": "gpt-4o-mini",
        "input_tokens": 7,
        "output_tokens": 3,
        "cost": {"nanousd": 1234},
    }
    assert (recent.input["text"], recent.output, recent.scrubbed_at) == (
        "secret of recent",
        "answer for recent",
        None,
    )
    assert events["recent", 1] == {"delta": "words of recent"}
    assert (running.input["text"], running.scrubbed_at) == ("secret of old-running", None)
    assert kept_threads == ["t-recent"]
    assert ledger_sources == ["old", "old-running", "recent"]  # the 8-year-old completion row went
    assert caches == [["live"]]
    assert semantic == 1
    assert report.ok, report.problems
    assert report.anchor_seq == 3
    assert [e.target for e in entries if e.action == "run.started"] == ["later-1", "later-0"]


def test_retention_settings_validate_the_schedule() -> None:
    assert RetentionSettings().schedule == "0 * * * *"
    assert RetentionSettings(schedule="*/10 * * * * *").schedule == "*/10 * * * * *"
    with pytest.raises(ValueError, match="cron"):
        RetentionSettings(schedule="every hour")
    with pytest.raises(ValueError, match="greater than or equal"):
        RetentionSettings(conversations_days=-1)


def test_retention_job_runs_as_a_scheduled_durable_workflow(tmp_path: Path) -> None:
    """The runtime schedules retention as a DBOS workflow (`[retention] schedule`, here every
    second) and runs it at start: it enforces retention."""
    url = f"sqlite:///{tmp_path / 'data' / 'a.db'}"
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, json, sys, time
            from datetime import UTC, datetime, timedelta
            import sqlalchemy as sa
            from dbos import DBOS
            from agenthost.runtime.process import open_runtime
            from agenthost.settings import Settings
            from agenthost.storage.tables import thread_messages

            async def main(url):
                settings = Settings.model_validate({
                    "database_url": url,
                    "retention": {"schedule": "* * * * * *"},
                    "durability": {"app_name": "retention-test"},
                })
                async with open_runtime(settings) as runtime:
                    engine, threads = runtime.backends.engine, runtime.backends.threads
                    now = datetime.now(UTC)
                    async with engine.begin() as conn:
                        await threads.append(conn, "t1", "r1", [{"text": "old"}], now - timedelta(days=100))
                        await threads.append(conn, "t1", "r2", [{"text": "new"}], now)
                    deadline = time.monotonic() + 60
                    left = None
                    while time.monotonic() < deadline:
                        async with engine.connect() as conn:
                            left = sorted(r.run_id for r in await conn.execute(sa.select(thread_messages)))
                        if left == ["r2"]:
                            break
                        await asyncio.sleep(0.2)
                    listed = await DBOS.list_workflows_async(name="agenthost.retention")
                    workflows = [w.workflow_id for w in listed]
                print("RESULT", json.dumps({"left": left, "workflows": workflows}), flush=True)

            asyncio.run(main(sys.argv[1]))
            """
        )
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script), url], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The job may log again (it fires every second) after the result line.
    outcome = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert outcome["left"] == ["r2"], (outcome, time.monotonic() - started)
    assert outcome["workflows"]
    assert all(w.startswith("sched-agenthost-retention-") for w in outcome["workflows"])
