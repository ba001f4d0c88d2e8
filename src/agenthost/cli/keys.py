"""`agenthost keys`: create, list, revoke and rotate API keys, directly on the configured database
(no server needed, so the first admin key can be made this way)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agenthost.cli.common import (
    Col,
    ConfigOption,
    WideOption,
    err,
    fail,
    open_database,
    out,
    print_rows,
)
from agenthost.config.costs import BudgetLimit
from agenthost.config.roles import resolve_roles
from agenthost.errors import AgentHostError
from agenthost.security.audit import AuditLog
from agenthost.security.keys import KeyManager, KeyRateLimits, KeySpec
from agenthost.storage.audit import AuditStore
from agenthost.storage.keys import KeyStore

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke, rotate.", no_args_is_help=True)


async def _audit(engine: AsyncEngine, action: str, key_id: str, owner: str | None) -> None:
    audit = AuditLog(AuditStore(engine))
    await audit.append(action, actor="cli", actor_user=None, subject_user=owner, target=key_id)


def _print_key(data: dict[str, Any], token: str | None, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({**data, **({"key": token} if token else {})}, default=str))
        return
    if token:
        err.print("[bold]Store this key now; it is not shown again.[/]")
        out.print(token, highlight=False, soft_wrap=True)
    err.print(f"id {data['id']}  role {data['role']}  status {data['status']}", highlight=False)


@keys_app.command("create")
def create(  # noqa: PLR0917 - one option per key property
    name: Annotated[str, typer.Option("--name", help="Label shown in listings.")],
    role: Annotated[str, typer.Option("--role", help=r"Role name (\[roles] or built-in).")] = "user",
    user: Annotated[str | None, typer.Option("--user", help="Owner user id.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="Owner team.")] = None,
    agent: Annotated[
        list[str] | None, typer.Option("--agent", help="Agent (or model) the key may use; repeatable.")
    ] = None,
    expires_in_days: Annotated[float | None, typer.Option("--expires-in-days", help="Lifetime.")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute for this key.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Model tokens per minute for this key.")] = None,
    daily_usd: Annotated[float | None, typer.Option("--daily-usd", help="Daily spend limit.")] = None,
    monthly_usd: Annotated[float | None, typer.Option("--monthly-usd", help="Monthly spend limit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    create_database: Annotated[
        bool,
        typer.Option(
            "--create-database",
            help="Create the configured database if it does not exist yet (the first key, before "
            "the first start); without it, a missing database is an error.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it (the only time it is shown)."""
    from pydantic import ValidationError

    from agenthost.server.routes.keys import validate_spec

    try:
        spec = KeySpec(
            name=name,
            role=role,
            user_id=user,
            team=team,
            agents=agent or None,
            expires_in_days=expires_in_days,
            rate_limits=KeyRateLimits(requests_per_minute=rpm, tokens_per_minute=tpm)
            if rpm is not None or tpm is not None
            else None,
            budgets=BudgetLimit(daily_usd=daily_usd, monthly_usd=monthly_usd)
            if daily_usd is not None or monthly_usd is not None
            else None,
        )
    except ValidationError as exc:
        raise fail(str(exc).splitlines()[0] + ": " + exc.errors()[0]["msg"], 2) from None

    async def go() -> tuple[dict[str, Any], str]:
        async with open_database(config, create=create_database) as (settings, engine):
            validate_spec(settings, resolve_roles(settings.roles), spec)
            key, token = await KeyManager(KeyStore(engine)).create(spec, created_by="cli")
            await _audit(engine, "key.created", key.id, key.user_id)
            return key.public(datetime.now(UTC)), token

    try:
        data, token = asyncio.run(go())
    except AgentHostError as exc:
        raise fail(exc.message, 2) from None
    _print_key(data, token, as_json)


_KEY_COLUMNS = (
    Col("id"),
    Col("name", shrink=True),
    Col("role"),
    Col("user", shrink=True),
    Col("team", shrink=True),
    Col("agents", shrink=True),
    Col("status"),
    Col("expires (UTC)"),
    Col("created (UTC)", wide_only=True),
)


def _minute(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "never"


@keys_app.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    wide: WideOption = False,
    config: ConfigOption = None,
) -> None:
    """Keys, newest first (never their secrets)."""

    async def go() -> list[dict[str, Any]]:
        async with open_database(config) as (_settings, engine):
            now = datetime.now(UTC)
            return [
                k.public(now)
                for k in await KeyManager(KeyStore(engine)).list(include_revoked=include_revoked)
            ]

    rows = asyncio.run(go())
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = [
        (
            row["id"],
            row["name"],
            row["role"],
            row["user_id"] or "",
            row["team"] or "",
            ",".join(row["agents"] or ["*"]),
            row["status"],
            _minute(row["expires_at"]),
            _minute(row["created_at"]),
        )
        for row in rows
    ]
    empty = "No keys." if include_revoked else "No keys (revoked ones are listed with --all)."
    print_rows(_KEY_COLUMNS, table, wide=wide, empty=empty)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id.")],
    config: ConfigOption = None,
) -> None:
    r"""Revoke a key (servers stop accepting it within `\[auth] key_cache_seconds`)."""

    async def go() -> dict[str, Any]:
        async with open_database(config) as (_settings, engine):
            key = await KeyManager(KeyStore(engine)).revoke(key_id)
            await _audit(engine, "key.revoked", key.id, key.user_id)
            return key.public(datetime.now(UTC))

    try:
        data = asyncio.run(go())
    except AgentHostError as exc:
        raise fail(exc.message) from None
    _print_key(data, None, as_json=False)


@keys_app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="The key id.")],
    grace_seconds: Annotated[
        float | None, typer.Option("--grace-seconds", help="Old secret stays valid this long.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Give a key a new secret (printed once); the old one keeps working for the grace period."""

    async def go() -> tuple[dict[str, Any], str]:
        async with open_database(config) as (settings, engine):
            grace = settings.auth.rotation_grace_seconds if grace_seconds is None else grace_seconds
            key, token = await KeyManager(KeyStore(engine)).rotate(key_id, timedelta(seconds=grace))
            await _audit(engine, "key.rotated", key.id, key.user_id)
            return key.public(datetime.now(UTC)), token

    try:
        data, token = asyncio.run(go())
    except AgentHostError as exc:
        raise fail(exc.message) from None
    _print_key(data, token, as_json)
