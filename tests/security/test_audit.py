"""The hash-chained audit log: concurrent appends from tasks and processes keep one chain; any
edited, deleted or forged entry is caught by `AuditLog.verify` and `agenthost audit verify`;
erasure and retention keep the chain verifiable. On SQLite and Postgres."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from agenthost.cli.audit import audit_app
from agenthost.security.audit import ERASED, GENESIS, AuditLog
from agenthost.security.audit_chain import entry_hash
from agenthost.storage.audit import AuditStore
from agenthost.storage.engine import create_app_engine, create_sync_engine, database_urls
from agenthost.storage.migrate import upgrade
from agenthost.storage.tables import audit_head, audit_log, audit_meta
from tests.harness import REPO, postgres_database, render_toml


@pytest.fixture(scope="module")
def pg_audit_url() -> Iterator[str]:
    with postgres_database() as url:
        upgrade(database_urls(url))
        yield url


def _reset(url: str) -> None:
    engine = create_sync_engine(database_urls(url))
    with engine.begin() as conn:
        conn.execute(audit_log.delete())
        conn.execute(audit_meta.delete())
        conn.execute(audit_head.delete())
        conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS, anchor_seq=0, anchor_hash=GENESIS))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with an empty audit log."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'agenthost.db'}"
        upgrade(database_urls(url))
        return url
    url: str = request.getfixturevalue("pg_audit_url")
    _reset(url)
    return url


async def _with_log(url: str, work: Any) -> Any:
    engine = create_app_engine(database_urls(url))
    try:
        return await work(AuditLog(AuditStore(engine)))
    finally:
        await engine.dispose()


def _sql(url: str, *statements: Any) -> None:
    """Tamper with the table directly, as someone with database access would."""
    engine = create_sync_engine(database_urls(url))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)
    engine.dispose()


async def _seed(log: AuditLog, count: int = 8) -> None:
    for i in range(1, count + 1):
        await log.append(
            "tool.called" if i % 2 else "run.started",
            actor="key:k1",
            actor_user=f"user-{i % 3}",
            target=f"run_{i}",
            details={"tool": "get_order", "args": {"order_id": str(1000 + i)}, "i": i, "ratio": 0.1},
            model="gpt-4o-mini",
            prompt_version="v3",
            request_id=f"req-{i}",
        )


# ------------------------------------------------------------------------------------ appends


async def test_concurrent_appends_form_one_unbroken_chain(db_url: str) -> None:
    """200 appends at once: each gets the next seq, each links to the one before, verify passes."""

    async def work(log: AuditLog) -> tuple[Any, Any, Any]:
        entries = await asyncio.gather(
            *(
                log.append("run.started", actor="system", actor_user=f"u{i % 7}", details={"i": i})
                for i in range(200)
            )
        )
        return entries, await log.verify(), await log.head()

    entries, report, head = await _with_log(db_url, work)
    assert sorted(e.seq for e in entries) == list(range(1, 201))
    assert report.ok, report.problems
    assert report.checked == 200
    by_seq = {e.seq: e for e in entries}
    assert by_seq[1].prev_hash == GENESIS
    assert all(by_seq[s].prev_hash == by_seq[s - 1].hash for s in range(2, 201))
    assert (head["seq"], head["hash"]) == (200, by_seq[200].hash)


async def test_appends_from_two_processes_serialise(db_url: str, tmp_path: Path) -> None:
    """Two processes appending at the same time (as two replicas would) share one chain."""
    script = tmp_path / "append.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from agenthost.security.audit import AuditLog
            from agenthost.storage.audit import AuditStore
            from agenthost.storage.engine import create_app_engine, database_urls

            async def main(url, name):
                engine = create_app_engine(database_urls(url))
                log = AuditLog(AuditStore(engine))
                for batch in range(10):
                    await asyncio.gather(*(
                        log.append("key.created", actor=name, actor_user=None, target=f"{name}-{batch}-{i}")
                        for i in range(5)
                    ))
                await engine.dispose()

            asyncio.run(main(sys.argv[1], sys.argv[2]))
            """
        )
    )
    processes = [
        subprocess.Popen([sys.executable, str(script), db_url, name], cwd=REPO)
        for name in ("replica-a", "replica-b")
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0]

    async def work(log: AuditLog) -> Any:
        return await log.verify(), await log.list(limit=1000)

    report, entries = await _with_log(db_url, work)
    assert report.ok, report.problems
    assert report.checked == 100
    assert {e.actor for e in entries} == {"replica-a", "replica-b"}
    assert sorted(e.seq for e in entries) == list(range(1, 101))


