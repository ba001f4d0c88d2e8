"""What the CLI's command modules share: consoles, the error exit, common options, the API client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from agenthost.cli.client import ApiClient, ApiError, default_url

__all__ = ["ConfigOption", "UrlOption", "api_call", "err", "fail", "out"]

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
