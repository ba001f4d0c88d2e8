"""Prompt-injection heuristics: weighted pattern families over a normalised text.

`analyze` runs on the normalised text (`agenthost.security.normalize`): each `Rule` is a regular
expression with a weight, grouped in a family; the score of a text is the sum of the weights of
the rules it matches. One strong rule (`ignore all previous instructions`, `<|im_start|>`, `reveal
your system prompt`) reaches the default threshold of 1.0 alone; weak ones (`from now on`,
`developer mode`, `for testing purposes`) only together. Besides the text itself, the rules also
run over what it hides:

* leetspeak folded to letters, when the text mixes digits into words;
* ASCII smuggled in Unicode tag characters (which alone is suspicious: `hidden_text`);
* base64, base32, hex and base85 tokens that decode to readable text, and the ROT13 reading of a
  short text or of one that mentions ROT13: an instruction found only there adds `encoded_payload`;
* words that mix Latin with Cyrillic or Greek letters (`obfuscation`).

Each rule has keys (substrings one of which any match contains, derived from the pattern or given);
a rule whose keys are all absent from the text is not searched, which keeps a call on 200
characters near 0.1 ms. The similarity classifier lives in `agenthost.security.screening`.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from agenthost.security.injection_rules import FAMILIES, RULES, Rule
from agenthost.security.normalize import (
    decoded_blocks,
    fold_leet,
    has_leet,
    hidden_tag_text,
    mixed_script_words,
    normalize,
)

__all__ = [
    "FAMILIES",
    "RULES",
    "Analysis",
    "Rule",
    "analyze",
]


_ROT13 = re.compile(r"\brot-? ?13\b")
_ROT13_ALWAYS_CHARS = 2000  # short texts are also read as ROT13 even when they do not say so
_HIDDEN_TEXT_WEIGHT = 1.0
_MIXED_SCRIPT_WEIGHT = 0.6
_MIN_HIDDEN_LETTERS = 4  # fewer tag characters than this are not a message


@dataclass(frozen=True, slots=True)
class Analysis:
    """The heuristic verdict on one text: its score and the families that contributed."""

    score: float
    families: tuple[str, ...]


_ALL_KEYS: frozenset[str] = frozenset().union(*(rule.keys for rule in RULES))


def _match(view: str, matched: dict[int, Rule], *, prefilter: bool = True) -> None:
    """Add the rules matching `view` to `matched`; rules about lines see the line breaks, the others
    see them as spaces (an instruction split over lines is still one instruction)."""
    flat = view.replace("\n", " ")
    present = {key for key in _ALL_KEYS if key in flat} if prefilter else _ALL_KEYS
    for index, rule in enumerate(RULES):
        if index in matched or (rule.keys and rule.keys.isdisjoint(present)):
            continue
        if rule.pattern.search(view if rule.lines else flat):
            matched[index] = rule


def analyze(text: str) -> Analysis:
    """Score `text` with the pattern families (on its normalised form and what it hides)."""
    normalized = normalize(text)
    matched: dict[int, Rule] = {}
    _match(normalized, matched)
    if has_leet(normalized):
        _match(fold_leet(normalized), matched)
    score = 0.0
    extra: list[str] = []
    if text.isascii():
        hidden = ""
    else:
        hidden = hidden_tag_text(text)
        if sum(ch.isalpha() for ch in hidden) >= _MIN_HIDDEN_LETTERS:
            score += _HIDDEN_TEXT_WEIGHT
            extra.append("hidden_text")
            _match(normalize(hidden), matched)
        if mixed_script_words(text):
            score += _MIXED_SCRIPT_WEIGHT
            extra.append("obfuscation")
    before = len(matched)
    for block in decoded_blocks(text):
        _match(normalize(block), matched)
    if len(normalized) <= _ROT13_ALWAYS_CHARS or _ROT13.search(normalized):
        _match(codecs.encode(normalized, "rot13"), matched)
    if len(matched) > before:
        extra.append("encoded_payload")
    score += sum(rule.weight for rule in matched.values())
    families = dict.fromkeys([*(rule.family for rule in matched.values()), *extra])
    return Analysis(score=round(score, 3), families=tuple(families))
