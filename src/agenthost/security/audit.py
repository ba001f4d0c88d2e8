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

This module and `audit_chain.py` hold the chain's rules; the tables and every statement on them
are `agenthost.storage.audit.AuditStore`'s.
"""

from __future__ import annotations

import builtins
import dataclasses
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

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
from agenthost.storage.audit import AuditRow, AuditStore

if TYPE_CHECKING:
    from agenthost.storage.audit import AuditHead

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


AuditEntry = AuditRow
"""One audit entry as stored (erased fields read `[erased]`); see `AuditRow.to_dict`."""


def _erasure(row: AuditRow, user_digest: str) -> dict[str, Any]:
    """What erasing the user with `user_digest` blanks in `row` (nothing when already done)."""
    values: dict[str, Any] = {}
    if row.actor_user_digest == user_digest and row.actor_user != ERASED:
        values["actor_user"] = ERASED
    if row.subject_user_digest == user_digest and row.subject_user != ERASED:
        values["subject_user"] = ERASED
    # An earlier erasure record of the same user keeps its counts (they name nobody).
    if row.action != ERASURE_ACTION and row.details != ERASED:
        values["details"] = ERASED
    return values


class AuditLog:
    """Appends, lists, verifies, anonymises and purges audit entries (SQLite and Postgres)."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self._secret: bytes | None = None

    # -- keyed digests -------------------------------------------------------------------------

    async def _key(self) -> bytes:
        if self._secret is None:
            # First use: processes may race; the store keeps the first secret and all read it.
            self._secret = bytes.fromhex(await self.store.secret(secrets.token_hex(32)))
        return self._secret

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
        async with self.store.transaction() as tx:
            if dedupe_key is not None:
                existing = await tx.find(dedupe_key)
                if existing is not None:
                    return existing
            row = self._new_row(
                key,
                tx.head,
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
            await tx.append(row)
        return row

    def _new_row(
        self,
        key: bytes,
        head: AuditHead,
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
    ) -> AuditRow:
        plain = plain_json(details or {})
        subject_digest = None if subject_user is None else digest(key, "user", subject_user)
        row: dict[str, Any] = {
            "seq": head.seq + 1,
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
            "prev_hash": head.hash,
        }
        return AuditRow(**row, hash=entry_hash(head.hash, row))

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
        prefix = action.rstrip("*") if action is not None and action.endswith(("*", ".")) else None
        rows = await self.store.page(
            since=since,
            until=until,
            action=action if prefix is None else None,
            action_prefix=prefix,
            actor_user_digest=None if actor_user is None else await self.user_digest(actor_user),
            subject_user_digest=None if subject_user is None else await self.user_digest(subject_user),
            before_seq=before_seq,
            limit=max(1, min(limit, 1000)),
        )
        return list(rows)

    async def head(self) -> dict[str, Any] | None:
        """The head row: last `seq` and `hash`, and the retention anchor."""
        head = await self.store.head()
        return None if head is None else dataclasses.asdict(head)

    # -- verify -------------------------------------------------------------------------------

    async def verify(self, *, expect: tuple[int, str] | None = None) -> VerifyReport:
        """Check the whole chain: every entry's digests and hash, no gaps, the head, the anchor.

        `expect` is a `(seq, hash)` exported earlier: that entry must still have that hash (or be
        covered by the retention anchor).
        """
        key = await self._key()
        # One read transaction: a consistent snapshot while appends and purges go on.
        async with self.store.snapshot() as snapshot:
            return await ChainVerifier(snapshot, key, expect).run()

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
        async with self.store.transaction() as tx:
            count = 0
            for about in await tx.about(user_digest):
                values = _erasure(about, user_digest)
                if values:
                    await tx.anonymise(about.seq, values)
                    count += 1
            row = self._new_row(
                key,
                tx.head,
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
            await tx.append(row)
        return count, row

    async def purge(self, before: datetime) -> int:
        """Delete the entries older than `before` (as one block from the oldest), move the anchor
        to the last one deleted and record that in an `audit.purged` entry; returns how many."""
        key = await self._key()
        async with self.store.transaction() as tx:
            purged = await tx.purge_before(before)
            if purged is None:
                return 0
            row = self._new_row(
                key,
                tx.head,
                action=PURGE_ACTION,
                actor="system",
                actor_user=None,
                subject_user=None,
                target=None,
                details={
                    "deleted": purged.count,
                    "before": before.astimezone(UTC).isoformat(),
                    "anchor_seq": purged.anchor_seq,
                    "anchor_hash": purged.anchor_hash,
                },
                model=None,
                prompt_version=None,
                request_id=None,
                dedupe_key=None,
            )
            await tx.append(row)
        return purged.count
