"""Provider batch APIs: OpenAI's Batch API (with the Files API it reads and writes) and Anthropic's
Message Batches, as the official SDKs call them.

OpenAI (``client.files``, ``client.batches``): ``POST /v1/files`` (multipart ``file`` and ``purpose``),
``GET|DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content``; ``POST /v1/batches`` (``input_file_id``,
``endpoint="/v1/chat/completions"``, ``completion_window="24h"``, optional ``metadata``),
``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.
Anthropic (``client.messages.batches`` and ``client.beta.messages.batches``):
``POST /v1/messages/batches`` (``requests: [{"custom_id", "params"}]``),
``GET /v1/messages/batches/{id}``, ``GET /v1/messages/batches/{id}/results`` (JSONL),
``POST /v1/messages/batches/{id}/cancel``.

Each request of a batch is answered as ``POST /v1/chat/completions`` / ``POST /v1/messages`` answer it
without streaming: the same wire objects (so the same prompt-cache state), scenarios, turns and usage.
Its fault (header, directive, turn or policy; the policy's call numbering counts batch requests)
becomes its error: ``rate_limit``, ``server_error``, ``overloaded`` and ``bad_request`` with their
usual status and body, ``timeout``, ``malformed`` and ``stream_cut`` (which need a live connection)
as a 500 server error; ``"stream": true`` is a 400. ``X-Mock-Scenario`` and ``X-Mock-Fault`` on the
request creating a batch apply to every request in it; latency and pacing knobs do not apply.

Timing: a new batch is ``validating`` (OpenAI) / ``in_progress`` (Anthropic) and answers all its
requests on the first poll (retrieve, cancel, results) at least ``batch_delay_seconds``
(:class:`~agenthost.testing.mock_llm.config.MockLLMConfig`) after its creation; earlier polls see
``in_progress``. A cancel before then runs none of its requests: ``cancelling``/``canceling`` until the
next poll, then ``cancelled`` (OpenAI, no output file) or ``ended`` with every request ``canceled``
(Anthropic). Cancelling an ended OpenAI batch is a 409; an ended Anthropic batch is returned as is.

Results: the OpenAI output file has one line per succeeded request, ``{"id", "custom_id",
"response": {"status_code": 200, "request_id", "body": <chat.completion>}, "error": null}``, the error
file one per failed request, with the error's status and body in ``response`` and its ``{"code",
"message"}`` in ``error``; each file is only written when it has lines (its id is null otherwise).
An input file that is not batch JSONL fails the batch (``status="failed"``, ``errors.data``).
Anthropic results are ``{"custom_id", "result": {"type": "succeeded", "message": <Message>}}``,
``{"type": "errored", "error": <the error body>}`` or ``{"type": "canceled"}``, in request order.

Batches and files stay in memory until the server stops; the stats count them under ``batches``
(:mod:`~agenthost.testing.mock_llm.stats`), never as interactive calls.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agenthost.testing.mock_llm.exchange import ERROR_STATUS, ErrorKind, MockRequestError

if TYPE_CHECKING:
    from agenthost.testing.mock_llm.behaviour import MockEngine
    from agenthost.testing.mock_llm.exchange import Wire, WireName

__all__ = ["BatchEndpoints"]

_OPENAI_ENDPOINT = "/v1/chat/completions"
_COMPLETION_WINDOW = "24h"
_EXPIRY_S = 24 * 3600
_CUSTOM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_RE = re.compile(r'\b(name|filename)="([^"]*)"', re.IGNORECASE)
_FAULT_ERRORS: dict[str, ErrorKind] = {
    "rate_limit": "rate_limit",
    "server_error": "server_error",
    "overloaded": "overloaded",
    "bad_request": "invalid_request",
}
_ANTHROPIC_ERROR_TYPES = {404: "not_found_error"}
_CONFLICT = 409

_Handler = Callable[[Request], Awaitable[Response]]
JobState = Literal["pending", "canceling", "ended"]


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _int_time(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp)


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, bytes)."""
    match = _BOUNDARY_RE.search(content_type)
    if not content_type.lower().startswith("multipart/form-data") or match is None:
        raise _HTTPError(400, "the request must be multipart/form-data")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, separator, data = part.partition(b"\r\n\r\n")
        if not separator:
            continue
        params = {
            m.group(1).lower(): m.group(2) for m in _DISPOSITION_RE.finditer(head.decode(errors="replace"))
        }
        if "name" in params:
            fields[params["name"]] = (params.get("filename"), data.removesuffix(b"\r\n"))
    return fields


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise _HTTPError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _HTTPError(400, "the request body must be a JSON object")
    return body


