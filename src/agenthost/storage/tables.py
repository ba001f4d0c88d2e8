"""agenthost's own tables. DBOS keeps its workflow and step records in its own schema beside these.

Money is stored as integer nano-dollars (1e-9 USD) so sums are exact on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetimes are not stored; use UTC-aware values"
            raise ValueError(msg)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        return None if value is None else value.replace(tzinfo=UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(256)),
    sa.Column("thread_id", sa.String(128)),
    sa.Column("input", JSONType, nullable=False),
    sa.Column("output", JSONType),
    sa.Column("error", JSONType),
    sa.Column("model", sa.String(256)),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost_nanousd", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_status", sa.String(32), nullable=False, server_default="none"),
    sa.Column("steps", sa.Integer, nullable=False, server_default="0"),
    sa.Column("idempotency_key", sa.String(256)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("metadata", JSONType),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("completed_at", UTCDateTime),
    sa.Column("forked_from", sa.String(64)),
    sa.Column("fork_step", sa.Integer),
    sa.Column("tier", sa.String(16)),
    sa.Column("key_id", sa.String(32)),
    sa.Column("team", sa.String(128)),
    # When the run's input, output, events and durable records were scrubbed (erasure, retention).
    sa.Column("scrubbed_at", UTCDateTime),
    # The key that seals what the run keeps in DBOS's records; deleted with the run's content.
    sa.Column("data_key", sa.LargeBinary),
    sa.Index("ix_runs_created", "created_at", "id"),
    sa.Index("ix_runs_status_created", "status", "created_at"),
    sa.Index("ix_runs_agent_created", "agent", "created_at"),
    sa.Index("ix_runs_user_created", "user_id", "created_at"),
    sa.Index("ix_runs_thread", "thread_id", "status"),
    sa.Index("ix_runs_key_created", "key_id", "created_at"),
)

run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(256)),
    sa.Column("tool_call_id", sa.String(256), nullable=False),
    sa.Column("tool_name", sa.String(256), nullable=False),
    sa.Column("args", JSONType),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("decided_by", sa.String(256)),
    # The person an operator or admin decided for (`by` in the request); the decider is `decided_by`.
    sa.Column("decided_for", sa.String(256)),
    sa.Column("reason", sa.Text),
    sa.Index("ix_approvals_status_requested", "status", "requested_at"),
    sa.Index("ix_approvals_run", "run_id"),
)

thread_messages = sa.Table(
    "thread_messages",
    metadata,
    sa.Column("thread_id", sa.String(128), primary_key=True),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("messages", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_thread_messages_position", "thread_id", "position"),
)


response_cache = sa.Table(
    "response_cache",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # Who the answer was made for, so erasing a user removes their cached answers too.
    sa.Column("tenant", sa.String(256), nullable=True),
    sa.Index("ix_response_cache_expires", "expires_at"),
    sa.Index("ix_response_cache_tenant", "tenant"),
)

spend_ledger = sa.Table(
    "spend_ledger",
    metadata,
    # One row per model call. `source` is the run id (seq: the run event that reported the call;
    # 0 for the run's routing classifier) or, for front-door passthrough calls, the completion id.
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("agent", sa.String(64), nullable=True),
    sa.Column("user_id", sa.String(256), nullable=True),
    sa.Column("key_id", sa.String(64), nullable=True),
    sa.Column("team", sa.String(128), nullable=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("provider", sa.String(64), nullable=True),
    sa.Column("tier", sa.String(16), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_nanousd", sa.BigInteger, nullable=False),
    sa.Column("cost_status", sa.String(16), nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Against list price on the agent's primary model (costs/savings.py); nano-USD, may be negative.
    sa.Column("saved_routing", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("saved_response_cache", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("saved_prompt_cache", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("saved_batch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_spend_ledger_created", "created_at"),
    sa.Index("ix_spend_ledger_run", "run_id"),
)

budget_counters = sa.Table(
    "budget_counters",
    metadata,
    # `<scope>:<period>`, e.g. `user:u1:day:2026-11-21`; amounts in nano-dollars.
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("spent_nanousd", sa.BigInteger, nullable=False),
    sa.Column("reserved_nanousd", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    # The id makes an alert fire once: `<kind>:<subject>:<period>[:<threshold>]`.
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("delivery", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_alerts_created", "created_at"),
)

batch_requests = sa.Table(
    "batch_requests",
    metadata,
    # A batched model call (`<run>-<step>`), the provider batch it went into, and its result.
    sa.Column("custom_id", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("batch_id", sa.String(128), nullable=False),
    sa.Column("result", JSONType, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_batch_requests_batch", "batch_id"),
)

semantic_cache = sa.Table(
    "semantic_cache",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partition", sa.String(64), nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("tenant", sa.String(256), nullable=True),
    sa.Index("ix_semantic_cache_partition", "partition", "expires_at"),
    sa.Index("ix_semantic_cache_tenant", "tenant"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    # The secret is never stored: `secret_hash` is SHA-256 of it (keys carry 256 random bits, so a
    # slow password hash adds nothing). `previous_hash` keeps a rotated-out secret valid until
    # `previous_expires_at`.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("user_id", sa.String(256), nullable=True),
    sa.Column("team", sa.String(128), nullable=True),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("agents", JSONType, nullable=True),
    sa.Column("rate_limits", JSONType, nullable=True),
    sa.Column("budgets", JSONType, nullable=True),
    sa.Column("limits", JSONType, nullable=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("previous_hash", sa.String(64), nullable=True),
    sa.Column("previous_expires_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=True),
    sa.Column("rotated_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Index("ix_api_keys_user", "user_id"),
)


def row_dict(row: Any) -> dict[str, Any]:
    """A result row (`sa.Row` of any shape) as a plain dict."""
    return dict(row._mapping)  # noqa: SLF001 - `_mapping` is SQLAlchemy's public row-as-mapping accessor


# -- Audit log and privacy (security/audit.py, security/privacy.py; migration 0011) ------------

audit_log = sa.Table(
    "audit_log",
    metadata,
    # Hash-chained: `hash` = SHA-256 of `prev_hash` and the entry's canonical form, which holds the
    # keyed digests of the personal fields (`*_digest`), not their text, so erasure can blank the
    # text and the chain still verifies.
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("actor_user", sa.String(256), nullable=True),
    sa.Column("actor_user_digest", sa.String(64), nullable=True),
    sa.Column("subject_user", sa.String(256), nullable=True),
    sa.Column("subject_user_digest", sa.String(64), nullable=True),
    sa.Column("target", sa.String(256), nullable=True),
    sa.Column("details", JSONType, nullable=False),
    sa.Column("details_digest", sa.String(64), nullable=False),
    sa.Column("model", sa.String(256), nullable=True),
    sa.Column("prompt_version", sa.String(128), nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("dedupe_key", sa.String(255), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("dedupe_key", name="uq_audit_log_dedupe_key"),
    sa.Index("ix_audit_log_created", "created_at"),
    sa.Index("ix_audit_log_action", "action", "seq"),
    sa.Index("ix_audit_log_actor_user", "actor_user_digest"),
    sa.Index("ix_audit_log_subject_user", "subject_user_digest"),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    # One row (id 1): the last entry's seq and hash (appends lock it; a deleted tail shows), and the
    # anchor: seq and hash of the last entry deleted by retention, where verification starts.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("anchor_seq", sa.BigInteger, nullable=False),
    sa.Column("anchor_hash", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=True),
)

audit_meta = sa.Table(
    "audit_meta",
    metadata,
    # `hmac_secret`: the per-deployment key of the audit log's digests, made on first use.
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
