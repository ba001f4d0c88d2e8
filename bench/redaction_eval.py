"""Per-type precision and recall of the redaction engine on its labelled evaluation set.

Runs the computation of `tests/security/test_redaction_eval.py` over
`tests/security/data/redaction_eval.yaml` and prints a Markdown table, then every error.

Usage: .venv/bin/python bench/redaction_eval.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from tests.security.test_redaction_eval import evaluate, load_items, table  # noqa: E402


def main() -> None:
    scores, errors = evaluate()
    items = load_items()
    labelled = sum(len(expected) for _, expected in items)
    negatives = sum(1 for _, expected in items if not expected)
    print(f"{len(items)} texts, {labelled} labelled entities, {negatives} texts without any\n")
    print(table(scores))
    if errors:
        print("\nErrors:")
        for error in errors:
            print(f"  {error}")


if __name__ == "__main__":
    main()
