"""The model gateway: model registry, pricing, and (as they land) wrappers around every model call."""
