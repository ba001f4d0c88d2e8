"""The mock LLM's fast path for benchmarks: a fixed small completion, answered as cheaply as possible.

A raw ASGI app (no framework, no routing table, no scenarios, no stats) so that a benchmark of
something *in front of* an LLM measures that something and not the mock. ``POST
/v1/chat/completions`` answers every request with the same valid OpenAI completion (text ``"ok"``,
``usage`` 8 + 1 tokens, the request's ``model`` echoed) or, with ``"stream": true``, the same as
one SSE burst. ``GET /health`` and ``GET /v1/models`` answer too; anything else is a 404.

Served by :func:`serve_fast` (``agenthost mock-llm --fast``) with uvicorn on ``httptools`` and
``uvloop``, access log off: many thousands of requests per second on one core.

Example::

    from agenthost.testing.mock_llm.fast import serve_fast

    serve_fast(port=8090)  # then: openai.OpenAI(base_url="http://127.0.0.1:8090/v1", api_key="k")
"""

from __future__ import annotations

import json
from typing import Any

import uvicorn

__all__ = ["FAST_REPLY", "FAST_USAGE", "fast_app", "serve_fast"]

FAST_REPLY = "ok"
FAST_USAGE = {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}
_CREATED = 1_700_000_000

_Send = Any
_Receive = Any

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_COMPLETION_HEAD = b'{"id":"chatcmpl-fast","object":"chat.completion","created":%d,"model":' % _CREATED
_COMPLETION_TAIL = (
    b',"choices":[{"index":0,"message":{"role":"assistant","content":'
    + json.dumps(FAST_REPLY).encode()
    + b',"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":'
    + json.dumps(FAST_USAGE, separators=(",", ":")).encode()
    + b"}"
)
_HEALTH = b'{"status":"ok"}'
_MODELS = b'{"object":"list","data":[{"id":"mock","object":"model","created":0,"owned_by":"agenthost-mock"}]}'
_NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error","code":"not_found"}}'
_BAD_REQUEST = (
    b'{"error":{"message":"the body must be a JSON object with a model",'
    b'"type":"invalid_request_error","code":"invalid_request"}}'
)


def _chunk(model: bytes, choices: bytes, usage: bytes = b"null") -> bytes:
    return (
        b'data: {"id":"chatcmpl-fast","object":"chat.completion.chunk","created":%d,"model":%s,'
        b'"choices":%s,"usage":%s}\n\n' % (_CREATED, model, choices, usage)
    )


def _stream_body(model: bytes, include_usage: bool) -> bytes:
    content = json.dumps(FAST_REPLY).encode()
    parts = [
        _chunk(model, b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]'),
        _chunk(model, b'[{"index":0,"delta":{"content":%s},"finish_reason":null}]' % content),
        _chunk(model, b'[{"index":0,"delta":{},"finish_reason":"stop"}]'),
    ]
    if include_usage:
        parts.append(_chunk(model, b"[]", json.dumps(FAST_USAGE, separators=(",", ":")).encode()))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


async def _reply(send: _Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: _Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def fast_app(scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
    """The whole fast mock as one ASGI callable (HTTP only; lifespan messages are not used)."""
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/v1/chat/completions" and method == "POST":
        raw = await _read_body(receive)
        try:
            request = json.loads(raw)
            model = json.dumps(request["model"]).encode()
        except (ValueError, TypeError, KeyError):
            await _reply(send, 400, _JSON_HEADERS, _BAD_REQUEST)
            return
        if request.get("stream") is True:
            options = request.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            await _reply(send, 200, _SSE_HEADERS, _stream_body(model, include_usage))
            return
        await _reply(send, 200, _JSON_HEADERS, _COMPLETION_HEAD + model + _COMPLETION_TAIL)
    elif path == "/health" and method == "GET":
        await _reply(send, 200, _JSON_HEADERS, _HEALTH)
    elif path == "/v1/models" and method == "GET":
        await _reply(send, 200, _JSON_HEADERS, _MODELS)
    else:
        await _reply(send, 404, _JSON_HEADERS, _NOT_FOUND)


def serve_fast(host: str = "127.0.0.1", port: int = 8090, *, log_level: str = "warning") -> None:
    """Serve :func:`fast_app` in the foreground until interrupted (``agenthost mock-llm --fast``)."""
    uvicorn.run(
        fast_app,
        host=host,
        port=port,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        log_level=log_level,
        server_header=False,
        date_header=False,
    )