async def test_dedupe_key_appends_once(db_url: str) -> None:
    """A replayed durable step passes the same dedupe key and gets the entry written the first time."""

    async def work(log: AuditLog) -> Any:
        first = await log.append("tool.called", actor="system", actor_user="u1", dedupe_key="run_1:7")
        again = await asyncio.gather(
            *(
                log.append("tool.called", actor="system", actor_user="u1", dedupe_key="run_1:7")
                for _ in range(5)
            )
        )
        other = await log.append("tool.called", actor="system", actor_user="u1", dedupe_key="run_1:8")
        return first, again, other, await log.list()

    first, again, other, entries = await _with_log(db_url, work)
    assert {e.seq for e in again} == {first.seq}
    assert other.seq == first.seq + 1
    assert len(entries) == 2


async def test_list_filters_and_pages(db_url: str) -> None:
    async def work(log: AuditLog) -> dict[str, Any]:
        await _seed(log, 9)
        everything = await log.list()
        return {
            "all": everything,
            "tools": await log.list(action="tool.called"),
            "prefix": await log.list(action="run.*"),
            "user": await log.list(actor_user="user-1"),
            "page": await log.list(limit=3, before_seq=7),
            "since": await log.list(since=everything[2].created_at),
            "until": await log.list(until=everything[-2].created_at),
        }

    got = await _with_log(db_url, work)
    assert [e.seq for e in got["all"]] == list(range(9, 0, -1))
    assert [e.seq for e in got["tools"]] == [9, 7, 5, 3, 1]
    assert [e.seq for e in got["prefix"]] == [8, 6, 4, 2]
    assert [e.seq for e in got["user"]] == [7, 4, 1]
    assert [e.seq for e in got["page"]] == [6, 5, 4]
    assert [e.seq for e in got["since"]] == [9, 8, 7]
    assert [e.seq for e in got["until"]] == [1]
    entry = got["all"][0].to_dict()
    assert entry["details"]["args"] == {"order_id": "1009"}
    assert (entry["model"], entry["prompt_version"], entry["request_id"]) == ("gpt-4o-mini", "v3", "req-9")


# ------------------------------------------------------------------------------ erasure, purge


async def test_erasure_blanks_the_user_and_the_chain_still_verifies(db_url: str) -> None:
    async def work(log: AuditLog) -> Any:
        await _seed(log, 6)
        await log.append(
            "key.created", actor="admin-key", actor_user="boss", subject_user="user-1", target="k9"
        )
        count, record = await log.erase_user(
            "user-1", actor="admin-key", actor_user="boss", details={"runs": 2}
        )
        again, _ = await log.erase_user("user-1", actor="admin-key", actor_user="boss", details={"runs": 0})
        return count, record, again, await log.verify(), await log.list(), await log.list(actor_user="user-1")

    count, record, again, report, entries, found = await _with_log(db_url, work)
    assert report.ok, report.problems
    assert count == 3  # entries 1 and 4 (acting), 7 (about them)
    assert again == 0
    assert record.action == "data.erased"
    assert record.subject_user == ERASED
    assert record.details == {"runs": 2, "audit_entries_anonymised": 3}
    by_seq = {e.seq: e for e in entries}
    assert (by_seq[1].actor_user, by_seq[1].details) == (ERASED, ERASED)
    assert (by_seq[7].actor_user, by_seq[7].subject_user, by_seq[7].details) == ("boss", ERASED, ERASED)
    assert by_seq[2].actor_user == "user-2"
    assert by_seq[2].details["args"] == {"order_id": "1002"}
    assert "user-1" not in json.dumps([e.to_dict() for e in entries])
    assert [e.seq for e in found] == [4, 1]  # still findable by the id, via its digest


