"""Per-type precision and recall of the redaction engine on the labelled set
`tests/security/data/redaction_eval.yaml`. A finding counts as a true positive only when its
type and exact span match a labelled entity. `bench/redaction_eval.py` prints the same table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from agenthost.security.redaction import ENTITY_TYPES, Redactor

EVAL_SET = Path(__file__).parent / "data" / "redaction_eval.yaml"

# Floors just under what is achieved on the set (see `bench/redaction_eval.py`: every type >= 0.909,
# overall 0.980 both); the set labels a few known limits (a Luhn-passing order number, a reference
# that passes the ID check digit, an 8-digit ID, an unusual phone layout), so 1.0 is not reached.
PRECISION_FLOOR = 0.90
RECALL_FLOOR = 0.90
OVERALL_FLOOR = 0.97


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load_items() -> list[tuple[str, set[tuple[str, int, int]]]]:
    items = []
    for item in yaml.safe_load(EVAL_SET.read_text(encoding="utf-8")):
        text = item["text"]
        expected = set()
        for entity, value in item["entities"]:
            start = text.index(value)
            expected.add((entity, start, start + len(value)))
        items.append((text, expected))
    return items


def evaluate() -> tuple[dict[str, Score], list[str]]:
    """Per-type scores and a description of every error."""
    redactor = Redactor()
    scores = {entity: Score() for entity in ENTITY_TYPES}
    errors: list[str] = []
    for text, expected in load_items():
        found = {(f.type, f.start, f.end) for f in redactor.find(text)}
        for entity, _, _ in found & expected:
            scores[entity].tp += 1
        for entity, start, end in found - expected:
            scores[entity].fp += 1
            errors.append(f"FP {entity} {text[start:end]!r} in {text!r}")
        for entity, start, end in expected - found:
            scores[entity].fn += 1
            errors.append(f"FN {entity} {text[start:end]!r} in {text!r}")
    return scores, errors


def table(scores: dict[str, Score]) -> str:
    lines = ["| type | TP | FP | FN | precision | recall |", "|---|---:|---:|---:|---:|---:|"]
    total = Score()
    for entity, s in scores.items():
        total.tp, total.fp, total.fn = total.tp + s.tp, total.fp + s.fp, total.fn + s.fn
        lines.append(f"| {entity} | {s.tp} | {s.fp} | {s.fn} | {s.precision:.3f} | {s.recall:.3f} |")
    lines.append(
        f"| **all** | {total.tp} | {total.fp} | {total.fn} | {total.precision:.3f} | {total.recall:.3f} |"
    )
    return "\n".join(lines)


def test_the_eval_set_is_big_enough_and_covers_every_type() -> None:
    items = load_items()
    assert len(items) >= 150
    assert sum(1 for _, expected in items if not expected) >= 50
    labelled = {entity for _, expected in items for entity, _, _ in expected}
    assert labelled == set(ENTITY_TYPES)


@pytest.mark.parametrize("entity", ENTITY_TYPES)
def test_precision_and_recall_floors(entity: str) -> None:
    scores, errors = evaluate()
    score = scores[entity]
    detail = "\n".join(e for e in errors if e.split()[1] == entity)
    assert score.precision >= PRECISION_FLOOR, detail
    assert score.recall >= RECALL_FLOOR, detail


def test_overall_precision_and_recall() -> None:
    scores, errors = evaluate()
    total = Score(
        tp=sum(s.tp for s in scores.values()),
        fp=sum(s.fp for s in scores.values()),
        fn=sum(s.fn for s in scores.values()),
    )
    assert total.precision >= OVERALL_FLOOR, "\n".join(errors)
    assert total.recall >= OVERALL_FLOOR, "\n".join(errors)
