"""The audit log's chain: canonical form, hashes, keyed digests, and the verifier.

See `agenthost.security.audit` for the design; this module is the part that must never change
meaning (an entry hashed by one release is verified by the next).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agenthost.storage.audit import AuditRow, AuditSnapshot

__all__ = [
    "ERASED",
    "ERASURE_ACTION",
    "GENESIS",
    "PURGE_ACTION",
    "AuditProblem",
    "ChainVerifier",
    "VerifyReport",
    "canonical_json",
    "details_digest",
    "digest",
    "entry_hash",
    "plain_json",
]

ERASED = "[erased]"
"""What replaces an erased user id or erased details."""
GENESIS = "0" * 64
"""The `prev_hash` of the first entry."""
ERASURE_ACTION = "data.erased"
PURGE_ACTION = "audit.purged"
_MAX_PROBLEMS = 100


def canonical_json(value: Any) -> str:
    """The one JSON spelling hashed and compared: sorted keys, no spaces, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plain_json(value: Any) -> Any:
    """`value` as a JSON column gives it back (so digests made now match those recomputed later)."""
    # What a JSON column gives back, so the digest computed now matches the one recomputed later.
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def entry_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical form of an entry (digests, not text)."""
    body = {
        "v": 1,
        "seq": row["seq"],
        "at": row["created_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "action": row["action"],
        "actor": row["actor"],
        "actor_user": row["actor_user_digest"],
        "subject_user": row["subject_user_digest"],
        "target": row["target"],
        "details": row["details_digest"],
        "model": row["model"],
        "prompt_version": row["prompt_version"],
        "request_id": row["request_id"],
        "dedupe_key": row["dedupe_key"],
    }
    return hashlib.sha256(f"{prev_hash}|{canonical_json(body)}".encode()).hexdigest()


def digest(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of `kind:value` with the deployment's audit secret."""
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def details_digest(key: bytes, details: Any) -> str:
    """The keyed digest of an entry's details (in canonical JSON)."""
    return digest(key, "details", canonical_json(details))


@dataclass(frozen=True)
class AuditProblem:
    """One thing `verify` found wrong."""

    seq: int
    kind: str
    """`edited`, `deleted`, `chain_broken`, `truncated`, `head_mismatch`, `head_missing`,
    `erased_without_record`, `anchor_unrecorded` or `unexpected_head`."""
    message: str


@dataclass
class VerifyReport:
    """The outcome of `AuditLog.verify`."""

    checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    anchor_seq: int = 0
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        """The lowest seq at which something is wrong (None when intact)."""
        return min((p.seq for p in self.problems), default=None)

    @property
    def first_problem(self) -> AuditProblem | None:
        """The problem at the lowest seq."""
        return min(self.problems, key=lambda p: p.seq, default=None)

    def add(self, seq: int, kind: str, message: str) -> None:
        """Record a problem (the first hundred are kept)."""
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(AuditProblem(seq, kind, message))


