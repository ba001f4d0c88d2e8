"""The `agenthost` command line (typer + rich)."""
