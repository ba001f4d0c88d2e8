"""The mock server's deterministic tokenizer and the token-accounting rules behind ``usage``.

A token is a run of non-whitespace with its leading whitespace: ``re.findall(r"\\s*\\S+", text)``.
Joining the tokens gives the text back minus trailing whitespace, which is why emitted text is
always the join of its tokens (so streamed and non-streamed replies are identical).

Input tokens (OpenAI ``prompt_tokens``, Anthropic ``input_tokens``) are the sum of
  * the tokens of every text content in the request: system prompt, user, assistant and tool-result
    messages (content lists are flattened to their text parts);
  * for each tool call already in the history, the tokens of its JSON arguments string (OpenAI sends
    it as is; Anthropic ``tool_use.input`` is serialised with ``json.dumps``);
  * the tokens of ``json.dumps(tools)`` when the request declares tools.

Output tokens (``completion_tokens`` / ``output_tokens``) are the tokens of the emitted text plus the
tokens of each tool call's ``json.dumps(arguments)``. Streams send exactly one token per delta.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN_RE = re.compile(r"\s*\S+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens: ``tokenize("a  b") == ["a", "  b"]``."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of tokens in ``text``: ``count_tokens("Hello, world!") == 2``."""
    return len(_TOKEN_RE.findall(text))


def count_json_tokens(value: Any) -> int:
    """Tokens of ``json.dumps(value)``, as used for tool definitions and tool-call arguments."""
    return count_tokens(json.dumps(value))
