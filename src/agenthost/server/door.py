"""The front door: one path behind `/v1/chat/completions`, `/v1/responses` and `/v1/messages`.

A door request names either an agent or a gateway model. The three routes only translate their
wire format; everything else happens here, once:

- the caller (authenticated, admitted by the request rate limits by `deps.authenticate`) and
  whether they may use the model (403), or 404 `model_not_found`;
- input screening of the messages the caller sent (prompt injection, tool results as indirect
  injection); the run's own input is screened when the run is submitted;
- an agent: a durable run of it (`RunService.submit`, then its events: the same run as
  `/v1/agents/{agent}/run`), its failures answered with the status their code means (a context
  overflow is a 400 `context_length_exceeded`, not a 502);
- a gateway model: the stateless passthrough through the gateway call core: the token rate limit,
  a budget reservation, the call, output redaction (streamed text held back until entities are
  whole), the spend ledger row, the budget settled with the real cost.

Results are the neutral `Outcome` and `DoorEvent`s of `gateway/frontdoor.py`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic_ai import messages as _messages
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.settings import ModelSettings

from agenthost.costs.budgets import Reservation
from agenthost.costs.guard import estimate_call
from agenthost.costs.savings import call_record
from agenthost.errors import (
    AgentHostError,
    ErrorCode,
    ModelError,
    NotFoundError,
    RequestError,
    UnsupportedParameterError,
    as_client_error,
)
from agenthost.gateway.cache import cache_scope
from agenthost.gateway.chain import primary_model
from agenthost.gateway.context import side_calls
from agenthost.gateway.frontdoor import (
    DoorEvent,
    Failed,
    Finished,
    Outcome,
    StreamTranslator,
    TextDelta,
    extras,
    finish_reason_of,
)
from agenthost.records import Cost, EventType, SamplingSettings, UsageRecord
from agenthost.runtime.process import Runtime
from agenthost.runtime.service import RunService
from agenthost.runtime.spec import RunSpec
from agenthost.security.auth import Principal
from agenthost.security.output import StreamRedactor
from agenthost.server.deps import IdempotencyKeyDep, PrincipalDep, RuntimeDep, ServiceDep
from agenthost.storage.ledger import ledger_row

__all__ = ["AgentCall", "Door", "DoorDep", "GatewayCall", "error_of"]

_MESSAGES = _messages.ModelMessagesTypeAdapter

# The status a client gets for a run that ended with one of these codes (others: 502).
_RUN_STATUS: dict[str, int] = {
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: 400,
    ErrorCode.USAGE_LIMIT_EXCEEDED: 400,
    ErrorCode.INPUT_REJECTED: 400,
    ErrorCode.BUDGET_EXCEEDED: 402,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.MODEL_UNAVAILABLE: 503,
    ErrorCode.ALL_MODELS_UNAVAILABLE: 503,
    ErrorCode.BUDGET_UNAVAILABLE: 503,
    ErrorCode.RATE_LIMIT_UNAVAILABLE: 503,
    ErrorCode.RUN_TIMEOUT: 504,
}
_CLIENT_ERROR_MAX = 499


def error_of(code: str, message: str) -> AgentHostError:
    """The HTTP error for a run that ended with `code` (a 4xx is the client's, others the model's)."""
    status = _RUN_STATUS.get(code, 502)
    known = code if code in ErrorCode.__members__.values() else ErrorCode.RUN_FAILED
    if status <= _CLIENT_ERROR_MAX:
        return RequestError(message, code=ErrorCode(known), status=status)
    return ModelError(message, code=ErrorCode(known), status=status)


@dataclass(frozen=True)
class GatewayCall:
    """A stateless passthrough call, translated from a door's request."""

    model: str
    messages: list[_messages.ModelMessage]
    settings: ModelSettings
    parameters: ModelRequestParameters
    user: str | None
    output_param: str = "response_format"
    """The request parameter that asked for structured output (named when it is refused)."""


@dataclass(frozen=True)
class AgentCall:
    """A run of an agent, translated from a door's request."""

    agent: str
    input: str
    user: str | None
    via: str
    """The door (`chat.completions`, `responses`, `messages`), recorded in the run's metadata."""
    history: list[_messages.ModelMessage] | None = None
    max_tokens: int | None = None
    sampling: SamplingSettings | None = None
    """Sampling parameters the request asked for: every model call of the run uses them."""
    metadata: dict[str, Any] | None = None
    thread_id: str | None = None
    stored_history: list[Any] | None = None
    """Messages agenthost stored earlier (pydantic-ai JSON form, screened when they were sent),
    given before `history`: a Responses branch's conversation so far."""


