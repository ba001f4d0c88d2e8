"""docs/configuration.md is generated from the settings model and must match it."""

from __future__ import annotations

from agenthost.cli.reference import render_reference
from agenthost.settings import Settings
from tests.harness import REPO


def test_configuration_reference_is_current() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render_reference(), "run: agenthost config-reference > docs/configuration.md"


def test_every_setting_is_documented() -> None:
    text = render_reference()
    for name, field in Settings.model_fields.items():
        if not field.exclude:
            assert f"`{name}`" in text or f"[{name}" in text
    for section in ("server", "durability", "local", "logging"):
        model = Settings.model_fields[section].annotation
        assert model is not None
        for key, field in model.model_fields.items():
            assert f"| `{key}` |" in text
            assert field.description, f"[{section}] {key} has no description"
