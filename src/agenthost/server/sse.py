"""Server-sent events: run events as SSE messages, with heartbeat comments while idle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from agenthost.runtime.events import RunEvent

if TYPE_CHECKING:
    from agenthost.gateway.frontdoor import DoorEvent

__all__ = ["SSE_HEADERS", "DoorStreamWriter", "door_stream", "event_stream", "seed_messages"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""No cache, and no buffering by a proxy (nginx) in front: events reach the client as written."""


class DoorStreamWriter(Protocol):
    """A front door's wire format for a stream (chat chunks, Responses events, Anthropic events)."""

    def start(self) -> list[str]: ...

    def lines(self, event: DoorEvent) -> list[str]: ...


def door_stream(events: AsyncIterator[DoorEvent], writer: DoorStreamWriter) -> StreamingResponse:
    """A front door's SSE answer: the writer's opening lines, then each door event's lines."""

    async def lines() -> AsyncIterator[str]:
        for line in writer.start():
            yield line
        async for event in events:
            for line in writer.lines(event):
                yield line

    return StreamingResponse(lines(), media_type="text/event-stream", headers=SSE_HEADERS)


def event_stream(
    events: AsyncIterator[RunEvent],
    *,
    heartbeat: float,
    run_id: str,
    render: Callable[[AsyncIterator[RunEvent]], AsyncIterator[ServerSentEvent]] | None = None,
) -> EventSourceResponse:
    """An SSE response; a client that disconnects stops only this stream, never the run."""
    messages = render(events) if render is not None else _messages(events)
    return EventSourceResponse(
        messages,
        ping=heartbeat,
        headers={"X-Run-Id": run_id, **SSE_HEADERS},
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
    )


async def _messages(events: AsyncIterator[RunEvent]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        fields = event.sse()
        yield ServerSentEvent(data=fields["data"], event=fields["event"], id=fields["id"])


async def seed_messages(events: AsyncIterator[RunEvent]) -> AsyncIterator[ServerSentEvent]:
    """The seed tutorials' stream: `data: <text>` per token, then `data: [DONE]`.

    Only text and a failure are sent; the full typed stream is `/v1/agents/{agent}/stream`.
    """
    async for event in events:
        if event.type == "text.delta":
            yield ServerSentEvent(data=event.data["delta"], event=event.type, id=str(event.seq))
        elif event.type in ("run.failed", "run.dead", "run.cancelled"):
            fields = event.sse()
            yield ServerSentEvent(data=fields["data"], event=fields["event"], id=fields["id"])
    yield ServerSentEvent(data="[DONE]")
