"""Structured logs with structlog: JSON lines in production, readable lines for humans.

Standard-library loggers (uvicorn, DBOS, alembic) are routed through the same renderer so that
every line of a process has one format. Anything in a line that looks like a credential (provider
API keys, bearer tokens, JWTs, private keys) is masked before it is written, whoever logged it.
"""

from __future__ import annotations

import logging
import sys

import structlog

from agenthost.security.redaction import Redactor
from agenthost.settings import LoggingSettings

__all__ = ["configure_logging", "mask_secrets"]

_SECRETS = Redactor(entities=("api_key", "jwt", "private_key"), mode="mask")


def mask_secrets(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Mask credentials in every value (and nested value) of a log event."""
    return {key: _SECRETS.redact_value(value) for key, value in event_dict.items()}


def configure_logging(settings: LoggingSettings) -> None:
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
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
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
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, mask_secrets, renderer],
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
