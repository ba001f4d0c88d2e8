"""Strict query parameters: the types every route uses, and no unknown names.

Pydantic's lax mode reads `0.5` as a Unix time, `2026-01-01` as a date-time, `yes` as true and
`inf` as a number; a query string is text, so these types accept only what the OpenAPI document
says (each type's `pattern` is the regular expression its validator applies), and
`reject_unknown_query` answers 422 for a parameter the operation does not declare.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from starlette.requests import Request

from agenthost.errors import InvalidRequestError

__all__ = ["IsoDateTime", "QueryBool", "iter_dependants", "reject_unknown_query"]

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_text(value: object) -> object:
    # Text only (never a number): an RFC 3339 date-time (with its offset) or a full date.
    if isinstance(value, datetime) or (
        isinstance(value, str) and (_DATE_TIME.match(value) or _DATE.match(value))
    ):
        return value
    msg = "must be an ISO 8601 date-time with an offset (2026-11-21T10:00:00Z) or a date (2026-11-21)"
    raise ValueError(msg)


def _in_utc(value: datetime) -> datetime:
    # A date is its midnight UTC; converting an extreme year with an offset can overflow: a 422.
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        msg = "date-time out of range"
        raise ValueError(msg) from None


IsoDateTime = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(_in_utc),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
            "examples": ["2026-11-21T10:00:00Z", "2026-11-21"],
        }
    ),
]
"""An RFC 3339 date-time with its offset (`2026-11-21T10:00:00Z`, `...+02:00`) or a date
(`2026-11-21`: its midnight UTC); the value is in UTC. Numbers and offset-less times are 422."""


def _strict_bool(value: object) -> object:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    msg = "must be true or false"
    raise ValueError(msg)


QueryBool = Annotated[bool, BeforeValidator(_strict_bool)]
"""`true` or `false` (not `1`, `yes`, `on`...)."""


def iter_dependants(dependant: Dependant) -> Iterator[Dependant]:
    """`dependant` and every sub-dependency's, depth first."""
    stack = [dependant]
    while stack:
        dependant = stack.pop()
        yield dependant
        stack.extend(dependant.dependencies)


def _declared(route: APIRoute) -> frozenset[str]:
    return frozenset(p.alias for dep in iter_dependants(route.dependant) for p in dep.query_params)


async def reject_unknown_query(request: Request) -> None:
    """422 `invalid_request` for a query parameter the operation does not declare (a typo such
    as `?limt=5` would otherwise be ignored in silence)."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return  # most requests have no query string: nothing to walk
    unknown = sorted(set(request.query_params) - _declared(route))
    if unknown:
        problems = [{"field": name, "message": "unknown query parameter"} for name in unknown]
        names = ", ".join(unknown)
        raise InvalidRequestError(
            f"invalid request: unknown query parameter(s) {names}", details={"errors": problems}
        )