def _openai_error(error: _HTTPError) -> Response:
    body = {"message": error.message, "type": "invalid_request_error", "param": None, "code": error.code}
    return JSONResponse({"error": body}, error.status)


def _anthropic_error(error: _HTTPError) -> Response:
    kind = _ANTHROPIC_ERROR_TYPES.get(error.status, "invalid_request_error")
    return JSONResponse({"type": "error", "error": {"type": kind, "message": error.message}}, error.status)


def _guard(handler: _Handler, render: Callable[[_HTTPError], Response]) -> _Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _HTTPError as error:
            return render(error)

    return guarded


@dataclass(slots=True)
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass(slots=True, frozen=True)
class _Answer:
    """One request's answer: the status and body the interactive endpoint would have sent."""

    custom_id: str
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == 200  # noqa: PLR2004

    def anthropic_result(self) -> dict[str, Any]:
        return (
            {"type": "succeeded", "message": self.body}
            if self.ok
            else {"type": "errored", "error": self.body}
        )


@dataclass(slots=True)
class _Job:
    """One batch of either protocol, from creation until its answers are read."""

    id: str
    protocol: WireName
    requests: list[tuple[str, Any]]
    ready_at: float
    scenario_header: str | None
    fault_header: str | None
    created_at: float = field(default_factory=time.time)
    state: JobState = "pending"
    answers: list[_Answer] = field(default_factory=list)
    canceled: bool = False
    polled_at: float | None = None
    cancel_at: float | None = None
    ended_at: float | None = None
    # OpenAI only: the input file, its validation errors (which fail the batch) and the files written.
    input_file_id: str = ""
    lines: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    model: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None


