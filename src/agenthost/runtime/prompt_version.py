"""The prompt version recorded in audit entries: `[agents.<name>] prompt_version` when set, else a
fingerprint of the agent's instructions and system prompts.

The fingerprint covers literal text as written and prompt functions by qualified name and source
code, so editing a prompt (or the function that builds it) changes it, while restarting or
scaling out does not. pydantic-ai has no public accessor for an agent's prompts: `compat.agent_prompts`
reads the fields `Agent.__init__` fills, and `tests/test_compat.py` fails if an upgrade renames them.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from typing import Any

from agenthost.compat import agent_prompts

__all__ = ["prompt_fingerprint"]

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def prompt_fingerprint(agent: Any) -> str | None:
    """`sha256:<16 hex>` of the agent's prompts (an agent without any has one too), or None when its
    prompts cannot be read (a wrapper agent that is not a `pydantic_ai.Agent`)."""
    prompts = agent_prompts(agent)
    if not prompts.readable:
        return None
    pieces = [
        *(f"system:{text}" for text in prompts.system_prompts),
        *(
            f"instruction:{_describe(getattr(sourced, 'instruction', sourced))}"
            for sourced in prompts.instructions
        ),
        *(
            f"system_function:{_describe(getattr(runner, 'function', runner))}"
            for runner in prompts.system_prompt_functions
        ),
    ]
    digest = hashlib.sha256("\x00".join(pieces).encode()).hexdigest()
    return f"sha256:{digest[:16]}"


def _describe(item: Any) -> str:
    """Stable text for one prompt piece: the text itself, or a function's name and source."""
    if isinstance(item, str):
        return item
    if callable(item):
        name = f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', type(item).__name__)}"
        try:
            return f"{name}\n{inspect.getsource(item)}"
        except (OSError, TypeError):
            return name
    # Template strings and instruction parts: their repr, without memory addresses.
    return _ADDRESS.sub("", repr(item))
