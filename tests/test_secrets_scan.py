"""No secret is committed: detect-secrets over every tracked file, against the reviewed baseline
(whose findings are all test fixtures and documentation examples)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness import REPO

EXCLUDED = {"requirements.lock", "tests/gateway/data/minilm_reference.json", ".secrets.baseline"}


def test_no_unreviewed_secrets_in_tracked_files() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    files = [f for f in tracked if f not in EXCLUDED and (REPO / f).is_file()]
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "detect-secrets-hook"), "--baseline", ".secrets.baseline", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scanner_catches_a_planted_key(tmp_path: object) -> None:

    planted = Path(str(tmp_path)) / "config.py"
    # Built from pieces so that this file itself holds no key-shaped literal.
    key_id = "AKIA" + "IOSFODNN7EXAMPLQ"
    secret = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCYEXAMPLEKEX"  # pragma: allowlist secret
    planted.write_text(f'AWS_KEY_ID = "{key_id}"\naws_secret_access_key = "{secret}"\n')
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "detect-secrets-hook"), str(planted)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
