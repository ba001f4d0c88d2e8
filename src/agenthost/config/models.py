"""`[models.<name>]` (named models, their prices and fallbacks) and `[local]` (the in-process model)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from agenthost.config.base import Section

__all__ = ["LocalModelSettings", "ModelConfig", "PriceOverride"]


class PriceOverride(Section):
    """`[models.<name>.price]`: USD per million tokens, replacing genai-prices' figures for this model."""

    input_per_mtok: float = Field(ge=0, description="Uncached input tokens.")
    output_per_mtok: float = Field(ge=0, description="Output tokens.")
    cache_read_per_mtok: float | None = Field(
        None, ge=0, description="Cached input read; default: input price."
    )
    cache_write_per_mtok: float | None = Field(None, ge=0, description="Cache writes; default: input price.")


class ModelConfig(Section):
    """`[models.<name>]`: a named model agents can use."""

    provider: Literal["openai", "anthropic", "local"] = Field(
        description="Wire protocol: `openai` (also any OpenAI-compatible endpoint), `anthropic`, or `local`."
    )
    model: str = Field("", description="Provider model id, e.g. `gpt-4o-mini`; ignored for `local`.")
    base_url: str | None = Field(
        None, description="Endpoint for OpenAI-compatible servers (vLLM, Ollama, ...)."
    )
    api_key: SecretStr | None = Field(
        None, description="Credential; prefer `*_FILE` or the provider's env var."
    )
    timeout: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    max_tokens: int | None = Field(None, ge=1, description="Default cap on output tokens per model call.")
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Names of `[models]` tried in order when this one fails or its breaker is open.",
    )
    price: PriceOverride | None = Field(None, description="Price override (otherwise genai-prices).")
    context_window: int | None = Field(
        None,
        ge=256,
        description="Context window in tokens (default: genai-prices' figure for the model; "
        "`[local] n_ctx` for the local model). Unknown: no overflow handling.",
    )
    context_overflow: Literal["truncate", "summarize", "error"] | None = Field(
        None, description="Overflow strategy of this model; default `[gateway] context_overflow`."
    )
    prompt_caching: bool = Field(
        default=False,
        description="Anthropic: cache the system prompt and tool definitions (cached reads cost 10 %).",
    )

    @model_validator(mode="after")
    def _model_required(self) -> ModelConfig:
        if self.provider != "local" and not self.model:
            msg = f"`model` is required for provider {self.provider!r}"
            raise ValueError(msg)
        return self


class LocalModelSettings(Section):
    """`[local]`: the in-process GGUF model used when no provider key is set."""

    model_path: Path | None = Field(
        None, description="GGUF file; defaults to SmolLM2-135M-Instruct from `[local]`."
    )
    n_ctx: int = Field(2048, ge=256, description="Context window in tokens.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default is llama.cpp's choice.")
    max_tokens: int = Field(256, ge=1, description="Default cap on generated tokens.")