async def test_purge_keeps_an_anchor_and_the_chain_verifies(db_url: str) -> None:
    async def work(log: AuditLog) -> Any:
        await _seed(log, 5)
        cutoff = datetime.now(UTC)
        await _seed(log, 3)
        purged = await log.purge(cutoff)
        nothing = await log.purge(cutoff)
        await log.append("run.started", actor="system", actor_user="u")
        return purged, nothing, await log.verify(), await log.list()

    purged, nothing, report, entries = await _with_log(db_url, work)
    assert (purged, nothing) == (5, 0)
    assert report.ok, report.problems
    assert report.anchor_seq == 5
    assert [e.seq for e in entries] == [10, 9, 8, 7, 6]
    assert entries[1].action == "audit.purged"
    assert entries[1].details["anchor_seq"] == 5


async def test_moving_the_anchor_without_a_purge_record_is_caught(db_url: str) -> None:
    """Deleting the oldest entries and moving the anchor by hand is not a retention purge."""
    await _with_log(db_url, _seed)
    rows = await _with_log(db_url, lambda log: log.list(limit=10))
    fourth = next(e for e in rows if e.seq == 4)
    _sql(
        db_url,
        audit_log.delete().where(audit_log.c.seq <= 4),
        audit_head.update().values(anchor_seq=4, anchor_hash=fourth.hash),
    )
    report = await _with_log(db_url, lambda log: log.verify())
    assert [p.kind for p in report.problems] == ["anchor_unrecorded"]


async def test_a_rewritten_chain_passes_alone_but_not_against_an_exported_head(db_url: str) -> None:
    """The limit of a chain kept in the same database: whoever holds the database (and so the
    secret) can recompute every hash. A head exported earlier still exposes it."""
    await _with_log(db_url, _seed)
    report = await _with_log(db_url, lambda log: log.verify())
    exported = (report.head_seq, report.head_hash)
    engine = create_sync_engine(database_urls(db_url))
    with engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq))]
        prev = GENESIS
        for row in rows:
            if row["seq"] == 3:
                row["target"] = "run_rewritten"
            row["prev_hash"] = prev
            row["hash"] = entry_hash(prev, row)
            conn.execute(audit_log.update().where(audit_log.c.seq == row["seq"]).values(**row))
            prev = row["hash"]
        conn.execute(audit_head.update().values(hash=prev))
    engine.dispose()
    assert (await _with_log(db_url, lambda log: log.verify())).ok
    checked = await _with_log(db_url, lambda log: log.verify(expect=exported))
    assert [(p.seq, p.kind) for p in checked.problems] == [(8, "edited")]


# ---------------------------------------------------------------------- agenthost audit verify


def _cli(url: str, tmp_path: Path, *args: str) -> Any:
    config = tmp_path / "agenthost.toml"
    config.write_text(render_toml({"database_url": url}))
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    return CliRunner().invoke(app, ["audit", *args, "--config", str(config)])


TAMPERING = {
    "details edited": (
        audit_log.update().where(audit_log.c.seq == 4).values(details={"tool": "refund"}),
        4,
        "edited",
    ),
    "user edited": (audit_log.update().where(audit_log.c.seq == 4).values(actor_user="mallory"), 4, "edited"),
    "action edited": (
        audit_log.update().where(audit_log.c.seq == 4).values(action="run.viewed"),
        4,
        "edited",
    ),
    "time edited": (
        audit_log.update().where(audit_log.c.seq == 4).values(created_at=datetime(2020, 1, 1, tzinfo=UTC)),
        4,
        "edited",
    ),
    "middle deleted": (audit_log.delete().where(audit_log.c.seq == 4), 4, "deleted"),
    "last deleted": (audit_log.delete().where(audit_log.c.seq == 8), 8, "truncated"),
    "head deleted": (audit_head.delete(), 8, "head_missing"),
    "erasure forged": (
        audit_log.update().where(audit_log.c.seq == 4).values(actor_user=ERASED),
        4,
        "erased_without_record",
    ),
}


