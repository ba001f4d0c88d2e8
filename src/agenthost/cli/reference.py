"""The configuration reference page, generated from the settings model so it cannot drift.

`agenthost config-reference > docs/configuration.md` regenerates it; a test checks the file is
current.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from agenthost.settings import ENV_PREFIX, Settings

__all__ = ["render_reference"]

_INTRO = """# Configuration reference

agenthost reads `agenthost.toml` (the `--config` path, else `$AGENTHOST_CONFIG`, else
`./agenthost.toml`). Every key can be overridden by an environment variable: `AGENTHOST_` plus
the key path joined with `__`, e.g. `AGENTHOST_SERVER__PORT=9000` for `[server] port`. Any such
variable can instead name a file holding the value, with a `_FILE` suffix (the Docker and
Kubernetes secrets convention): `AGENTHOST_MODELS__MAIN__API_KEY_FILE=/run/secrets/key`. A
variable set directly wins over its `_FILE` form. Provider keys are also read from
`ANTHROPIC_API_KEY` / `OPENAI_API_KEY` (or their `_FILE` forms).

`agenthost check` validates a configuration and prints it resolved, secrets masked. An invalid
configuration stops `agenthost serve` with one message naming each bad key and its problem.

This page is generated from the settings model (`agenthost config-reference`).
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value!r}`".replace("'", '"') for value in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if annotation is type(None):
        return "none"
    if annotation is SecretStr:
        return "secret string"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    factory = field.default_factory
    if isinstance(factory, type) and issubclass(factory, BaseModel):
        return "(see section)"
    value = field.default
    if factory is not None:
        value = field.get_default(call_default_factory=True, validated_data={})
        if isinstance(value, BaseModel):
            return "(see section)"
        value = value or None  # an empty list or table
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return "empty" if factory is not None else "unset"
    return f"`{value!r}`".replace("'", '"')


def _rows(model: type[BaseModel], prefix: str, env_prefix: str | None) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        env = f"`{env_prefix}{name.upper()}`" if env_prefix else "—"
        description = (field.description or "").replace("|", "\\|")
        kind = _type_name(field.annotation)
        rows.append(f"| `{prefix}{name}` | {kind} | {_default(field)} | {env} | {description} |")
    return rows


_HEADER = ["| key | type | default | environment | description |", "|---|---|---|---|---|"]


def render_reference() -> str:
    """The Markdown reference of every setting."""
    lines = [_INTRO, "## Top level", "", *_HEADER]
    sections: list[tuple[str, type[BaseModel], str | None]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections.append((f"[{name}]", annotation, f"{ENV_PREFIX}{name.upper()}__"))
            continue
        if typing.get_origin(annotation) is dict:
            value_type = typing.get_args(annotation)[1]
            sections.append((f"[{name}.<name>]", value_type, None))
            continue
        if field.exclude:
            continue
        lines.extend(_rows_for_top(name, field))
    while sections:
        title, model, env_prefix = sections.pop(0)
        # Nested sections (e.g. `[auth.jwt]`, optional or not) get their own table, right after.
        nested = [
            (
                f"{title[:-1]}.{name}{'.<name>' if typing.get_origin(field.annotation) is dict else ''}]",
                sub,
                f"{env_prefix}{name.upper()}__" if env_prefix else None,
            )
            for name, field in model.model_fields.items()
            if (sub := _model_of(field.annotation)) is not None
        ]
        sections[:0] = nested
        doc = (model.__doc__ or "").strip().splitlines()[0]
        lines += ["", f"## `{title}`", "", doc, "", *_HEADER, *_rows(model, "", env_prefix)]
        if env_prefix is None:
            lines += ["", f"Environment: `{ENV_PREFIX}{title[1:].split('.')[0].upper()}__<NAME>__<KEY>`."]
    return "\n".join(lines) + "\n"


def _rows_for_top(name: str, field: FieldInfo) -> list[str]:
    description = (field.description or "").replace("|", "\\|")
    env = f"`{ENV_PREFIX}{name.upper()}`"
    return [f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {env} | {description} |"]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model behind `annotation` (`Model` or `Model | None`), else None."""
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) is not None else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
