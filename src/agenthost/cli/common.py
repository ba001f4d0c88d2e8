"""What the CLI's command modules share: consoles, the error exit, common options, tables, the
configured database."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agenthost.cli.client import ApiClient, ApiError, default_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from agenthost.settings import Settings
    from agenthost.storage.engine import DatabaseURLs

__all__ = [
    "Col",
    "ConfigOption",
    "UrlOption",
    "WideOption",
    "api_call",
    "err",
    "fail",
    "open_database",
    "out",
    "print_rows",
    "short_time",
    "stdout_console",
]

out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="agenthost.toml (default: $AGENTHOST_CONFIG, else ./agenthost.toml)."
    ),
]
UrlOption = Annotated[str, typer.Option("--url", help="Server URL (default: $AGENTHOST_URL).")]
WideOption = Annotated[
    bool,
    typer.Option(
        "--wide", "-w", help="Full values, one row per line (the default when output is not a terminal)."
    ),
]
# Wide enough that no row of a table is ever cut or wrapped.
_UNLIMITED_WIDTH = 100_000


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error and return the exit to raise (`message` is plain text, never markup)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def api_call(url: str, call: Callable[[ApiClient], Any]) -> Any:
    """Run `call` with a client of the server at `url`; API errors become a clean exit 1."""
    with ApiClient(url or default_url()) as client:
        try:
            return call(client)
        except ApiError as exc:
            raise fail(str(exc)) from None


@dataclass(frozen=True)
class Col:
    """A column of a listing.

    `shrink` columns are cut with an ellipsis when the terminal is too narrow (the others keep
    their width: ids, statuses, numbers); `wide_only` columns are shown with `--wide` or when the
    output is piped; `short` turns a value into its terminal form (e.g. a shorter timestamp).
    """

    header: str
    shrink: bool = False
    wide_only: bool = False
    justify: Literal["left", "right"] = "left"
    short: Callable[[str], str] | None = None


def print_rows(
    columns: Sequence[Col], rows: Iterable[Sequence[str]], *, wide: bool, empty: str, title: str | None = None
) -> None:
    """Print a listing: one line per row, fitted to the terminal with long values cut with an
    ellipsis; full values with `wide` or when stdout is not a terminal. No rows prints `empty`."""
    rows = list(rows)
    if not rows:
        out.print(empty, highlight=False)
        return
    full = wide or not out.is_terminal
    shown = [i for i, col in enumerate(columns) if full or not col.wide_only]
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold", title=title)
    for i in shown:
        col = columns[i]
        # Only `shrink` columns give up width to fit the terminal; their cells never wrap.
        table.add_column(col.header, justify=col.justify, no_wrap=full or not col.shrink, min_width=4)
    for row in rows:
        cells: list[Text] = []
        for i in shown:
            value, col = row[i], columns[i]
            if not full and col.short is not None:
                value = col.short(value)
            cells.append(Text(value, no_wrap=True, overflow="ellipsis"))
        table.add_row(*cells)
    stdout_console(wide=full).print(table)


def stdout_console(*, wide: bool) -> Console:
    """`out`, or with `wide` (or output that is not a terminal) a stdout console that never wraps."""
    if wide or not out.is_terminal:
        return Console(width=_UNLIMITED_WIDTH, highlight=False)
    return out


def short_time(value: str) -> str:
    """`2026-12-08T01:02:03.456Z` -> `12-08 01:02` (listings on a terminal)."""
    return value[5:16].replace("T", " ")


@contextlib.asynccontextmanager
async def open_database(
    config: Path | None, *, create: bool = False
) -> AsyncIterator[tuple[Settings, AsyncEngine]]:
    """The configured settings and an engine on agenthost's database, migrated to the latest
    revision (for commands that work on the database directly, without a server).

    The database is found as `agenthost serve` finds it (the same configuration discovery); one that
    does not exist yet, or holds no agenthost tables, is refused unless `create`: a command run from
    the wrong folder must not quietly make and use a new, empty database."""
    from agenthost.errors import AgentHostError
    from agenthost.settings import load_settings, resolve_config_path
    from agenthost.storage.engine import create_app_engine, database_urls
    from agenthost.storage.migrate import upgrade

    try:
        settings = load_settings(config)
        urls = database_urls(settings.database_url.get_secret_value())
        if not create:
            missing = await asyncio.to_thread(_missing_database, urls)
            if missing is not None:
                raise fail(_database_hint(missing, resolve_config_path(config)), 2)
        await asyncio.to_thread(upgrade, urls)
    except AgentHostError as exc:
        raise fail(exc.message, 2) from None
    engine = create_app_engine(urls)
    try:
        yield settings, engine
    finally:
        await engine.dispose()


def _missing_database(urls: DatabaseURLs) -> str | None:
    """Why there is no agenthost database at `urls`, or None when there is one."""
    import sqlalchemy as sa

    from agenthost.settings import mask_url
    from agenthost.storage.engine import create_sync_engine

    if urls.sqlite_path is not None:
        where = str(urls.sqlite_path.resolve())
        if not urls.sqlite_path.is_file():
            return f"no agenthost database at {where}"
    else:
        where = mask_url(urls.dbos_url)
    engine = create_sync_engine(urls)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return f"the database at {where} holds no agenthost tables"
    except sa.exc.OperationalError as exc:
        return f"cannot open the database at {where}: {str(exc.orig).strip().splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def _database_hint(problem: str, config_path: Path | None) -> str:
    if os.environ.get("AGENTHOST_DATABASE_URL"):
        source = "from $AGENTHOST_DATABASE_URL"
    elif config_path is not None:
        source = f"as configured by {config_path}"
    else:
        source = f"the default; no --config, no $AGENTHOST_CONFIG and no agenthost.toml in {Path.cwd()}"
    return (
        f"{problem}\n  (database_url: {source})\n"
        "Database commands use the configuration `agenthost serve` uses: give it with --config PATH or "
        "$AGENTHOST_CONFIG, or set $AGENTHOST_DATABASE_URL. A relative SQLite path is relative to the "
        "working directory: run the command where the server runs.\n"
        "To start a new database on purpose (the first key, before the first start): "
        "agenthost keys create --create-database ..."
    )