def test_cli_verify_passes_on_an_intact_log(db_url: str, tmp_path: Path) -> None:
    asyncio.run(_with_log(db_url, _seed))
    result = _cli(db_url, tmp_path, "verify")
    assert result.exit_code == 0, result.output
    assert "checked 8 entries" in result.output
    assert "audit log intact" in result.output
    listed = _cli(db_url, tmp_path, "list", "--json", "--action", "run.*")
    assert listed.exit_code == 0, listed.output
    assert [e["seq"] for e in json.loads(listed.stdout)] == [8, 6, 4, 2]


@pytest.mark.parametrize("case", list(TAMPERING))
def test_cli_verify_names_the_first_tampered_entry(db_url: str, tmp_path: Path, case: str) -> None:
    asyncio.run(_with_log(db_url, _seed))
    statement, seq, kind = TAMPERING[case]
    _sql(db_url, statement)
    result = _cli(db_url, tmp_path, "verify")
    assert result.exit_code == 1, result.output
    assert f"first bad entry {seq} ({kind})" in result.output
    report = json.loads(_cli(db_url, tmp_path, "verify", "--json").stdout)
    assert (report["ok"], report["first_bad_seq"]) == (False, seq)


def test_cli_verify_deleting_the_tail_and_fixing_the_head_needs_the_exported_head(
    db_url: str, tmp_path: Path
) -> None:
    """Deleting the newest entry and rewinding the head to the one before leaves a valid shorter
    chain: only a head exported before (`--expect`) shows what was lost."""
    asyncio.run(_with_log(db_url, _seed))
    exported = json.loads(_cli(db_url, tmp_path, "verify", "--json").stdout)["head"]
    seventh = asyncio.run(_with_log(db_url, lambda log: log.list(limit=2)))[1]
    _sql(
        db_url,
        audit_log.delete().where(audit_log.c.seq == 8),
        audit_head.update().values(seq=7, hash=seventh.hash),
    )
    assert _cli(db_url, tmp_path, "verify").exit_code == 0
    result = _cli(db_url, tmp_path, "verify", "--expect", f"{exported['seq']}:{exported['hash']}")
    assert result.exit_code == 1, result.output
    assert "first bad entry 8 (edited)" in result.output
    assert _cli(db_url, tmp_path, "verify", "--expect", "8:short").exit_code == 2


def test_appending_without_a_head_row_refuses(db_url: str) -> None:
    """Appending after the head row was deleted would hide a truncated tail, so it fails loudly."""
    from agenthost.errors import AuditIntegrityError

    asyncio.run(_with_log(db_url, _seed))
    _sql(db_url, audit_head.delete())
    with pytest.raises(AuditIntegrityError):
        asyncio.run(_with_log(db_url, lambda log: log.append("x", actor="system", actor_user=None)))


def test_purge_then_tamper_before_the_anchor_is_out_of_reach(db_url: str) -> None:
    """After a purge, `verify` starts at the anchor; entries it deleted are no longer checked."""

    async def work(log: AuditLog) -> Any:
        await _seed(log, 4)
        await log.purge(datetime.now(UTC) + timedelta(seconds=1))
        await _seed(log, 2)
        return await log.verify()

    report = asyncio.run(_with_log(db_url, work))
    assert report.ok, report.problems
    assert (report.anchor_seq, report.checked) == (4, 3)


def test_actor_fields_keep_people_out_of_the_clear_text_chain() -> None:
    """A JWT caller's subject names a user; it is stored as `jwt`, the user apart (erasable)."""
    from agenthost.security.audit import actor_fields

    assert actor_fields("jwt:alice", "alice") == {"actor": "jwt", "actor_user": "alice"}
    assert actor_fields("admin-key", None) == {"actor": "admin-key", "actor_user": None}
    assert actor_fields("key:abc123def456", "bob") == {"actor": "key:abc123def456", "actor_user": "bob"}
