"""The audit log: an append-only, hash-chained record of who did what and when.

Each entry's `hash` is SHA-256 over the previous entry's hash and the entry's canonical JSON, so
editing or deleting an entry breaks the chain from that point on. A one-row head table holds the
last sequence number and hash (it also serialises appends from every process and replica: each
append locks it first), so deleting the newest entries is caught too.

Personal identifiers (the acting user, the user an action concerns, and the free-form details,
which may hold tool arguments) are stored next to a keyed digest (HMAC-SHA256 with a secret made
on first use and kept in `audit_meta`). The chain covers the digests, not the text: erasing a
user replaces the text with `[erased]` and keeps the digest, and the chain still verifies.
`verify` recomputes the digest of every field still in clear text, so editing one is caught;
an `[erased]` field must belong to a user whose erasure is itself recorded (`data.erased`).

Retention deletes the oldest entries as a block and keeps an anchor (the seq and hash of the
last deleted entry) in the head row, recorded by an `audit.purged` entry; `verify` starts there.

What this cannot catch: someone able to write the database who rewrites the whole chain and the
head consistently (with the secret, which lives in the same database). Export the head (`agenthost
audit verify` prints it) to a place they cannot write, and check it later with `--expect`.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agenthost.errors import AuditIntegrityError
from agenthost.security.audit_chain import (
    ERASED,
    ERASURE_ACTION,
    GENESIS,
    PURGE_ACTION,
    AuditProblem,
    ChainVerifier,
    VerifyReport,
    details_digest,
    digest,
    entry_hash,
    plain_json,
)
from agenthost.storage.tables import audit_head, audit_log, audit_meta, row_dict

__all__ = [
    "ERASED",
    "GENESIS",
    "Actor",
    "AuditEntry",
    "AuditIntegrityError",
    "AuditLog",
    "AuditProblem",
    "VerifyReport",
    "actor_fields",
]

_SECRET_KEY = "hmac_secret"  # noqa: S105 - the row name, not a secret  # pragma: allowlist secret


class Actor(TypedDict):
    """Who made an entry (see `actor_fields`)."""

    actor: str
    actor_user: str | None


def actor_fields(subject: str, user_id: str | None) -> Actor:
    """`actor` and `actor_user` of an entry made for a caller (`Principal.subject`, `.user_id`).

    The actor names the credential, never a person: a JWT subject (`jwt:<user>`) becomes `jwt`,
    because the chain covers `actor` in clear text and could not forget it on erasure; the user
    goes to `actor_user`, which can be erased.

    Example:
        >>> actor_fields("jwt:alice", "alice")
        {'actor': 'jwt', 'actor_user': 'alice'}
        >>> actor_fields("key:k1a2b3c4d5e6", None)
        {'actor': 'key:k1a2b3c4d5e6', 'actor_user': None}
    """
    actor = "jwt" if subject.startswith("jwt:") else subject
    return Actor(actor=actor, actor_user=user_id)


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry as stored (erased fields read `[erased]`)."""

    seq: int
    created_at: datetime
    action: str
    actor: str
    """The credential or component that acted: `key:<id>`, `admin-key`, `jwt`, `system`."""
    actor_user: str | None
    """The user behind the actor, if any."""
    subject_user: str | None
    """The user the action concerns (a run's owner, a key's owner, an erased user)."""
    target: str | None
    """The object acted on (run id, approval id, key id); never a person."""
    details: Any
    model: str | None
    prompt_version: str | None
    request_id: str | None
    dedupe_key: str | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (for `GET /v1/audit`)."""
        return {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "action": self.action,
            "actor": self.actor,
            "actor_user": self.actor_user,
            "subject_user": self.subject_user,
            "target": self.target,
            "details": self.details,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "request_id": self.request_id,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
        }


def _entry(row: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        created_at=row["created_at"],
        action=row["action"],
        actor=row["actor"],
        actor_user=row["actor_user"],
        subject_user=row["subject_user"],
        target=row["target"],
        details=row["details"],
        model=row["model"],
        prompt_version=row["prompt_version"],
        request_id=row["request_id"],
        dedupe_key=row["dedupe_key"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class AuditLog:
    """Appends, lists, verifies, anonymises and purges audit entries (SQLite and Postgres)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._secret: bytes | None = None

    # -- keyed digests -------------------------------------------------------------------------

    async def _key(self) -> bytes:
        if self._secret is None:
            async with self.engine.begin() as conn:
                self._secret = await self._load_secret(conn)
        return self._secret

    @staticmethod
    async def _load_secret(conn: AsyncConnection) -> bytes:
        query = sa.select(audit_meta.c.value).where(audit_meta.c.key == _SECRET_KEY)
        value = await conn.scalar(query)
        if value is None:
            # First use: processes may race; the primary key keeps the first and all read it.
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(audit_meta)
            await conn.execute(
                insert.values(key=_SECRET_KEY, value=secrets.token_hex(32)).on_conflict_do_nothing(
                    index_elements=["key"]
                )
            )
            value = await conn.scalar(query)
        return bytes.fromhex(str(value))

    async def user_digest(self, user_id: str) -> str:
        """The keyed digest that stands for `user_id` in the chain (and after erasure)."""
        return digest(await self._key(), "user", user_id)

    # -- append -------------------------------------------------------------------------------

    async def append(
        self,
        action: str,
        *,
        actor: str,
        actor_user: str | None,
        subject_user: str | None = None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
        model: str | None = None,
        prompt_version: str | None = None,
        request_id: str | None = None,
        dedupe_key: str | None = None,
    ) -> AuditEntry:
        """Append an entry and return it; with a `dedupe_key` already used, return that entry.

        A durable step that is replayed passes the same `dedupe_key` (e.g. `<run id>:<step>`), so
        the entry is written once.
        """
        for name, value in (("actor_user", actor_user), ("subject_user", subject_user)):
            if value == ERASED:
                msg = f"{name} {ERASED!r} is reserved for erased users"
                raise ValueError(msg)
        key = await self._key()
        async with self.engine.begin() as conn:
            head = await self._lock_head(conn)
            if dedupe_key is not None:
                existing = (
                    await conn.execute(sa.select(audit_log).where(audit_log.c.dedupe_key == dedupe_key))
                ).one_or_none()
                if existing is not None:
                    return _entry(row_dict(existing))
            row = self._new_row(
                key,
                head,
                action=action,
                actor=actor,
                actor_user=actor_user,
                subject_user=subject_user,
                target=target,
                details=details,
                model=model,
                prompt_version=prompt_version,
                request_id=request_id,
                dedupe_key=dedupe_key,
            )
            await self._write(conn, row)
        return _entry(row)

    async def _lock_head(self, conn: AsyncConnection) -> dict[str, Any]:
        # A write first: on Postgres it locks the head row until commit; on SQLite it takes the
        # database's write lock before anything is read (so no other append reads the same head).
        locked = await conn.execute(
            audit_head.update().where(audit_head.c.id == 1).values(seq=audit_head.c.seq)
        )
        if locked.rowcount != 1:
            msg = (
                "the audit log's head row is missing: the log was tampered with or not migrated; "
                "run `agenthost audit verify`"
            )
            raise AuditIntegrityError(msg)
        return row_dict((await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).one())

    def _new_row(
        self,
        key: bytes,
        head: dict[str, Any],
        *,
        action: str,
        actor: str,
        actor_user: str | None,
        subject_user: str | None,
        target: str | None,
        details: dict[str, Any] | None,
        model: str | None,
        prompt_version: str | None,
        request_id: str | None,
        dedupe_key: str | None,
        erased_subject: bool = False,
    ) -> dict[str, Any]:
        plain = plain_json(details or {})
        subject_digest = None if subject_user is None else digest(key, "user", subject_user)
        row: dict[str, Any] = {
            "seq": int(head["seq"]) + 1,
            "created_at": datetime.now(UTC),
            "action": action,
            "actor": actor,
            "actor_user": actor_user,
            "actor_user_digest": None if actor_user is None else digest(key, "user", actor_user),
            "subject_user": ERASED if erased_subject and subject_user is not None else subject_user,
            "subject_user_digest": subject_digest,
            "target": target,
            "details": plain,
            "details_digest": details_digest(key, plain),
            "model": model,
            "prompt_version": prompt_version,
            "request_id": request_id,
            "dedupe_key": dedupe_key,
            "prev_hash": head["hash"],
        }
        row["hash"] = entry_hash(head["hash"], row)
        return row

    @staticmethod
    async def _write(conn: AsyncConnection, row: dict[str, Any]) -> None:
        await conn.execute(audit_log.insert().values(**row))
        await conn.execute(
            audit_head.update()
            .where(audit_head.c.id == 1)
            .values(seq=row["seq"], hash=row["hash"], updated_at=row["created_at"])
        )

    # -- read ---------------------------------------------------------------------------------

    async def list(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
        actor_user: str | None = None,
        subject_user: str | None = None,
        limit: int = 100,
        before_seq: int | None = None,
    ) -> builtins.list[AuditEntry]:
        """Entries, newest first. `action` ending in `.` or `*` matches a prefix (`run.*`).
        `actor_user`/`subject_user` match by digest, so erased entries of a known id are found too."""
        statement = sa.select(audit_log)
        if since is not None:
            statement = statement.where(audit_log.c.created_at >= since)
        if until is not None:
            statement = statement.where(audit_log.c.created_at < until)
        if action is not None:
            if action.endswith(("*", ".")):
                statement = statement.where(
                    audit_log.c.action.startswith(action.rstrip("*"), autoescape=True)
                )
            else:
                statement = statement.where(audit_log.c.action == action)
        if actor_user is not None:
            statement = statement.where(audit_log.c.actor_user_digest == await self.user_digest(actor_user))
        if subject_user is not None:
            statement = statement.where(
                audit_log.c.subject_user_digest == await self.user_digest(subject_user)
            )
        if before_seq is not None:
            statement = statement.where(audit_log.c.seq < before_seq)
        statement = statement.order_by(audit_log.c.seq.desc()).limit(max(1, min(limit, 1000)))
        async with self.engine.connect() as conn:
            return [_entry(row_dict(row)) for row in await conn.execute(statement)]

    async def head(self) -> dict[str, Any] | None:
        """The head row: last `seq` and `hash`, and the retention anchor."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).one_or_none()
        return None if row is None else row_dict(row)

    # -- verify -------------------------------------------------------------------------------

    async def verify(self, *, expect: tuple[int, str] | None = None) -> VerifyReport:
        """Check the whole chain: every entry's digests and hash, no gaps, the head, the anchor.

        `expect` is a `(seq, hash)` exported earlier: that entry must still have that hash (or be
        covered by the retention anchor).
        """
        key = await self._key()
        async with self.engine.connect() as connection:
            # One read transaction: a consistent snapshot while appends and purges go on.
            if self.engine.dialect.name == "postgresql":
                conn = await connection.execution_options(isolation_level="REPEATABLE READ")
                await conn.begin()
            else:
                conn = connection
                await conn.exec_driver_sql("BEGIN")
            return await ChainVerifier(conn, key, expect).run()

    # -- erasure and retention ----------------------------------------------------------------

    async def erase_user(
        self,
        user_id: str,
        *,
        actor: str,
        actor_user: str | None,
        details: dict[str, Any],
        request_id: str | None = None,
    ) -> tuple[int, AuditEntry]:
        """Blank `user_id` (and the details of entries about them) in every entry, keeping the
        digests, and record a `data.erased` entry, in one transaction.

        Returns how many entries were anonymised and the `data.erased` entry (whose details are
        `details` plus `audit_entries_anonymised`; its subject is stored erased from the start).
        """
        key = await self._key()
        user_digest = digest(key, "user", user_id)
        async with self.engine.begin() as conn:
            head = await self._lock_head(conn)
            count = await self._anonymise(conn, user_digest)
            row = self._new_row(
                key,
                head,
                action=ERASURE_ACTION,
                actor=actor,
                actor_user=actor_user,
                subject_user=user_id,
                target=None,
                details={**details, "audit_entries_anonymised": count},
                model=None,
                prompt_version=None,
                request_id=request_id,
                dedupe_key=None,
                erased_subject=True,
            )
            await self._write(conn, row)
        return count, _entry(row)

    @staticmethod
    async def _anonymise(conn: AsyncConnection, user_digest: str) -> int:
        about = sa.or_(
            audit_log.c.actor_user_digest == user_digest, audit_log.c.subject_user_digest == user_digest
        )
        rows = await conn.execute(
            sa.select(
                audit_log.c.seq,
                audit_log.c.action,
                audit_log.c.actor_user,
                audit_log.c.actor_user_digest,
                audit_log.c.subject_user,
                audit_log.c.subject_user_digest,
                audit_log.c.details,
            ).where(about)
        )
        count = 0
        for row in rows.all():
            values: dict[str, Any] = {}
            if row.actor_user_digest == user_digest and row.actor_user != ERASED:
                values["actor_user"] = ERASED
            if row.subject_user_digest == user_digest and row.subject_user != ERASED:
                values["subject_user"] = ERASED
            # An earlier erasure record of the same user keeps its counts (they name nobody).
            if row.action != ERASURE_ACTION and row.details != ERASED:
                values["details"] = ERASED
            if values:
                await conn.execute(audit_log.update().where(audit_log.c.seq == row.seq).values(**values))
                count += 1
        return count

    async def purge(self, before: datetime) -> int:
        """Delete the entries older than `before` (as one block from the oldest), move the anchor
        to the last one deleted and record that in an `audit.purged` entry; returns how many."""
        key = await self._key()
        async with self.engine.begin() as conn:
            head = await self._lock_head(conn)
            last = await conn.scalar(
                sa.select(sa.func.max(audit_log.c.seq)).where(audit_log.c.created_at < before)
            )
            if last is None:
                return 0
            anchor_hash = await conn.scalar(sa.select(audit_log.c.hash).where(audit_log.c.seq == last))
            deleted = await conn.execute(audit_log.delete().where(audit_log.c.seq <= last))
            count = int(deleted.rowcount or 0)
            await conn.execute(
                audit_head.update()
                .where(audit_head.c.id == 1)
                .values(anchor_seq=last, anchor_hash=anchor_hash)
            )
            row = self._new_row(
                key,
                head,
                action=PURGE_ACTION,
                actor="system",
                actor_user=None,
                subject_user=None,
                target=None,
                details={
                    "deleted": count,
                    "before": before.astimezone(UTC).isoformat(),
                    "anchor_seq": int(last),
                    "anchor_hash": anchor_hash,
                },
                model=None,
                prompt_version=None,
                request_id=None,
                dedupe_key=None,
            )
            await self._write(conn, row)
        return count