class Door:
    """One front-door request: its caller and the runtime that serves it."""

    def __init__(
        self,
        runtime: Runtime,
        service: RunService,
        principal: Principal,
        request: Request,
        idempotency_key: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.service = service
        self.principal = principal
        self.idempotency_key = idempotency_key
        """`Idempotency-Key`: a repeated agent request returns the first run instead of a second."""
        self.identities: dict[str, str | None]
        self.overrides: Any
        self.identities, self.overrides = request.state.rate_limit

    def kind(self, model: str) -> Literal["agent", "gateway"]:
        """Whether `model` names an agent or a gateway model (404 `model_not_found` otherwise)."""
        settings = self.runtime.settings
        if model in settings.agents:
            return "agent"
        if model in settings.models:
            return "gateway"
        known = sorted({*settings.agents, *settings.models})
        msg = f"model {model!r} is neither an agent nor a gateway model here; known: {known}"
        raise NotFoundError(msg, code=ErrorCode.MODEL_NOT_FOUND)

    async def screen(self, messages: list[_messages.ModelMessage]) -> list[_messages.ModelMessage]:
        """The messages with each user text screened (400 `input_rejected`, or wrapped per config)
        and each tool result screened as a tool output (indirect injection). System and assistant
        messages come from the authenticated caller and pass as they are."""
        screener = self.runtime.policies.screener
        result: list[_messages.ModelMessage] = []
        for message in messages:
            if not isinstance(message, _messages.ModelRequest):
                result.append(message)
                continue
            parts: list[_messages.ModelRequestPart] = []
            for part in message.parts:
                if isinstance(part, _messages.UserPromptPart) and isinstance(part.content, str):
                    screened = await screener.aenforce(part.content, source="input")
                    parts.append(_messages.UserPromptPart(screened))
                elif isinstance(part, _messages.ToolReturnPart):
                    text = part.model_response_str()
                    screened = await screener.aenforce(text, source="tool")
                    parts.append(
                        _messages.ToolReturnPart(part.tool_name, screened, tool_call_id=part.tool_call_id)
                    )
                else:
                    parts.append(part)
            result.append(_messages.ModelRequest(parts=parts))
        return result

    # --- agents ----------------------------------------------------------------------------------

    async def start(self, call: AgentCall) -> str:
        """Submit the run (screened, budget-checked, recorded) and return its id."""
        sent = _MESSAGES.dump_python(await self.screen(call.history), mode="json") if call.history else []
        history = [*(call.stored_history or []), *sent]
        spec = RunSpec(
            agent=call.agent,
            input=call.input or " ",
            **self.principal.run_owner(call.agent, call.user),
            max_tokens=call.max_tokens,
            model_settings=call.sampling.dump() if call.sampling else None,
            history=history or None,
            thread_id=call.thread_id,
            metadata={**(call.metadata or {}), "via": call.via},
        )
        submission = await self.service.submit(spec, idempotency_key=self.idempotency_key)
        run_id: str = submission.row["id"]
        return run_id

    async def events(self, run_id: str) -> AsyncIterator[DoorEvent]:
        """The run's text as it comes, then `Finished` or `Failed`."""
        async for event in self.service.follow(run_id):
            if event.type is EventType.TEXT_DELTA:
                yield TextDelta(event.data["delta"])
            elif event.type is EventType.RUN_COMPLETED:
                yield Finished(_run_outcome(run_id, event.data))
            elif event.terminal:
                error = event.data.get("error") or {
                    "code": str(event.type),
                    "message": f"the run ended: {event.type}",
                }
                yield Failed(str(error["code"]), f"run {run_id} failed: {error['message']}")

    async def outcome(self, run_id: str) -> Outcome:
        """Wait for the run's end (at most `[server] chat_completions_timeout`): its outcome, or
        its failure as an HTTP error with the status its code means."""
        try:
            async with asyncio.timeout(self.runtime.settings.server.chat_completions_timeout):
                async for event in self.events(run_id):
                    if isinstance(event, Finished):
                        return event.outcome
                    if isinstance(event, Failed):
                        raise error_of(event.code, event.message)
        except TimeoutError:
            msg = f"run {run_id} did not finish in time; follow it at /v1/runs/{run_id}"
            raise ModelError(msg, code=ErrorCode.RUN_TIMEOUT, status=504) from None
        raise ModelError(f"run {run_id} ended without a result", code=ErrorCode.RUN_LOST)

    # --- gateway models --------------------------------------------------------------------------

    async def _reserve(self, call: GatewayCall) -> Reservation:
        self.principal.require_model(call.model)
        runtime = self.runtime
        await runtime.policies.limiter.check_tokens(self.identities, self.overrides)  # 429 when spent
        model = runtime.gateway.passthrough(call.model)
        if call.parameters.output_mode == "native" and not model.profile.get("supports_json_schema_output"):
            msg = f"gateway model {call.model!r} does not support JSON-schema structured output"
            raise UnsupportedParameterError(msg, param=call.output_param)
        cache_scope(enabled=True, tenant=call.user)
        output = call.settings.get("max_tokens") or runtime.settings.limits.output_tokens_estimate
        _, estimate = estimate_call(runtime.gateway.prices, model, call.messages, call.parameters, output)
        return await runtime.policies.budgets.reserve(None, call.user, estimate, self.principal.payer())

    async def _account(
        self,
        call: GatewayCall,
        source: str,
        response: _messages.ModelResponse,
        summaries: list[_messages.ModelResponse],
        reservation: Reservation,
    ) -> Outcome:
        """Price the call (with any context summaries it needed), write its ledger row, charge its
        budgets the real cost; the outcome (text redacted)."""
        runtime, principal = self.runtime, self.principal
        primary = primary_model(runtime.gateway.passthrough(call.model))
        record = call_record(runtime.gateway.prices, primary, response, summaries=summaries)
        usage = UsageRecord(
            **record.model_dump(), user_id=call.user, key_id=principal.key_id, team=principal.team
        )
        await runtime.policies.limiter.record_tokens(self.identities, record.tokens, self.overrides)
        row = ledger_row(source=source, seq=0, kind="passthrough", at=datetime.now(UTC), usage=usage)
        await runtime.env.ledger.record([row])
        await runtime.policies.budgets.settle(reservation, record.cost.nanousd)
        if record.cost.nanousd:
            await runtime.policies.budgets.check_hourly_spend(runtime.backends.ledger)
        text = "".join(p.content for p in response.parts if isinstance(p, _messages.TextPart)) or None
        return Outcome(
            text=runtime.policies.redaction.value(None, text),
            tool_calls=[p for p in response.parts if isinstance(p, _messages.ToolCallPart)],
            finish=finish_reason_of(response),
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            extras=extras(run_id=None, served_by=response.model_name, cost=record.cost),
        )

    async def complete(self, call: GatewayCall, source: str) -> Outcome:
        """The passthrough call, answered whole; `source` names it in the ledger."""
        reservation = await self._reserve(call)
        model = self.runtime.gateway.passthrough(call.model)
        try:
            with side_calls() as summaries:
                response = await model.request(call.messages, call.settings, call.parameters)
        except ModelAPIError as exc:
            await self.runtime.policies.budgets.settle(reservation, 0)
            raise as_client_error(exc) from exc
        return await self._account(call, source, response, summaries, reservation)

    async def stream(self, call: GatewayCall, source: str) -> AsyncIterator[DoorEvent]:
        """The passthrough call, streamed. Opened before this returns (the gateway waits for the
        first event), so a failure to start is still an HTTP error; a failure later is `Failed`."""
        reservation = await self._reserve(call)
        model = self.runtime.gateway.passthrough(call.model)
        stream = model.request_stream(call.messages, call.settings, call.parameters)
        try:
            with side_calls() as summaries:
                opened = await stream.__aenter__()
        except ModelAPIError as exc:
            await self.runtime.policies.budgets.settle(reservation, 0)
            raise as_client_error(exc) from exc
        return self._streamed(call, source, stream, opened, summaries, reservation)

    async def _streamed(  # noqa: PLR0917 - the parts of one opened stream
        self,
        call: GatewayCall,
        source: str,
        stream: AbstractAsyncContextManager[StreamedResponse],
        opened: StreamedResponse,
        summaries: list[_messages.ModelResponse],
        reservation: Reservation,
    ) -> AsyncIterator[DoorEvent]:
        failure: BaseException | None = None
        finished = False
        try:
            async for event in _translated(opened, self.runtime.policies.redaction.stream(None)):
                yield event
            outcome = await self._account(call, source, opened.get(), summaries, reservation)
            finished = True
            yield Finished(outcome)
        except ModelAPIError as exc:
            failure = exc
            error = as_client_error(exc)
            yield Failed(error.code, error.message)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            await stream.__aexit__(type(failure) if failure else None, failure, None)
            partial = opened.get()
            if not finished and (partial.usage.input_tokens or partial.usage.output_tokens):
                # Cut short (client gone, provider failed mid-way): what was used is still spent.
                await self._account(call, source, partial, summaries, reservation)
            elif not finished:
                await self.runtime.policies.budgets.settle(reservation, 0)


async def _translated(opened: StreamedResponse, redactor: StreamRedactor | None) -> AsyncIterator[DoorEvent]:
    """The stream's door events, its text redacted on the way (held back until entities are whole)."""
    translator = StreamTranslator()
    async for event in opened:
        translated = translator.event(event)
        if isinstance(translated, TextDelta) and redactor is not None:
            safe = redactor.feed(translated.text)
            if safe:
                yield TextDelta(safe)
        elif translated is not None:
            yield translated
    if redactor is not None and (rest := redactor.flush()):
        yield TextDelta(rest)


def _run_outcome(run_id: str, data: dict[str, Any]) -> Outcome:
    """A completed run's outcome, from its `run.completed` event."""
    output = data.get("output")
    finish = data.get("finish_reason")
    usage = data.get("usage") or {}
    cost = data.get("cost") or {}
    return Outcome(
        text=output if isinstance(output, str) else json.dumps(output),
        tool_calls=[],
        # An agent's last model call may be a call of its output tool: the run still just ended.
        finish="stop" if finish in (None, "tool_calls") else finish,
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        extras=extras(
            run_id=run_id,
            served_by=data.get("model"),
            cost=Cost(nanousd=cost.get("nanousd") or 0, status=cost.get("status") or "none"),
        ),
    )


async def _door(
    runtime: RuntimeDep,
    service: ServiceDep,
    principal: PrincipalDep,
    request: Request,
    key: IdempotencyKeyDep,
) -> Door:
    return Door(runtime, service, principal, request, key)


DoorDep = Annotated[Door, Depends(_door)]
