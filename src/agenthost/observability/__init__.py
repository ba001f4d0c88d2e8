"""Cross-cutting observability: structured logs (metrics and traces land here too)."""
