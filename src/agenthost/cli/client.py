"""A small HTTP client of the agenthost API for the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, Self

import httpx

__all__ = ["ApiClient", "ApiError", "default_api_key", "default_url"]


def default_url() -> str:
    return os.environ.get("AGENTHOST_URL", "http://127.0.0.1:8000")


def default_api_key() -> str | None:
    """`$AGENTHOST_API_KEY`, or the contents of the file named by `$AGENTHOST_API_KEY_FILE`."""
    key = os.environ.get("AGENTHOST_API_KEY")
    path = os.environ.get("AGENTHOST_API_KEY_FILE")
    if not key and path:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123
            key = handle.read().strip()
    return key or None


class ApiError(Exception):
    """The server answered with an error body, or could not be reached."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


class ApiClient:
    def __init__(self, base_url: str, timeout: float = 30.0, api_key: str | None = None) -> None:
        """`api_key` defaults to `default_api_key()` (sent as `X-API-Key`)."""
        key = api_key or default_api_key()
        headers = {"X-API-Key": key} if key else {}
        self._client = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(timeout, read=None), headers=headers
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            msg = f"cannot reach agenthost at {self._client.base_url}: {exc}"
            raise ApiError(msg, "unreachable") from exc
        if response.status_code >= 400:  # noqa: PLR2004
            _raise(response)
        return response.json()

    def stream_events(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """POST and yield `(event, data)` pairs of the SSE response."""
        try:
            with self._client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:  # noqa: PLR2004
                    response.read()
                    _raise(response)
                event = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line.removeprefix("event:").strip()
                    elif line.startswith("data:"):
                        yield event, json.loads(line.removeprefix("data:").strip())
                    elif not line:
                        event = "message"
        except httpx.HTTPError as exc:
            msg = f"stream from {self._client.base_url} failed: {exc}"
            raise ApiError(msg, "unreachable") from exc


def _raise(response: httpx.Response) -> None:
    try:
        error = response.json()["error"]
        raise ApiError(f"{error['message']} ({response.status_code})", error["code"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(f"HTTP {response.status_code}: {response.text[:200]}") from None