class ChainVerifier:
    """One pass over the chain, inside a read snapshot (`AuditLog.verify`)."""

    def __init__(self, snapshot: AuditSnapshot, key: bytes, expect: tuple[int, str] | None) -> None:
        self.snapshot = snapshot
        self.key = key
        self.expect = expect
        self.expected_hash: str | None = None
        self.erased_rows: list[tuple[int, set[str]]] = []
        self.erasures: set[str] = set()
        self.purges: set[tuple[Any, Any]] = set()

    async def run(self) -> VerifyReport:
        """Check the head, every entry from the anchor on, and the records that vouch for erasures
        and for the anchor."""
        report = VerifyReport()
        head = await self.snapshot.head()
        if head is None:
            last = await self.snapshot.last_seq()
            report.add(last or 0, "head_missing", "the head row (last seq and hash) was deleted")
            start = await self.snapshot.first()
            anchor_seq, anchor_hash = (0, GENESIS) if start is None else (start[0] - 1, start[1])
        else:
            report.head_seq, report.head_hash = head.seq, head.hash
            anchor_seq, anchor_hash = head.anchor_seq, head.anchor_hash
        report.anchor_seq = anchor_seq
        expected_seq, prev = anchor_seq + 1, anchor_hash
        if self.expect is not None and self.expect[0] == anchor_seq:
            self.expected_hash = anchor_hash
        async for row in self.snapshot.rows(after=anchor_seq):
            seq = row.seq
            if seq != expected_seq:
                span = (
                    f"entry {expected_seq}"
                    if seq - 1 == expected_seq
                    else f"entries {expected_seq}-{seq - 1}"
                )
                report.add(expected_seq, "deleted", f"{span} missing (deleted)")
            self._check(row, prev, report)
            report.checked += 1
            prev, expected_seq = row.hash, seq + 1
        if head is not None:
            self._check_head(report, expected_seq - 1, prev, anchor_hash)
        self._check_records(report)
        return report

    def _check(self, row: AuditRow, prev: str, report: VerifyReport) -> None:
        seq = row.seq
        if row.prev_hash != prev:
            report.add(seq, "chain_broken", f"entry {seq} does not follow the entry before it")
        erased = self._check_personal(row, report)
        if entry_hash(row.prev_hash, row.as_dict()) != row.hash:
            report.add(seq, "edited", f"entry {seq} was changed (its hash does not match its content)")
        if erased:
            self.erased_rows.append((seq, erased))
        if row.action == ERASURE_ACTION and row.subject_user_digest:
            self.erasures.add(row.subject_user_digest)
        if row.action == PURGE_ACTION and isinstance(row.details, dict):
            self.purges.add((row.details.get("anchor_seq"), row.details.get("anchor_hash")))
        if self.expect is not None and self.expect[0] == seq:
            self.expected_hash = row.hash

    def _check_personal(self, row: AuditRow, report: VerifyReport) -> set[str]:
        """Clear-text fields must match their digests; return the digests of erased fields."""
        seq = row.seq
        erased: set[str] = set()
        for name, text, stored in (
            ("actor_user", row.actor_user, row.actor_user_digest),
            ("subject_user", row.subject_user, row.subject_user_digest),
        ):
            if text == ERASED and stored is not None:
                erased.add(stored)
            elif (None if text is None else digest(self.key, "user", text)) != stored:
                report.add(seq, "edited", f"entry {seq}: {name} was changed")
        if row.details == ERASED:
            named = {d for d in (row.actor_user_digest, row.subject_user_digest) if d}
            if not named:
                report.add(seq, "edited", f"entry {seq}: details erased, but the entry names no user")
            erased |= named
        elif details_digest(self.key, row.details) != row.details_digest:
            report.add(seq, "edited", f"entry {seq}: details were changed")
        return erased

    def _check_head(self, report: VerifyReport, last_seq: int, last_hash: str, anchor_hash: str) -> None:
        if report.head_seq > last_seq:
            report.add(
                last_seq + 1, "truncated", f"entries {last_seq + 1}-{report.head_seq} missing at the end"
            )
        elif report.head_seq < last_seq:
            report.add(report.head_seq + 1, "unexpected_head", "entries exist past the head row")
        elif report.head_hash != last_hash:
            report.add(last_seq, "head_mismatch", f"the head's hash differs from entry {last_seq}'s")
        if report.anchor_seq > 0 and (report.anchor_seq, anchor_hash) not in self.purges:
            report.add(
                report.anchor_seq + 1,
                "anchor_unrecorded",
                "the retention anchor moved without an audit.purged entry",
            )

    def _check_records(self, report: VerifyReport) -> None:
        for seq, digests in self.erased_rows:
            if not digests & self.erasures:
                report.add(
                    seq,
                    "erased_without_record",
                    f"entry {seq}: erased, but no erasure of that user is recorded",
                )
        if self.expect is not None:
            seq, wanted = self.expect
            if seq < report.anchor_seq:
                return  # purged by retention since it was exported
            if self.expected_hash != wanted:
                report.add(seq, "edited", f"entry {seq} no longer has the exported hash {wanted[:16]}")
