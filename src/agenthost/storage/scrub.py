"""Scrubbing: free text out, shape, identifiers and accounting in. What erasure and retention do
to a run's input, output, error, metadata, events and approvals (`storage/runs.py`)."""

from __future__ import annotations

from typing import Any

from agenthost.records import ERASED

__all__ = ["scrub"]

# What survives a scrub: identifiers of models, tools, outcomes and costs; never free text.
_KEEP_TEXT = frozenset(
    {
        "agent", "approval_id", "cache", "code", "completed_at", "cost_status", "created_at", "decided_at",
        "event", "expires_at", "finish_reason", "key_id", "kind", "limit", "model", "model_name", "outcome",
        "part_kind", "priority", "provider", "provider_name", "requested_at", "run_id", "started_at",
        "status", "team", "tier", "timestamp", "tool", "tool_call_id", "tool_name", "type",
    }
)  # fmt: skip
_KEEP_NUMBERS = frozenset(
    {
        "attempt", "cache_read_tokens", "cache_write_tokens", "cost_nanousd", "duration_ms", "fork_step",
        "function_id", "input_tokens", "max_tokens", "output_tokens", "requests", "seq", "similarity",
        "step", "steps", "tool_calls", "total_tokens",
    }
)  # fmt: skip
# Subtrees whose numbers are all accounting (token counts, prices, savings).
_NUMERIC_PARENTS = frozenset({"usage", "cost", "saved", "details", "limits"})
# Subtrees that are the conversation itself: replaced whole.
_DROP = frozenset(
    {
        "args", "arguments", "content", "delta", "deltas", "history", "input", "instructions",
        "message", "messages", "output", "parts", "prompt", "query", "reason", "result", "text",
    }
)  # fmt: skip
_USER_KEYS = frozenset({"user_id", "user", "decided_by", "decided_for"})


def scrub(  # noqa: PLR0911 - one return per kind of JSON value
    value: Any, *, user: tuple[str, str] | None = None, key: str | None = None, numeric: bool = False
) -> Any:
    """`value` with its free text removed and its shape, identifiers and accounting numbers kept.

    `user` is `(user id, pseudonym)`: that id, wherever it appears under a user key, becomes the
    pseudonym.
    """
    if key in _DROP:
        return None if value is None else ERASED
    if isinstance(value, dict):
        inner = numeric or key in _NUMERIC_PARENTS
        return {k: scrub(v, user=user, key=str(k), numeric=inner) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, user=user, key=key, numeric=numeric) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if numeric or key in _KEEP_NUMBERS else None
    if isinstance(value, str):
        if key in _USER_KEYS and user is not None and value == user[0]:
            return user[1]
        if key in _KEEP_TEXT or (key in _USER_KEYS and user is not None):
            return value
        return ERASED
    return ERASED
