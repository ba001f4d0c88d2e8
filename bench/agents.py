"""The agent bench/durability.py serves: one trivial tool, so a run's cost is its checkpoints."""

from pydantic_ai import Agent

agent = Agent(name="durability", instructions="Call the tools you are asked to call, then answer.")


@agent.tool_plain
def noop(i: int) -> int:
    """Return `i`: a tool call that does no work of its own."""
    return i
