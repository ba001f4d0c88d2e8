"""`[server]`: the HTTP API."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from agenthost.config.base import Section

__all__ = ["CorsSettings", "ServerSettings", "StreamTokenSettings"]

_ORIGIN_SCHEMES = frozenset({"http", "https"})
_MIN_SECRET_BYTES = 32


class CorsSettings(Section):
    """`[server.cors]`: which browser origins may call the API (off unless `allow_origins` is set)."""

    allow_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser, exactly as browsers send them "
        "(`https://app.example.com`, `http://localhost:5173`: scheme, host, optional port, no path), "
        'or `["*"]` for any origin. Empty: CORS is off and browsers refuse cross-origin calls.',
    )
    allow_credentials: bool = Field(
        default=False,
        description="Let browsers send cookies and HTTP authentication cross-origin "
        "(`Access-Control-Allow-Credentials`). agenthost authenticates with headers, which need no "
        'such permission; never with `allow_origins = ["*"]`.',
    )
    allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE"],
        description="Methods a preflight allows.",
    )
    allow_headers: list[str] = Field(
        default_factory=lambda: [
            "Authorization",
            "Content-Type",
            "X-API-Key",
            "Idempotency-Key",
            "Last-Event-ID",
            "X-Request-ID",
        ],
        description="Request headers a preflight allows (the CORS-safelisted ones always are).",
    )
    expose_headers: list[str] = Field(
        default_factory=lambda: [
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "RateLimit-Policy",
            "Retry-After",
            "Location",
            "X-Request-ID",
            "X-Run-Id",
            "WWW-Authenticate",
        ],
        description="Response headers a page's script may read.",
    )
    max_age: int = Field(
        600, ge=0, le=86_400, description="Seconds a browser may cache a preflight's answer."
    )

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if value == "*":
                continue
            parts = urlsplit(value)
            if (
                parts.scheme not in _ORIGIN_SCHEMES
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                msg = (
                    f"{value!r} is not an origin: write scheme://host[:port] with no path or trailing "
                    "slash, e.g. 'https://app.example.com'"
                )
                raise ValueError(msg)
        if "*" in values and len(values) > 1:
            msg = "'*' allows every origin: list it alone or not at all"
            raise ValueError(msg)
        return values

    @model_validator(mode="after")
    def _credentials(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allow_origins:
            msg = (
                "allow_credentials = true with allow_origins = ['*'] would let every site act as its "
                "visitors: list the origins"
            )
            raise ValueError(msg)
        if self.allow_credentials and "*" in self.allow_headers:
            msg = (
                "allow_credentials = true with allow_headers = ['*']: browsers ignore the wildcard then; "
                "list the headers"
            )
            raise ValueError(msg)
        return self

    @property
    def enabled(self) -> bool:
        """Whether CORS headers are sent at all."""
        return bool(self.allow_origins)


class StreamTokenSettings(Section):
    """`[server.stream_tokens]`: short-lived tokens that let a browser's `EventSource` follow a run."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # errors never echo the secret

    secret: SecretStr | None = Field(
        None,
        description="Signing secret, at least 32 bytes (prefer `AGENTHOST_SERVER__STREAM_TOKENS__SECRET` or "
        "its `_FILE` form); every replica needs the same one. Unset: derived from the deployment secret "
        "agenthost keeps in its database (created on first use), shared by every replica on that database.",
    )
    default_ttl_seconds: int = Field(
        300, ge=1, description="Lifetime of a token when the request names none."
    )
    max_ttl_seconds: int = Field(
        3600, ge=1, le=86_400, description="Longest lifetime a request may ask for (`ttl_seconds`)."
    )

    @field_validator("secret")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < _MIN_SECRET_BYTES:
            msg = f"must be at least {_MIN_SECRET_BYTES} bytes"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _ttl(self) -> StreamTokenSettings:
        if self.default_ttl_seconds > self.max_ttl_seconds:
            msg = (
                f"default_ttl_seconds ({self.default_ttl_seconds}) exceeds "
                f"max_ttl_seconds ({self.max_ttl_seconds})"
            )
            raise ValueError(msg)
        return self


class ServerSettings(Section):
    """`[server]`: the HTTP API."""

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 in containers.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    run_wait_timeout: float = Field(
        30.0, gt=0, description="Seconds `POST .../run` waits before answering 202 with the run's location."
    )
    heartbeat_interval: float = Field(15.0, gt=0, description="Seconds between SSE heartbeat comments.")
    chat_completions_timeout: float = Field(
        600.0,
        gt=0,
        description="Longest wait for an agent run behind a non-streaming front-door answer "
        "(`/v1/chat/completions`, `/v1/responses`, `/v1/messages`).",
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="Grace period for in-flight work on SIGTERM."
    )
    max_page_size: int = Field(100, ge=1, le=1000, description="Upper bound on `limit` for list endpoints.")
    cors: CorsSettings = Field(
        default_factory=CorsSettings, description="`[server.cors]`: cross-origin calls from browsers."
    )
    stream_tokens: StreamTokenSettings = Field(
        default_factory=StreamTokenSettings,
        description="`[server.stream_tokens]`: tokens for `EventSource` (`POST /v1/stream-tokens`).",
    )
