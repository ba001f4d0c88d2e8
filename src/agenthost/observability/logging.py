"""Structured logs with structlog: JSON lines in production, readable lines for humans.

Standard-library loggers (uvicorn, DBOS, alembic) are routed through the same renderer so that
every line of a process has one format. Anything in a line that looks like a credential (provider
API keys, bearer tokens, JWTs, private keys) is masked before it is written, whoever logged it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog

from agenthost.config.observability import LoggingSettings

__all__ = ["Masker", "configure_logging", "masking"]

Masker = Callable[[Any], Any]
"""Returns a log value with every credential in it masked (`security.redaction.secret_masker`)."""


def masking(mask: Masker) -> structlog.types.Processor:
    """A processor that masks every value (and nested value) of a log event with `mask`."""

    def mask_secrets(
        _logger: object, _name: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        return {key: mask(value) for key, value in event_dict.items()}

    return mask_secrets


def configure_logging(settings: LoggingSettings, *, mask: Masker) -> None:
    """Route every logger of the process (structlog and the standard library's) through one
    renderer; `mask` is applied to every value of every line, whoever logged it."""
    level = getattr(logging, settings.level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor
    if settings.format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        # Without frame locals: rendering every local of every frame of a deep traceback (megabytes
        # for one error) on the event loop stalled the whole server for tens of seconds.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, masking(mask), renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dbos", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access lines duplicate agenthost's own request logging and cost time on the hot path.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("dbos").setLevel(max(level, logging.WARNING))
    # One line per provider call is noise at INFO; failures still surface through agenthost's events.
    for name in ("httpx", "httpx2", "httpcore", "openai", "anthropic"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
