"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess

from agenthost.testing import MockLLMServer
from tests.harness import AGENTHOST, REPO

README = (REPO / "README.md").read_text()


def test_mock_llm_example(mock_llm: MockLLMServer) -> None:
    """The pytest example under "Testing agents without a provider" passes."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    example = next(block for block in blocks if "def test_my_agent" in block)
    namespace: dict[str, object] = {}
    exec(example, namespace)
    test = namespace["test_my_agent"]
    assert callable(test)
    test(mock_llm)


def test_cli_commands_in_readme_exist() -> None:
    """Every `agenthost <command>` the README shows is a real command."""
    help_text = subprocess.run([str(AGENTHOST), "--help"], capture_output=True, text=True, check=True).stdout
    runs_help = subprocess.run(
        [str(AGENTHOST), "runs", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in set(re.findall(r"^agenthost ([a-z-]+)", README, re.MULTILINE)):
        assert command in help_text, command
    for command in ("list", "show", "cancel"):
        assert command in runs_help


def test_quickstart_has_the_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    assert "make demo" in quickstart
    assert "make test" in quickstart