def _read_input_file(content: bytes) -> tuple[list[tuple[str, Any]], list[dict[str, Any]], int]:
    """The (custom_id, body) pairs of an OpenAI batch input file, its validation errors and its line count."""
    requests: list[tuple[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def error(line: int | None, code: str, message: str) -> None:
        errors.append({"code": code, "message": message, "param": None, "line": line})

    try:
        text = content.decode()
    except UnicodeDecodeError:
        error(None, "invalid_file", "The input file is not UTF-8 text.")
        return requests, errors, 0
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for number, line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            error(number, "invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(custom_id, str) or not custom_id:
            error(number, "missing_required_parameter", "Each line needs a string `custom_id`.")
            continue
        if custom_id in seen:
            error(number, "duplicate_custom_id", f"The custom_id {custom_id!r} is a duplicate.")
        elif item.get("method") != "POST":
            error(number, "invalid_method", "The method of each request must be POST.")
        elif item.get("url") != _OPENAI_ENDPOINT:
            error(number, "mismatched_endpoint", f"The url of each request must be {_OPENAI_ENDPOINT}.")
        seen.add(custom_id)
        requests.append((custom_id, item.get("body")))
    if not lines:
        error(None, "empty_file", "The batch input file is empty.")
    return requests, errors, len(lines)


def _request_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise MockRequestError("the request body must be a JSON object")
    if body.get("stream"):
        raise MockRequestError("`stream` is not supported inside a batch")
    return body


class BatchEndpoints:
    """Batch routes of both protocols, their in-memory store and answering (``app.state.batches``)."""

    def __init__(self, engine: MockEngine, openai: Wire, anthropic: Wire) -> None:
        self.engine = engine
        self._wires: dict[WireName, Wire] = {"openai": openai, "anthropic": anthropic}
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._jobs: dict[str, _Job] = {}

    def routes(self) -> list[Route]:
        def openai(handler: _Handler) -> _Handler:
            return _guard(handler, _openai_error)

        def anthropic(handler: _Handler) -> _Handler:
            return _guard(handler, _anthropic_error)

        message_batch = "/v1/messages/batches/{batch_id}"
        return [
            Route("/v1/files", openai(self.create_file), methods=["POST"]),
            Route("/v1/files/{file_id}", openai(self.file), methods=["GET", "DELETE"]),
            Route("/v1/files/{file_id}/content", openai(self.file_content), methods=["GET"]),
            Route("/v1/batches", openai(self.create_openai_batch), methods=["POST"]),
            Route("/v1/batches/{batch_id}", openai(self.openai_batch), methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", openai(self.cancel_openai_batch), methods=["POST"]),
            Route("/v1/messages/batches", anthropic(self.create_anthropic_batch), methods=["POST"]),
            Route(message_batch, anthropic(self.anthropic_batch), methods=["GET"]),
            Route(f"{message_batch}/results", anthropic(self.anthropic_results), methods=["GET"]),
            Route(f"{message_batch}/cancel", anthropic(self.cancel_anthropic_batch), methods=["POST"]),
        ]

    # --- answering -----------------------------------------------------------------------------------

    def _answer(self, job: _Job, custom_id: str, body: Any) -> _Answer:
        """Answer one request as the interactive non-streaming endpoint would, faults as errors."""
        wire = self._wires[job.protocol]
        try:
            chat = wire.parse(_request_body(body))
            chat.scenario_header = job.scenario_header
            chat.fault_header = job.fault_header
            with self.engine.stats.answering_batch():
                plan = self.engine.plan(chat)
        except MockRequestError as exc:
            kind: ErrorKind = "invalid_request"
            message = str(exc)
        else:
            fault = plan.fault
            if fault is None:
                return _Answer(custom_id, 200, json.loads(wire.render(chat, plan)))
            kind = _FAULT_ERRORS.get(fault.kind, "server_error")
            message = f"mock {fault.kind} fault (scenario {plan.scenario!r}, turn {plan.turn})"
        return _Answer(custom_id, ERROR_STATUS[kind], json.loads(wire.error_body(kind, message)))

    def _advance(self, job: _Job) -> None:
        """Move ``job`` on as a poll finds it; the caller holds the lock."""
        now = time.time()
        stats = self.engine.stats
        if job.state == "ended":
            return
        if job.state == "canceling":
            job.state, job.canceled, job.ended_at = "ended", True, now
            stats.record_batch_outcome("canceled", len(job.requests))
            return
        if job.errors:
            job.state, job.ended_at = "ended", now
            stats.record_batch_outcome("errored", job.lines)
            return
        if job.polled_at is None:
            job.polled_at = now
        if time.monotonic() < job.ready_at:
            return
        job.answers = [self._answer(job, custom_id, body) for custom_id, body in job.requests]
        job.state, job.ended_at = "ended", now
        succeeded = sum(answer.ok for answer in job.answers)
        stats.record_batch_outcome("succeeded", succeeded)
        stats.record_batch_outcome("errored", len(job.answers) - succeeded)
        if job.protocol == "openai":
            self._write_output_files(job)

    def _write_output_files(self, job: _Job) -> None:
        lines: dict[bool, list[bytes]] = {True: [], False: []}
        for answer in job.answers:
            error = None if answer.ok else answer.body.get("error")
            response = {"status_code": answer.status, "request_id": _new_id("req_mock"), "body": answer.body}
            line = {
                "id": _new_id("batch_req_mock"),
                "custom_id": answer.custom_id,
                "response": response,
                "error": {"code": error.get("code"), "message": error.get("message")} if error else None,
            }
            lines[answer.ok].append(json.dumps(line).encode())
        job.output_file_id = self._output_file(f"{job.id}_output.jsonl", lines[True])
        job.error_file_id = self._output_file(f"{job.id}_error.jsonl", lines[False])

    def _output_file(self, filename: str, lines: list[bytes]) -> str | None:
        if not lines:
            return None
        file = _File(_new_id("file-mock"), filename, "batch_output", b"".join(line + b"\n" for line in lines))
        self._files[file.id] = file
        return file.id

    def _job(self, request: Request, protocol: WireName) -> _Job:
        """The job named in the path, advanced; the caller holds the lock."""
        batch_id = request.path_params["batch_id"]
        job = self._jobs.get(batch_id)
        if job is None or job.protocol != protocol:
            raise _HTTPError(404, f"No batch found with id {batch_id!r}.")
        self._advance(job)
        return job

    def _new_job(self, request: Request, protocol: WireName, requests: list[tuple[str, Any]]) -> _Job:
        return _Job(
            id=_new_id("batch_mock" if protocol == "openai" else "msgbatch_mock"),
            protocol=protocol,
            requests=requests,
            ready_at=time.monotonic() + self.engine.config.batch_delay_seconds,
            scenario_header=request.headers.get("x-mock-scenario"),
            fault_header=request.headers.get("x-mock-fault"),
        )

    def _store(self, job: _Job, requests: int) -> None:
        with self._lock:
            self._jobs[job.id] = job
        self.engine.stats.record_batch(job.protocol, requests)

    # --- OpenAI files --------------------------------------------------------------------------------

    async def create_file(self, request: Request) -> Response:
        fields = _multipart(request.headers.get("content-type", ""), await request.body())
        filename, content = fields.get("file", (None, b""))
        purpose = fields.get("purpose", (None, b""))[1].decode(errors="replace")
        if filename is None:
            raise _HTTPError(400, "the `file` field must be a file upload", "missing_required_parameter")
        if not purpose:
            raise _HTTPError(400, "the `purpose` field is required", "missing_required_parameter")
        file = _File(_new_id("file-mock"), filename, purpose, content)
        with self._lock:
            self._files[file.id] = file
        return JSONResponse(file.to_json())

    def _file(self, request: Request) -> _File:
        file_id = request.path_params["file_id"]
        file = self._files.get(file_id)
        if file is None:
            raise _HTTPError(404, f"No such File object: {file_id}")
        return file

    async def file(self, request: Request) -> Response:
        with self._lock:
            file = self._file(request)
            if request.method == "DELETE":
                del self._files[file.id]
                return JSONResponse({"id": file.id, "object": "file", "deleted": True})
        return JSONResponse(file.to_json())

    async def file_content(self, request: Request) -> Response:
        with self._lock:
            file = self._file(request)
        return Response(file.content, media_type="application/octet-stream")

    # --- OpenAI batches ------------------------------------------------------------------------------

    async def create_openai_batch(self, request: Request) -> Response:
        body = await _json_object(request)
        input_file_id, metadata, endpoint = (
            body.get("input_file_id"),
            body.get("metadata"),
            body.get("endpoint"),
        )
        if not isinstance(input_file_id, str):
            raise _HTTPError(400, "`input_file_id` must be a string", "missing_required_parameter")
        if endpoint != _OPENAI_ENDPOINT:
            raise _HTTPError(400, f"the mock runs batches for {_OPENAI_ENDPOINT} only, not {endpoint!r}")
        if body.get("completion_window") != _COMPLETION_WINDOW:
            raise _HTTPError(400, f"`completion_window` must be {_COMPLETION_WINDOW!r}")
        if metadata is not None and not isinstance(metadata, dict):
            raise _HTTPError(400, "`metadata` must be an object")
        with self._lock:
            file = self._files.get(input_file_id)
        if file is None:
            raise _HTTPError(404, f"No such File object: {input_file_id}")
        if file.purpose != "batch":
            raise _HTTPError(400, f"the input file's purpose must be 'batch', not {file.purpose!r}")
        requests, errors, lines = _read_input_file(file.content)
        job = self._new_job(request, "openai", requests)
        job.input_file_id, job.errors, job.lines, job.metadata = input_file_id, errors, lines, metadata
        models = [body["model"] for _, body in requests if isinstance(body, dict) and "model" in body]
        job.model = str(models[0]) if models else None
        self._store(job, lines)
        return JSONResponse(self._openai_json(job))

    async def openai_batch(self, request: Request) -> Response:
        with self._lock:
            job = self._job(request, "openai")
            return JSONResponse(self._openai_json(job))

    async def cancel_openai_batch(self, request: Request) -> Response:
        with self._lock:
            job = self._job(request, "openai")
            if job.state == "ended":
                status = self._openai_json(job)["status"]
                raise _HTTPError(_CONFLICT, f"Cannot cancel a batch with status {status!r}.")
            if job.state == "pending":
                job.state, job.cancel_at = "canceling", time.time()
            return JSONResponse(self._openai_json(job))

    @staticmethod
    def _openai_json(job: _Job) -> dict[str, Any]:
        completed = job.state == "ended" and not job.canceled and not job.errors
        if job.state == "pending":
            status = "validating" if job.polled_at is None else "in_progress"
        elif job.state == "canceling":
            status = "cancelling"
        else:
            status = "cancelled" if job.canceled else "failed" if job.errors else "completed"
        succeeded = sum(answer.ok for answer in job.answers)
        total = 0 if job.errors else len(job.requests)
        usage = None
        if completed:
            usages = [answer.body.get("usage") or {} for answer in job.answers if answer.ok]
            tokens_in = sum(int(u.get("prompt_tokens", 0)) for u in usages)
            tokens_out = sum(int(u.get("completion_tokens", 0)) for u in usages)
            usage = {
                "input_tokens": tokens_in,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": tokens_out,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": tokens_in + tokens_out,
            }
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": _OPENAI_ENDPOINT,
            "model": job.model,
            "errors": {"object": "list", "data": job.errors} if job.errors else None,
            "input_file_id": job.input_file_id,
            "completion_window": _COMPLETION_WINDOW,
            "status": status,
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "created_at": int(job.created_at),
            "in_progress_at": _int_time(None if job.errors else job.polled_at),
            "expires_at": int(job.created_at + _EXPIRY_S),
            "finalizing_at": _int_time(job.ended_at if completed else None),
            "completed_at": _int_time(job.ended_at if completed else None),
            "failed_at": _int_time(job.ended_at if job.errors else None),
            "expired_at": None,
            "cancelling_at": _int_time(job.cancel_at),
            "cancelled_at": _int_time(job.ended_at if job.canceled else None),
            "request_counts": {
                "total": total,
                "completed": succeeded,
                "failed": len(job.answers) - succeeded,
            },
            "metadata": job.metadata,
            "usage": usage,
        }

    # --- Anthropic message batches -------------------------------------------------------------------

    async def create_anthropic_batch(self, request: Request) -> Response:
        items = (await _json_object(request)).get("requests")
        if not isinstance(items, list) or not items:
            raise _HTTPError(400, "requests: must be a non-empty list")
        requests: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID_RE.fullmatch(custom_id):
                raise _HTTPError(400, f"requests.{index}.custom_id: must be 1 to 64 of [a-zA-Z0-9_-]")
            if custom_id in seen:
                raise _HTTPError(400, f"requests.{index}.custom_id: {custom_id!r} is not unique in the batch")
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(params, dict):
                raise _HTTPError(400, f"requests.{index}.params: must be an object")
            seen.add(custom_id)
            requests.append((custom_id, params))
        job = self._new_job(request, "anthropic", requests)
        self._store(job, len(requests))
        return JSONResponse(self._anthropic_json(request, job))

    async def anthropic_batch(self, request: Request) -> Response:
        with self._lock:
            job = self._job(request, "anthropic")
            return JSONResponse(self._anthropic_json(request, job))

    async def cancel_anthropic_batch(self, request: Request) -> Response:
        with self._lock:
            job = self._job(request, "anthropic")
            if job.state == "pending":
                job.state, job.cancel_at = "canceling", time.time()
            return JSONResponse(self._anthropic_json(request, job))

    async def anthropic_results(self, request: Request) -> Response:
        with self._lock:
            job = self._job(request, "anthropic")
            if job.state != "ended":
                raise _HTTPError(_CONFLICT, f"Message batch {job.id!r} is still processing.")
            canceled = {"type": "canceled"}
            lines = [
                {"custom_id": custom_id, "result": canceled} for custom_id, _ in job.requests if job.canceled
            ]
            lines += [
                {"custom_id": answer.custom_id, "result": answer.anthropic_result()} for answer in job.answers
            ]
        payload = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        return Response(payload, media_type="application/binary")

    @staticmethod
    def _anthropic_json(request: Request, job: _Job) -> dict[str, Any]:
        ended = job.state == "ended"
        succeeded = sum(answer.ok for answer in job.answers)
        results_url = f"{str(request.base_url).rstrip('/')}/v1/messages/batches/{job.id}/results"
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": "in_progress" if job.state == "pending" else job.state,
            "request_counts": {
                "processing": 0 if ended else len(job.requests),
                "succeeded": succeeded,
                "errored": len(job.answers) - succeeded,
                "canceled": len(job.requests) if job.canceled else 0,
                "expired": 0,
            },
            "created_at": _rfc3339(job.created_at),
            "expires_at": _rfc3339(job.created_at + _EXPIRY_S),
            "ended_at": _rfc3339(job.ended_at),
            "cancel_initiated_at": _rfc3339(job.cancel_at),
            "archived_at": None,
            "results_url": results_url if ended else None,
        }
