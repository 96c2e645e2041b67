"""Runners isolate sandboxes; the orchestrator sees only :mod:`.base`."""
