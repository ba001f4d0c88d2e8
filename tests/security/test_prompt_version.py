"""The prompt fingerprint behind audit entries' `prompt_version`: it changes when a prompt changes
(literal text, or adding a prompt function) and is the same for the same prompts, so restarts and
replicas agree. It also guards the pydantic-ai fields it reads: if an upgrade renames them, every
agent would look prompt-less and these tests fail."""

from __future__ import annotations

from pydantic_ai import Agent, RunContext

from agenthost.runtime.prompt_version import prompt_fingerprint


def test_the_same_prompts_give_the_same_fingerprint() -> None:
    first = prompt_fingerprint(Agent("test", instructions="Answer briefly.", system_prompt="You are kind."))
    again = prompt_fingerprint(Agent("test", instructions="Answer briefly.", system_prompt="You are kind."))
    assert first is not None
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 16
    assert first == again


def test_changing_any_prompt_changes_the_fingerprint() -> None:
    base = Agent("test", instructions="Answer briefly.")
    with_function = Agent("test", instructions="Answer briefly.")

    @with_function.instructions
    def today(ctx: RunContext[None]) -> str:
        return "Today is Saturday."

    with_system_function = Agent("test", instructions="Answer briefly.")

    @with_system_function.system_prompt
    def persona() -> str:
        return "You are kind."

    fingerprints = [
        prompt_fingerprint(base),
        prompt_fingerprint(Agent("test", instructions="Answer at length.")),
        prompt_fingerprint(Agent("test", system_prompt="Answer briefly.")),
        prompt_fingerprint(with_function),
        prompt_fingerprint(with_system_function),
        prompt_fingerprint(Agent("test")),
    ]
    assert None not in fingerprints
    assert len(set(fingerprints)) == len(fingerprints)


def test_an_object_without_readable_prompts_has_no_fingerprint() -> None:
    assert prompt_fingerprint(object()) is None
