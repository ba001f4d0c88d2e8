"""The HTTP API: FastAPI app factory, one router per resource, SSE helpers."""

from agenthost.server.app import create_app

__all__ = ["create_app"]
