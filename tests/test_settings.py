"""Settings: TOML, `AGENTHOST_*` overrides, `*_FILE` secrets, and one clear message per bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agenthost.errors import ConfigError
from agenthost.settings import load_settings

CONFIG = """
default_agent = "bot"
[agents.bot]
path = "mybot.agent:agent"
model = "main"
[models.main]
provider = "openai"
model = "gpt-4o-mini"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-in-the-file"
[server]
port = 8123
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agenthost.toml"
    path.write_text(CONFIG)
    return path


def test_toml_is_read(config_file: Path) -> None:
    settings = load_settings(config_file)
    assert settings.server.port == 8123
    assert settings.agents["bot"].path == "mybot.agent:agent"
    assert settings.models["main"].api_key is not None
    assert settings.config_dir == config_file.parent


def test_environment_overrides_toml(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_SERVER__PORT", "9001")
    monkeypatch.setenv("AGENTHOST_DATABASE_URL", "postgresql://u:pw@db/agenthost")
    settings = load_settings(config_file)
    assert settings.server.port == 9001
    assert settings.database_url.get_secret_value() == "postgresql://u:pw@db/agenthost"


def test_file_secrets(config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "key"
    secret.write_text("sk-from-a-file\n")
    monkeypatch.setenv("AGENTHOST_MODELS__MAIN__API_KEY_FILE", str(secret))
    settings = load_settings(config_file)
    key = settings.models["main"].api_key
    assert key is not None
    assert key.get_secret_value() == "sk-from-a-file"


def test_direct_variable_wins_over_file(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "port"
    secret.write_text("7000")
    monkeypatch.setenv("AGENTHOST_SERVER__PORT_FILE", str(secret))
    assert load_settings(config_file).server.port == 7000
    monkeypatch.setenv("AGENTHOST_SERVER__PORT", "7001")
    assert load_settings(config_file).server.port == 7001


def test_unreadable_secret_file_is_named(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_DATABASE_URL_FILE", "/nonexistent/secret")
    with pytest.raises(ConfigError, match=r"AGENTHOST_DATABASE_URL_FILE.*/nonexistent/secret"):
        load_settings(config_file)


def test_masked_output_hides_secrets(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_DATABASE_URL", "postgresql://u:hunter2@db/agenthost")
    masked = load_settings(config_file).masked()
    text = repr(masked)
    assert "sk-in-the-file" not in text
    assert "hunter2" not in text
    assert masked["database_url"] == "postgresql://u:***@db/agenthost"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[server]\nport = "abc"\n', "server.port: Input should be a valid integer"),
        ("[server]\nbogus = 1\n", "server.bogus: unknown key"),
        ('[agents.a]\npath = "no-colon"\n', "agents.a.path: must look like `module:attribute`"),
        ('default_agent = "ghost"\n', "default_agent 'ghost' is not one of [agents]"),
        ('[agents.a]\npath = "m:a"\nmodel = "nothing"\n', "agents.a.model 'nothing' is neither"),
        ('[models.m]\nprovider = "openai"\n', "`model` is required for provider 'openai'"),
        ('database_url = "mysql://x"\n', "database_url: must start with sqlite:/// or postgresql://"),
        ("[server\n", "agenthost.toml"),
    ],
)
def test_invalid_config_names_key_and_problem(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "agenthost.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert message in str(info.value)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
