"""Streamed redaction equals whole-text redaction: whatever the text and however it is split into
deltas, the pieces `StreamRedactor` sends join up to `Redactor.redact(text)` (the run's final
output), in both modes and for any choice of entities; and the stream holds back a bounded amount.

Key-shaped fixtures come from `test_redaction.py`, built at run time (no secret-shaped literals)."""

from __future__ import annotations

import itertools
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenthost.security.output import StreamRedactor
from agenthost.security.redaction import ENTITY_TYPES, Redactor
from tests.security.test_redaction import AWS, PEM, POSITIVES, entity_values, make_jwt

# Enough examples to exercise every fragment next to every other a few times; about two seconds.
settings.register_profile(
    "redaction-stream",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile("redaction-stream")


def streamed(redactor: Redactor, text: str, sizes: list[int]) -> str:
    """`text` fed to a stream redactor in deltas of `sizes` (repeated), joined with its flush."""
    stream = StreamRedactor(redactor)
    pieces: list[str] = []
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(text):
            break
        pieces.append(stream.feed(text[pos : pos + size]))
        pos += size
    pieces.append(stream.flush())
    return "".join(pieces)


@pytest.mark.parametrize("mode", ["placeholder", "mask"])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_bearer_jwt_in_small_deltas_matches_the_final_output(mode: str, size: int) -> None:
    # The bearer-token pattern takes "Bearer <jwt>" as one api_key; the JWT alone is a jwt. A
    # stream that cut after "Bearer " sent "Bearer [JWT]" while the final output had "[API_KEY]".
    redactor = Redactor(mode=mode)  # type: ignore[arg-type]
    text = f"Send it as\nAuthorization: Bearer {make_jwt()}\nand retry."
    whole = redactor.redact(text)
    assert "Authorization: " + ("[API_KEY]" if mode == "placeholder" else "Bearer ********") in whole
    assert streamed(redactor, text, [size]) == whole


def test_the_stream_holds_back_a_bounded_amount() -> None:
    # No whitespace at all (a base64 blob), then a run of spaced digits that is never a quiet place
    # to cut: both are sent in bounded segments, and still equal the whole-text redaction.
    redactor = Redactor()
    text = "x" * 20_000 + " " + " ".join("7" * 10_000) + f" {AWS} done"
    stream = StreamRedactor(redactor)
    out: list[str] = []
    longest = 0
    for i in range(0, len(text), 7):
        out.append(stream.feed(text[i : i + 7]))
        longest = max(longest, len(stream.pending))
    out.append(stream.flush())
    assert "".join(out) == redactor.redact(text)
    assert longest <= 16_384 + 7
    assert "[API_KEY] done" in "".join(out)


def test_an_unterminated_key_block_is_held_then_released() -> None:
    redactor = Redactor()
    header = PEM.split("\n", 1)[0]
    text = "before " + header + "\n" + ("QUJD" * 16 + "\n") * 400 + "after " + AWS
    stream = StreamRedactor(redactor)
    out = "".join(stream.feed(text[i : i + 5]) for i in range(0, len(text), 5)) + stream.flush()
    assert out == redactor.redact(text)
    assert out.endswith("after [API_KEY]")


# --- property ------------------------------------------------------------------------------------

_TRICKY = [
    "Authorization: Bearer " + make_jwt(),
    "Authorization: Bearer " + make_jwt("RS256"),
    "bearer\t" + "abcDEF123456ghiJKL789",
    "Bearer",
    "Bearer ",
    "version 1.2.3.4",
    "build",
    "ver.",
    "-----BEGIN PUBLIC KEY-----",
    PEM.split("\n", 1)[0],
    PEM.rsplit("\n", 1)[1],
    "eyJ",
    "sk-",
    "+972",
    "(212)",
    "4111",
    "1111",
    "GB82",
    "WEST",
    "2001:db8::",
    "::1",
]
_WORDS = st.text(string.ascii_letters, min_size=1, max_size=9)
_PUNCTUATION = st.sampled_from([".", ",", ":", ";", "!", "?", "-", "(", ")", "@", "/", "=", "'", '"'])
fragments = st.one_of(
    st.sampled_from([v for _, v in POSITIVES]),
    entity_values,
    st.sampled_from(_TRICKY),
    _WORDS,
    _PUNCTUATION,
    st.integers(0, 99_999).map(str),
)
separators = st.sampled_from(["", " ", " ", " ", "\n", "\n\n", "\t", "  ", ", ", ": ", ". "])
texts = st.lists(st.tuples(separators, fragments), min_size=1, max_size=24).map(
    lambda parts: "".join(sep + frag for sep, frag in parts)
)
splits = st.lists(st.integers(1, 12), min_size=1, max_size=16)
choices = st.one_of(st.none(), st.lists(st.sampled_from(ENTITY_TYPES), unique=True, min_size=1))


@PROFILE
@given(
    texts,
    splits,
    st.sampled_from(["placeholder", "mask"]),
    choices,
    st.sampled_from([1, 16, 32]),
)
def test_property_stream_equals_whole_text_redaction(
    text: str, sizes: list[int], mode: str, entities: list[str] | None, segment_chars: int
) -> None:
    redactor = Redactor(entities, mode, segment_chars)  # type: ignore[arg-type]
    assert streamed(redactor, text, sizes) == redactor.redact(text)


@PROFILE
@given(texts, st.sampled_from(["placeholder", "mask"]), st.sampled_from([1, 32]))
def test_property_segments_change_nothing_that_is_found(text: str, mode: str, segment_chars: int) -> None:
    # Segments are cut only where no entity can span (below the size bound these texts never
    # reach), so redacting by segments is redacting the text in one piece.
    redactor = Redactor(mode=mode, segment_chars=segment_chars)  # type: ignore[arg-type]
    assert redactor.redact(text) == redactor.redact_segment(text)
