"""The OpenAI embeddings wire format (``POST /v1/embeddings``), with deterministic, meaningful vectors.

A text's vector is a hashed bag of its words: every lower-cased ``\\w+`` token adds 1 to dimension
``blake2b(token) % dimensions`` (256 unless the request asks for ``dimensions``), and the result is
L2-normalised. So identical texts get identical vectors, texts sharing most words are close
(``"Where is my order?"`` / ``"where is my order"``: 1.0; one word changed out of five: 0.8) and
texts with no word in common are near 0 (only hash collisions). A text without any word (``"?!"``)
gets the vector of the empty token.

Request: ``{"model": str, "input": str | [str, ...], "encoding_format": "float" | "base64",
"dimensions": int}``; an empty string, an empty list or token arrays are refused with a 400, as
OpenAI refuses the first two. ``usage`` counts tokens with the mock's tokenizer
(:mod:`~agenthost.testing.mock_llm.tokens`). Headers: ``X-Mock-Fault`` (``rate_limit``,
``server_error``, ``overloaded``, ``bad_request``) answers with that error, ``X-Mock-Latency-Ms``
delays the answer. Calls are counted by :meth:`EmbeddingsEndpoint.stats`, apart from the chat stats.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import threading
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from agenthost.testing.mock_llm.exchange import ERROR_STATUS, ErrorKind
from agenthost.testing.mock_llm.openai_wire import OpenAIWire
from agenthost.testing.mock_llm.tokens import count_tokens

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["DEFAULT_DIMENSIONS", "EmbeddingsEndpoint", "mock_embedding"]

DEFAULT_DIMENSIONS = 256
_MAX_DIMENSIONS = 4096
_WORD_RE = re.compile(r"\w+")
_FAULTS: dict[str, ErrorKind] = {
    "rate_limit": "rate_limit",
    "server_error": "server_error",
    "overloaded": "overloaded",
    "bad_request": "invalid_request",
}
_WIRE = OpenAIWire()


class _BadRequestError(Exception):
    pass


def _bucket(word: str, dimensions: int) -> int:
    digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % dimensions


def mock_embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The mock's vector for ``text``: a normalised hashed bag of its lower-cased words."""
    counts = [0.0] * dimensions
    for word in _WORD_RE.findall(text.lower()) or [""]:
        counts[_bucket(word, dimensions)] += 1
    norm = math.sqrt(math.fsum(c * c for c in counts))
    return [c / norm for c in counts]


def _inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise _BadRequestError("`input` must be a string or a non-empty list of strings")
    if any(not text for text in texts):
        raise _BadRequestError("`input` cannot contain an empty string")
    return texts


def _dimensions(body: dict[str, Any]) -> int:
    value = body.get("dimensions", DEFAULT_DIMENSIONS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_DIMENSIONS:
        raise _BadRequestError(f"`dimensions` must be an integer from 1 to {_MAX_DIMENSIONS}")
    return value


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def _render(body: Any) -> dict[str, Any]:
    """The response to an embeddings request body; raises ``_BadRequestError`` if it is invalid."""
    if not isinstance(body, dict):
        raise _BadRequestError("the request body must be a JSON object")
    texts = _inputs(body)
    dimensions = _dimensions(body)
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in {"float", "base64"}:
        raise _BadRequestError("`encoding_format` must be 'float' or 'base64'")
    tokens = sum(count_tokens(text) for text in texts)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": _encode(mock_embedding(text, dimensions), encoding_format),
            }
            for index, text in enumerate(texts)
        ],
        "model": str(body.get("model") or ""),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


class EmbeddingsEndpoint:
    """The ``POST /v1/embeddings`` handler and its own call counters (``app.state.embeddings``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._inputs = 0
        self._errors = 0

    def stats(self) -> dict[str, int]:
        """``{"calls", "inputs", "errors"}``: requests answered, texts embedded, errors answered."""
        with self._lock:
            return {"calls": self._calls, "inputs": self._inputs, "errors": self._errors}

    def reset(self) -> None:
        with self._lock:
            self._calls = self._inputs = self._errors = 0

    def _count(self, *, inputs: int = 0, error: bool = False) -> None:
        with self._lock:
            self._calls += 1
            self._inputs += inputs
            self._errors += error

    def _error(self, kind: ErrorKind, message: str) -> Response:
        self._count(error=True)
        headers = {"retry-after": "1"} if kind == "rate_limit" else None
        return Response(_WIRE.error_body(kind, message), ERROR_STATUS[kind], headers, "application/json")

    async def create(self, request: Request) -> Response:
        try:
            latency_ms = float(request.headers.get("x-mock-latency-ms") or 0)
        except ValueError:
            return self._error("invalid_request", "x-mock-latency-ms must be a number")
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        fault = request.headers.get("x-mock-fault")
        if fault is not None:
            if fault not in _FAULTS:
                return self._error(
                    "invalid_request", f"unknown fault kind {fault!r}; known: {sorted(_FAULTS)}"
                )
            return self._error(_FAULTS[fault], f"mock {fault} fault")
        try:
            payload = _render(json.loads(await request.body()))
        except ValueError:
            return self._error("invalid_request", "the request body is not valid JSON")
        except _BadRequestError as exc:
            return self._error("invalid_request", str(exc))
        self._count(inputs=len(payload["data"]))
        return JSONResponse(payload)
