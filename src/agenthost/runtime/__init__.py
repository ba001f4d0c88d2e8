"""The runtime: agent registry, the durable run workflow, run events and the run service."""
