"""The run service: what the HTTP API and the CLI do with runs (start, wait, follow, list, cancel)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from dbos import DBOS
from pydantic_ai.messages import ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models import ModelRequestParameters

from agenthost.costs.guard import estimate_call
from agenthost.errors import ConflictError, ErrorCode, InvalidRequestError, NotFoundError
from agenthost.gateway.routing import classify, classify_with_model
from agenthost.observability.metrics import ROUTING_DECISIONS
from agenthost.records import TERMINAL_STATUSES, UsageRecord
from agenthost.runtime.environment import RunEnvironment
from agenthost.runtime.events import RunEvent, Subscription
from agenthost.runtime.spec import RunSpec, configured_model
from agenthost.runtime.workflow import DurableRuns
from agenthost.security.audit import actor_fields
from agenthost.security.sealing import Sealer, new_data_key
from agenthost.storage.ledger import ledger_row
from agenthost.storage.runs import RunFilter, RunStart

__all__ = ["RunService", "Submission", "new_run_id"]

_log = structlog.get_logger(__name__)
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# How often a reader of a run executing in another process looks for new events in the database.
_POLL_SECONDS = 0.25
# How long a cancel waits for a run executing here to record its own end.
_CANCEL_GRACE_SECONDS = 5.0


def new_run_id() -> str:
    """A sortable, unguessable run id: `run_` + 10 chars of milliseconds + 16 random chars."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_CROCKFORD[index])
    return "run_" + "".join(reversed(chars))


def _idempotent_run_id(agent: str, key: str) -> str:
    digest = hashlib.sha256(f"{agent}\x00{key}".encode()).hexdigest()
    return f"run_k{digest[:32]}"


def _request_hash(spec: RunSpec) -> str:
    body = spec.model_dump(mode="json", exclude={"queued"})
    if body.get("model_settings") is None:
        del body["model_settings"]  # the hash of a request without them is what it always was
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class Submission:
    """A run accepted by the service: its row, whether this call created it, and its handle."""

    row: dict[str, Any]
    created: bool
    handle: Any | None
    data_key: bytes | None = None
    """The run's data key (never part of `row`): opens the summary its workflow returns."""


