"""Credentials never reach the logs: the log pipeline masks them in structlog events, in
standard-library records (uvicorn, DBOS) and in exception text."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from agenthost.config.observability import LoggingSettings
from agenthost.observability.logging import configure_logging
from agenthost.security.redaction import log_masker

# Built at run time so that the repository holds no key-shaped literal.
OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"  # pragma: allowlist secret
_SEGMENTS = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "eyJzdWIiOiJ1c2VyLTEifQ",
    "c2lnbmF0dXJlLXNpZ25hdHVyZQ",
)  # pragma: allowlist secret
JWT = "%s.%s.%s" % _SEGMENTS  # noqa: UP031 - pieces, so no JWT-shaped literal is committed


def _fail() -> None:
    raise ValueError(f"bad credential {OPENAI_KEY}")


def test_credentials_are_masked_in_every_kind_of_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingSettings(format="json", level="info"), mask=log_masker())
    log = structlog.get_logger("test")
    log.info("provider_call", api_key=OPENAI_KEY, headers={"authorization": f"Bearer {JWT}"})
    logging.getLogger("uvicorn.error").warning("client sent key %s", OPENAI_KEY)
    try:
        _fail()
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    text = json.dumps(lines)
    assert len(lines) == 3
    assert OPENAI_KEY not in text
    assert JWT not in text
    assert OPENAI_KEY[:4] in text  # masked, not dropped: the kind of credential is still visible
    assert lines[0]["event"] == "provider_call"
    assert "bad credential" in lines[2]["exception"]
