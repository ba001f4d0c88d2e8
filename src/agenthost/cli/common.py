"""What the CLI's command modules share: consoles, the error exit, common options, the API client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from agenthost.cli.client import ApiClient, ApiError, default_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from agenthost.settings import Settings

__all__ = ["ConfigOption", "UrlOption", "api_call", "err", "fail", "open_database", "out"]

out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="agenthost.toml (default: $AGENTHOST_CONFIG or ./agenthost.toml)."),
]
UrlOption = Annotated[str, typer.Option("--url", help="Server URL (default: $AGENTHOST_URL).")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error and return the exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def api_call(url: str, call: Callable[[ApiClient], Any]) -> Any:
    """Run `call` with a client of the server at `url`; API errors become a clean exit 1."""
    with ApiClient(url or default_url()) as client:
        try:
            return call(client)
        except ApiError as exc:
            raise fail(str(exc)) from None


@contextlib.asynccontextmanager
async def open_database(config: Path | None) -> AsyncIterator[tuple[Settings, AsyncEngine]]:
    """The configured settings and an engine on agenthost's database, migrated to the latest
    revision (for commands that work on the database directly, without a server)."""
    from agenthost.errors import AgentHostError
    from agenthost.settings import load_settings
    from agenthost.storage.engine import create_app_engine, database_urls
    from agenthost.storage.migrate import upgrade

    try:
        settings = load_settings(config)
    except AgentHostError as exc:
        raise fail(exc.message, 2) from None
    urls = database_urls(settings.database_url.get_secret_value())
    await asyncio.to_thread(upgrade, urls)
    engine = create_app_engine(urls)
    try:
        yield settings, engine
    finally:
        await engine.dispose()
