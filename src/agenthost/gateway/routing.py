"""Routing by complexity: each run's input is classified into a tier, and the tier picks the model.

The default classifier is a fast local heuristic (no model call, microseconds): it scores the
input's length, structure (lists, several questions, paragraphs), code, and words that ask for
reasoning or several steps. Optionally (`[routing] classifier`) a cheap model classifies instead,
with the heuristic as the answer when that model fails, is slow or answers something else. A
request may force its tier (`"tier": "complex"`).

Tiers, lowest first: `simple` (lookups, greetings, short factual questions), `medium` (an
explanation, a summary, a comparison of two things), `complex` (multi-step work, code, design,
analysis of long input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, TextPart, UserPromptPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings

__all__ = ["CLASSIFIER_PROMPT", "TIERS", "Classification", "Tier", "classify", "classify_with_model"]

Tier = Literal["simple", "medium", "complex"]
TIERS: tuple[Tier, ...] = get_args(Tier)

_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+[:(]|\bfunction\s*\w*\(|=>|\{\s*\n|;\s*$|\bSELECT\b.+\bFROM\b",
    re.MULTILINE | re.DOTALL,
)
_LIST = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.MULTILINE)
_REASONING = re.compile(
    r"\b(analy[sz]e|analysis|compare|comparison|contrast|trade-?offs?|design|architect\w*|prove|derive|"
    r"optimi[sz]e|refactor|debug|implement|strategy|plan|evaluate|critique|reason|justify|recommendations?|"
    r"step[- ]by[- ]step|pros and cons|in depth|detailed|comprehensive)\b",
    re.IGNORECASE,
)
_EXPLAIN = re.compile(
    r"\b(explain|why|how does|how do|summari[sz]e|describe|difference|what happens)\b", re.IGNORECASE
)
_WRITE = re.compile(r"\b(write|draft|compose|rewrite)\b", re.IGNORECASE)
_STEPS = re.compile(
    r"\b(then|after that|afterwards|next|finally|first|second|third|and also)\b", re.IGNORECASE
)
_MATH = re.compile(r"\d+\s*[*/^]\s*\d+|\b(integral|derivative|equation|probability|matrix)\b", re.IGNORECASE)

# Score at or above which a tier applies.
_MEDIUM, _COMPLEX = 2, 4
_LONG_WORDS, _LONGISH_WORDS = 300, 60


def _signals(text: str) -> list[tuple[int, str]]:
    """(points, signal) for each thing the input shows."""
    words = len(text.split())
    reasoning = len({m.group(0).lower() for m in _REASONING.finditer(text)})
    questions, steps, items = text.count("?"), len(_STEPS.findall(text)), len(_LIST.findall(text))
    multi_step = items >= 3 or questions >= 3 or steps >= 2  # noqa: PLR2004
    candidates = [
        (words > _LONG_WORDS, _COMPLEX, "long"),
        (_LONGISH_WORDS < words <= _LONG_WORDS, 1, "longish"),
        (bool(_CODE.search(text)), _COMPLEX, "code"),
        (reasoning > 0, 2 * min(reasoning, 2), "reasoning"),
        (bool(_EXPLAIN.search(text)), _MEDIUM, "explain"),
        (bool(_WRITE.search(text)), _MEDIUM, "write"),
        (multi_step, _COMPLEX, "multi-step"),
        (not multi_step and (questions == 2 or steps == 1), 1, "two-part"),  # noqa: PLR2004
        (bool(_MATH.search(text)), _MEDIUM, "math"),
    ]
    return [(points, signal) for present, points, signal in candidates if present]


@dataclass(frozen=True)
class Classification:
    """A tier and the signals that chose it (recorded with the run, shown in its metadata)."""

    tier: Tier
    score: int
    signals: tuple[str, ...]


def classify(text: str) -> Classification:
    """The tier of one input, by the local heuristic.

    Example:
        >>> classify("What are your opening hours?").tier
        'simple'
        >>> classify("Design a rate limiter, compare token bucket and GCRA, then write the code.").tier
        'complex'
    """
    found = _signals(text)
    score = sum(points for points, _ in found)
    tier: Tier = "complex" if score >= _COMPLEX else "medium" if score >= _MEDIUM else "simple"
    return Classification(tier, score, tuple(signal for _, signal in found))


CLASSIFIER_PROMPT = (
    "You route requests to language models by complexity. Classify the user's request as exactly "
    "one word: simple (greetings, lookups, short factual questions), medium (an explanation, a "
    "summary, a comparison, short writing) or complex (multi-step work, code, design, analysis of "
    "long input). Answer with the one word only."
)
_TIER_WORD = re.compile(r"\b(simple|medium|complex)\b", re.IGNORECASE)
_CLASSIFIER_INPUT_CHARS = 4000


async def classify_with_model(model: Model, text: str) -> tuple[Tier, ModelResponse]:
    """The tier a (cheap) model gives `text`, and its response (for pricing).

    Raises `ValueError` when the answer names no tier, and the model's own errors; the caller
    bounds the time and falls back to the heuristic.
    """
    request = ModelRequest(
        parts=[SystemPromptPart(CLASSIFIER_PROMPT), UserPromptPart(text[:_CLASSIFIER_INPUT_CHARS])]
    )
    settings = ModelSettings(max_tokens=5, temperature=0.0)
    response = await model.request([request], settings, ModelRequestParameters())
    answer = " ".join(part.content for part in response.parts if isinstance(part, TextPart))
    found = _TIER_WORD.search(answer)
    if found is None:
        msg = f"the classifier answered {answer[:40]!r}, not a tier"
        raise ValueError(msg)
    tier = found.group(1).lower()
    assert tier in TIERS
    return tier, response
