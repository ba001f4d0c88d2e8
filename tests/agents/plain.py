"""A tool-less agent; its model comes from the test server's config."""

from pydantic_ai import Agent

agent = Agent(name="plain", instructions="Answer briefly.")

not_an_agent = {"this": "is a dict"}
