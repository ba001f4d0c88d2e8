"""Embeddings for the semantic cache.

MiniLM run with numpy is checked against vectors from sentence-transformers itself
(`data/minilm_reference.json`, made by `data/make_minilm_reference.py`); the provider embedder and
the mock's `/v1/embeddings` are exercised over a real socket, through the official `openai` SDK.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from agenthost.errors import AgentHostError, ConfigError, ModelError
from agenthost.gateway.embeddings import (
    MINILM_NAME,
    Embedder,
    EmbeddingError,
    MiniLMEmbedder,
    OpenAIEmbedder,
    minilm_available,
    set_blas_threads,
)
from agenthost.testing import MockLLMServer
from agenthost.testing.mock_llm.embeddings_wire import DEFAULT_DIMENSIONS, mock_embedding

REFERENCE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8")
)
SENTENCES: list[str] = REFERENCE["sentences"]
EXPECTED = np.array(REFERENCE["embeddings"], dtype=np.float64)
PAIRS: dict[str, list[list[int]]] = REFERENCE["pairs"]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    """One loaded model for the whole module (loading reads about 90 MB)."""
    embedder = MiniLMEmbedder()
    embedder.embed_sync(["warm up"])
    return embedder


@pytest.fixture(scope="module")
def vectors(minilm: MiniLMEmbedder) -> np.ndarray:
    """The embeddings of every reference sentence, from one batched call of the async API."""
    return np.array(asyncio.run(minilm.embed(SENTENCES)), dtype=np.float64)


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- MiniLM in numpy --------------------------------------------------------------------------------


def test_minilm_is_available_and_an_embedder(minilm: MiniLMEmbedder) -> None:
    assert minilm_available()
    assert isinstance(minilm, Embedder)
    assert minilm.name == MINILM_NAME == "local:all-MiniLM-L6-v2"
    assert minilm.dimensions == 384


def test_matches_sentence_transformers(vectors: np.ndarray) -> None:
    assert vectors.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for text, mine, reference in zip(SENTENCES, vectors, EXPECTED, strict=True):
        assert cosine(mine, reference) > 0.9999, text
        assert np.abs(mine - reference).max() < 1e-4, text


def test_reference_covers_truncation_and_long_inputs() -> None:
    tokens = REFERENCE["tokens_untruncated"]
    assert REFERENCE["max_seq_length"] == 256
    # One text between tokenizer.json's own 128-token limit and 256, one well beyond 256.
    assert any(128 < n <= 256 for n in tokens)
    assert max(tokens) > 256 + 200


def test_only_the_first_256_tokens_count(minilm: MiniLMEmbedder) -> None:
    longest = max(SENTENCES, key=len)
    a, b = minilm.embed_sync([longest, longest + " Something else entirely: the weather in Paris."])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_similarity_of_pairs(vectors: np.ndarray) -> None:
    similarity = {kind: [float(vectors[i] @ vectors[j]) for i, j in pairs] for kind, pairs in PAIRS.items()}
    # The real model's similarities (make_minilm_reference.py prints them), with margin:
    # near duplicates 0.944-0.994, paraphrases 0.349-0.792, same topic 0.185-0.801, unrelated <= 0.084.
    assert min(similarity["near_duplicate"]) > 0.92
    assert min(similarity["paraphrase"]) > 0.3
    assert max(similarity["paraphrase"]) < 0.85
    assert max(similarity["same_topic"]) < 0.85
    assert max(similarity["unrelated"]) < 0.15
    assert min(similarity["paraphrase"]) > max(similarity["unrelated"]) + 0.2
    for kind, pairs in PAIRS.items():
        for (i, j), mine in zip(pairs, similarity[kind], strict=True):
            assert mine == pytest.approx(float(EXPECTED[i] @ EXPECTED[j]), abs=1e-4), (kind, i, j)


async def test_batching_gives_the_same_vectors_as_one_by_one(
    minilm: MiniLMEmbedder, vectors: np.ndarray
) -> None:
    one_by_one = np.array([(await minilm.embed([text]))[0] for text in SENTENCES])
    np.testing.assert_allclose(one_by_one, vectors, atol=1e-5)
    # Concurrent calls share the model safely, and each keeps its order.
    short = [i for i, text in enumerate(SENTENCES) if len(text) < 100]
    forward, backward = await asyncio.gather(
        minilm.embed([SENTENCES[i] for i in short]), minilm.embed([SENTENCES[i] for i in short[::-1]])
    )
    np.testing.assert_allclose(np.array(forward), vectors[short], atol=1e-5)
    np.testing.assert_allclose(np.array(backward), vectors[short[::-1]], atol=1e-5)


async def test_embedding_runs_off_the_event_loop(minilm: MiniLMEmbedder) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    await minilm.embed([max(SENTENCES, key=len)] * 2)
    ticker.cancel()
    assert ticks >= 3


def test_blas_threads_are_limited_with_numpys_openblas(minilm: MiniLMEmbedder) -> None:
    if np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"] != "scipy-openblas":
        pytest.skip("numpy is not built with its bundled OpenBLAS here")
    assert minilm.blas_threads == 1
    assert set_blas_threads(1)


async def test_empty_input(minilm: MiniLMEmbedder) -> None:
    assert await minilm.embed([]) == []
    assert minilm.embed_sync([]).shape == (0, 384)


def test_missing_model_files_are_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"model\.safetensors"):
        MiniLMEmbedder(tmp_path)


# -- the mock's /v1/embeddings through the official SDK ---------------------------------------------


@pytest.fixture
def client(mock: MockLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as client:
        yield client


def embeddings_stats(mock: MockLLMServer) -> dict[str, int]:
    stats: dict[str, int] = mock.app.state.embeddings.stats()
    return stats


def test_mock_embeddings_wire_format(mock: MockLLMServer, client: openai.OpenAI) -> None:
    before = embeddings_stats(mock)
    texts = ["Where is my order 1234?", "where is my order 1234", "My cat sleeps on the windowsill."]
    # The SDK asks for base64 unless told otherwise, and decodes it back to floats.
    default = client.embeddings.create(model="mock-embed", input=texts)
    floats = client.embeddings.create(model="mock-embed", input=texts, encoding_format="float")
    for response in (default, floats):
        assert response.object == "list"
        assert response.model == "mock-embed"
        assert [item.index for item in response.data] == [0, 1, 2]
        assert all(item.object == "embedding" for item in response.data)
        assert all(len(item.embedding) == DEFAULT_DIMENSIONS for item in response.data)
        assert response.usage.prompt_tokens == response.usage.total_tokens == 5 + 5 + 6
    for a, b in zip(default.data, floats.data, strict=True):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
    same, other = floats.data[0].embedding, floats.data[1].embedding
    assert same == mock_embedding(texts[0])
    assert cosine(same, other) == pytest.approx(1.0)  # case and punctuation do not count
    assert cosine(same, floats.data[2].embedding) < 0.3
    assert math.isclose(math.fsum(x * x for x in same), 1.0)
    after = embeddings_stats(mock)
    assert after["calls"] - before["calls"] == 2
    assert after["inputs"] - before["inputs"] == 6
    assert mock.stats()["total_calls"] == 0, "embeddings are not chat calls"


def test_mock_embeddings_single_string_dimensions_and_paraphrases(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="m", input="What is your returns policy?", dimensions=64)
    assert len(one.data) == 1
    assert len(one.data[0].embedding) == 64
    texts = ["what is your returns policy", "what is your refund policy", "how do magnets work"]
    a, b, c = (item.embedding for item in client.embeddings.create(model="m", input=texts).data)
    assert cosine(a, b) == pytest.approx(0.8)  # 4 of 5 words shared
    assert cosine(a, c) < 0.5


def test_mock_embeddings_errors(mock: MockLLMServer, client: openai.OpenAI) -> None:
    before = embeddings_stats(mock)
    with pytest.raises(openai.BadRequestError, match="empty string"):
        client.embeddings.create(model="m", input=["fine", ""])
    with pytest.raises(openai.BadRequestError, match="input"):
        client.embeddings.create(model="m", input=[])
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="m", input="x", extra_headers={"x-mock-fault": "server_error"})
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="m", input="x", extra_headers={"x-mock-fault": "rate_limit"})
    after = embeddings_stats(mock)
    assert after["errors"] - before["errors"] == 4
    assert after["inputs"] == before["inputs"]


# -- OpenAIEmbedder against the mock ----------------------------------------------------------------


async def test_openai_embedder(mock: MockLLMServer) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", mock.openai_base_url, "k", timeout=5)
    try:
        assert isinstance(embedder, Embedder)
        assert embedder.name == "openai:text-embedding-3-small"
        before = embeddings_stats(mock)
        texts = ["Where is my order?", "Where's my order?", "Tell me a joke about cats"]
        vectors = await embedder.embed(texts)
        assert [len(v) for v in vectors] == [DEFAULT_DIMENSIONS] * 3
        for text, vector in zip(texts, vectors, strict=True):
            np.testing.assert_allclose(vector, mock_embedding(text), atol=1e-9)
            assert math.isclose(math.fsum(x * x for x in vector), 1.0)
        assert await embedder.embed([]) == []
        assert embeddings_stats(mock)["calls"] - before["calls"] == 1
    finally:
        await embedder.aclose()


async def test_openai_embedder_provider_error(mock: MockLLMServer) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", mock.openai_base_url, "k", timeout=5)
    try:
        with pytest.raises(EmbeddingError, match="HTTP 400") as caught:
            await embedder.embed(["fine", ""])
    finally:
        await embedder.aclose()
    error = caught.value
    assert isinstance(error, ModelError)
    assert isinstance(error, AgentHostError)
    assert (error.code, error.status) == ("embedding_error", 502)
    assert error.details == {"model": "text-embedding-3-small", "status": 400}
    assert isinstance(error.__cause__, openai.BadRequestError)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_openai_embedder_unreachable() -> None:
    embedder = OpenAIEmbedder("m", f"http://127.0.0.1:{free_port()}/v1", "k", timeout=5)
    try:
        with pytest.raises(EmbeddingError, match="cannot connect") as caught:
            await embedder.embed(["hello"])
    finally:
        await embedder.aclose()
    assert caught.value.code == "embedding_error"
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


async def test_openai_embedder_timeout() -> None:
    # A listening socket that never answers: the connection is accepted by the kernel, then silence.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        embedder = OpenAIEmbedder("m", f"http://127.0.0.1:{port}/v1", "k", timeout=0.3)
        try:
            with pytest.raises(EmbeddingError, match="timed out"):
                await embedder.embed(["hello"])
        finally:
            await embedder.aclose()


def test_openai_embedder_without_a_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="text-embedding-3-small"):
        OpenAIEmbedder("text-embedding-3-small")