class RunService:
    """Operations on runs, shared by every transport."""

    def __init__(self, env: RunEnvironment, durable: DurableRuns) -> None:
        self.env = env
        self.durable = durable
        self.store = env.stores.runs

    async def submit(
        self, spec: RunSpec, *, idempotency_key: str | None, if_busy: str = "queue"
    ) -> Submission:
        """Record and start a run; with an idempotency key, a repeat returns the first run.

        A run on a thread is queued behind the thread's running run, or refused (409
        `thread_busy`) with `if_busy="reject"`.
        """
        self.env.registry.get(spec.agent)  # unknown agent -> 404 before anything is written
        # Hashed as the caller sent it: a model classifier may answer differently on a retry.
        request_hash = _request_hash(spec)
        run_id = _idempotent_run_id(spec.agent, idempotency_key) if idempotency_key else new_run_id()
        # A repeat finds its run before anything else is done (routing would ask the paid
        # classifier again; its own run would make the thread look busy).
        earlier = await self._earlier(run_id, request_hash) if idempotency_key else None
        if isinstance(earlier, Submission):
            return earlier
        if spec.thread_id is not None:
            if if_busy == "reject" and await self.store.thread_busy(spec.thread_id):
                msg = f"thread {spec.thread_id!r} has a run in progress; retry later or send if_busy='queue'"
                raise ConflictError(msg, code=ErrorCode.THREAD_BUSY)
            spec = spec.model_copy(update={"queued": True})
        # Input screening (size, control characters, prompt injection) before any model call.
        spec = spec.model_copy(update={"input": await self.env.policies.screener.aenforce(spec.input)})
        # A spent budget refuses the run at once (402), before anything is written.
        await self.env.policies.budgets.ensure_open(
            spec.agent, spec.user_id, self._first_call_estimate(spec), spec.payer()
        )
        if earlier is None:
            spec, classifier = await self._route(spec)
        else:
            # Recorded but never started: start it as it was routed.
            spec = spec.model_copy(update={"tier": earlier["tier"], "metadata": earlier["metadata"]})
            classifier = None
        self._check_batch(spec)
        now = datetime.now(UTC)
        row = {
            "id": run_id,
            "agent": spec.agent,
            "status": "queued" if spec.queued else "running",
            "user_id": spec.user_id,
            "key_id": spec.key_id,
            "team": spec.team,
            "thread_id": spec.thread_id,
            "tier": spec.tier,
            "input": {"text": spec.input, "max_tokens": spec.max_tokens},
            "metadata": spec.metadata,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "created_at": now,
            "started_at": None if spec.queued else now,
            "data_key": new_data_key(),
        }
        stored, created = await self.store.create(row)
        data_key = stored.pop("data_key", None)
        await self._audit_started(run_id, spec, created=created)
        if created and classifier is not None:
            await self._ledger_classifier(run_id, spec, classifier, now)
        if not created:
            if stored["request_hash"] != request_hash:
                msg = "this Idempotency-Key was already used with a different request body"
                raise ConflictError(msg, code=ErrorCode.IDEMPOTENCY_KEY_REUSED)
            if await DBOS.get_workflow_status_async(run_id) is not None:
                return Submission(stored, created=False, handle=None, data_key=data_key)
        if not spec.queued:
            # It executes here: readers that arrive before its first event wait on memory, not the DB.
            self.env.bus.open(run_id)
        start = RunStart(data_key, 0, stored["thread_id"])
        handle = await self.durable.start(run_id, spec, start)
        _log.info("run_accepted", run_id=run_id, agent=spec.agent, queued=spec.queued)
        return Submission(stored, created=created, handle=handle, data_key=data_key)

    def _check_batch(self, spec: RunSpec) -> None:
        if spec.priority != "batch":
            return
        name = configured_model(self.env.settings, spec)
        model = self.env.settings.models.get(name)
        if model is None or model.provider not in ("openai", "anthropic"):
            msg = f"batch runs need an openai or anthropic [models] entry; this run would use {name!r}"
            raise InvalidRequestError(msg, code=ErrorCode.BATCH_UNSUPPORTED)

    async def _earlier(self, run_id: str, request_hash: str) -> Submission | dict[str, Any] | None:
        """The run an idempotency key already names: started (its submission), only recorded (its
        row), or none. A different body under the key is 409 `idempotency_key_reused`."""
        stored = await self.store.get(run_id)
        if stored is None:
            return None
        if stored["request_hash"] != request_hash:
            msg = "this Idempotency-Key was already used with a different request body"
            raise ConflictError(msg, code=ErrorCode.IDEMPOTENCY_KEY_REUSED)
        if await DBOS.get_workflow_status_async(run_id) is not None:
            return Submission(stored, created=False, handle=None)
        return stored

    async def _audit_started(self, run_id: str, spec: RunSpec, *, created: bool) -> None:
        """`run.started` in the audit log (once, not for an idempotent repeat)."""
        if not created:
            return
        await self.env.policies.audit.append(
            "run.started",
            **actor_fields(spec.actor or "anonymous", spec.actor_user),
            subject_user=spec.user_id,
            target=run_id,
            model=configured_model(self.env.settings, spec) or None,
            prompt_version=self.env.registry.get(spec.agent).prompt_version,
            details={"agent": spec.agent, "thread_id": spec.thread_id, "priority": spec.priority},
            dedupe_key=f"run.started:{run_id}",
        )

    def _first_call_estimate(self, spec: RunSpec) -> int:
        """What the run's first model call may cost at least: its input and the output estimate."""
        entry = self.env.registry.get(spec.agent)
        output = spec.max_tokens or self.env.settings.limits.output_tokens_estimate
        request = ModelRequest(parts=[UserPromptPart(spec.input)])
        prices = self.env.registry.gateway.prices
        return estimate_call(prices, entry.model, [request], ModelRequestParameters(), output)[1]

    async def _route(self, spec: RunSpec) -> tuple[RunSpec, ModelResponse | None]:
        """Pick the tier of a routed agent's run now, so that a replay uses the same model; with
        the classifier model's response, if one was asked."""
        config = self.env.settings.agents[spec.agent]
        if not config.routing:
            return spec.model_copy(update={"tier": None}), None
        routing: dict[str, Any]
        classifier: ModelResponse | None = None
        if spec.tier is not None:
            routing = {"tier": spec.tier, "source": "forced", "forced": True}
        elif self.env.settings.routing.classifier is not None:
            routing, classifier = await self._classify_with_model(spec.input)
        else:
            found = classify(spec.input)
            routing = {
                "tier": found.tier,
                "source": "heuristic",
                "score": found.score,
                "signals": list(found.signals),
            }
        model = getattr(self.env.settings.routing, routing["tier"]) or ""
        routing["model"] = model
        ROUTING_DECISIONS.labels(spec.agent, routing["tier"], model, routing["source"]).inc()
        metadata = {**(spec.metadata or {}), "routing": routing}
        return spec.model_copy(update={"tier": routing["tier"], "metadata": metadata}), classifier

    async def _classify_with_model(self, text: str) -> tuple[dict[str, Any], ModelResponse | None]:
        """The `[routing] classifier` model's tier, or the heuristic's when that model fails."""
        settings = self.env.settings.routing
        assert settings.classifier is not None
        gateway = self.env.registry.gateway
        try:
            async with asyncio.timeout(settings.classifier_timeout_seconds):
                tier, response = await classify_with_model(gateway.passthrough(settings.classifier), text)
        except Exception as exc:
            found = classify(text)
            _log.warning("routing_classifier_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            failed = {
                "tier": found.tier,
                "source": "heuristic",
                "signals": list(found.signals),
                "classifier_error": type(exc).__name__,
            }
            return failed, None
        price = gateway.prices.of(response)
        routing = {
            "tier": tier,
            "source": "classifier",
            "classifier": settings.classifier,
            "classifier_cost_nanousd": price.nanousd,
            "classifier_cost_status": price.status,
        }
        return routing, response

    async def _ledger_classifier(
        self, run_id: str, spec: RunSpec, response: ModelResponse, at: datetime
    ) -> None:
        """The routing classifier's call, in the ledger under the run it routed (seq 0)."""
        call = self.env.registry.gateway.prices.call(response)
        usage = UsageRecord(**call.model_dump(), agent=spec.agent, user_id=spec.user_id, tier=spec.tier)
        row = ledger_row(source=run_id, seq=0, kind="classifier", usage=usage, at=at, run_id=run_id)
        await self.env.ledger.record([row])

    async def wait(self, submission: Submission, wait_seconds: float) -> dict[str, Any] | None:
        """The finished run's row, or None if it is still going after `wait_seconds`."""
        run_id = submission.row["id"]
        if submission.row["status"] in TERMINAL_STATUSES:
            return submission.row
        task = getattr(submission.handle, "task", None)
        if task is None:
            # Queued, or running elsewhere: wait for its terminal event (memory or database).
            return await self._wait_for_end(run_id, wait_seconds)
        # A run started here is awaited on its task directly (no status round trips to the database).
        result = asyncio.ensure_future(asyncio.shield(task))
        done, _ = await asyncio.wait({result}, timeout=wait_seconds)
        if not done:
            result.cancel()
            return None
        try:
            summary = result.result()
        except BaseException:  # a cancelled or crashed workflow: the row says what happened
            return await self.get(run_id)
        if summary.get("status") == "cancelled" or "sealed" not in summary:
            return await self.get(run_id)
        # The summary DBOS recorded, sealed with the run's key: the finished row without a read.
        finished = Sealer(submission.data_key).open(summary["sealed"])
        return {**submission.row, **finished, "completed_at": datetime.now(UTC)}

    async def _wait_for_end(self, run_id: str, wait_seconds: float) -> dict[str, Any] | None:
        async def ended() -> None:
            async for _event in self.follow(run_id):
                pass

        try:
            await asyncio.wait_for(ended(), wait_seconds)
        except TimeoutError:
            return None
        row = await self.get(run_id)
        return row if row["status"] in TERMINAL_STATUSES else None

    async def get(self, run_id: str) -> dict[str, Any]:
        row = await self.store.get(run_id)
        if row is None:
            msg = f"run {run_id!r} does not exist"
            raise NotFoundError(msg, code=ErrorCode.RUN_NOT_FOUND)
        return row

    async def list_runs(self, query: RunFilter) -> list[dict[str, Any]]:
        return await self.store.list_runs(query)

    async def cancel(self, run_id: str) -> dict[str, Any]:
        row = await self.get(run_id)
        if row["status"] in TERMINAL_STATUSES:
            msg = f"run {run_id!r} already {row['status']}: only a queued or running run can be cancelled"
            raise ConflictError(msg, code=ErrorCode.RUN_NOT_CANCELLABLE)
        # Marked before DBOS is told: DBOS may interrupt a run executing here by itself, and the run
        # must know the interruption is a cancel (recorded) rather than a shutdown (recovered later).
        self.env.local.cancelled.add(run_id)
        await DBOS.cancel_workflow_async(run_id)
        task = self.env.local.tasks.get(run_id)
        if task is not None:
            # Executing here: interrupt it and let it record its own end (status and last event),
            # so that readers of its events see `run.cancelled` before the status changes.
            task.cancel()
            await asyncio.wait({task}, timeout=_CANCEL_GRACE_SECONDS)
        self.env.local.cancelled.discard(run_id)
        # Queued, or executing elsewhere (it stops at its next step): mark it here.
        await self.store.cancel(run_id, datetime.now(UTC))
        _log.info("run_cancelled", run_id=run_id)
        return await self.get(run_id)

    async def follow(self, run_id: str, after_seq: int = 0) -> AsyncIterator[RunEvent]:
        """A run's events after `after_seq`: the recorded ones, then live ones until the run ends.

        Works for runs executing in this process (from memory, then live) and elsewhere (from
        the database, polled), and across a run's move between the two.
        """
        subscription = self.env.bus.subscribe(run_id)
        last = after_seq
        try:
            while True:
                batch = await self._catch_up(run_id, last)
                for event in batch:
                    yield event
                    last = event.seq
                    if event.terminal:
                        return
                async for event in self._live(subscription, last):
                    yield event
                    last = event.seq
                    if event.terminal:
                        return
                if not batch and await self._ended_without_more_events(run_id, last):
                    return
        finally:
            subscription.close()

    async def _catch_up(self, run_id: str, last: int) -> list[RunEvent]:
        history = self.env.bus.history(run_id, last)
        if history is not None:
            return history
        return [RunEvent.from_row(row) for row in await self.store.events_after(run_id, last)]

    @staticmethod
    async def _live(subscription: Subscription, last: int) -> AsyncIterator[RunEvent]:
        """Consecutive live events after `last`; stops when idle for a poll interval or on a gap."""
        while (event := await subscription.get(_POLL_SECONDS)) is not None:
            if event.seq <= last:
                continue
            if event.seq != last + 1:
                return  # a gap: the caller catches up from history or the database first
            yield event
            last = event.seq
            if event.terminal:
                return

    async def _ended_without_more_events(self, run_id: str, last: int) -> bool:
        if self.env.bus.history(run_id, last) is not None:
            return False
        row = await self.store.get(run_id)
        if row is None or row["status"] not in TERMINAL_STATUSES:
            return False
        return not await self.store.events_after(run_id, last, limit=1)
