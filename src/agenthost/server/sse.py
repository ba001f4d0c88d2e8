"""Server-sent events: run events as SSE messages, with heartbeat comments while idle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent

from agenthost.runtime.events import RunEvent

__all__ = ["event_stream", "seed_messages"]


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
        headers={"X-Run-Id": run_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
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
