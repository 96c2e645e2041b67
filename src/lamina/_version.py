"""The SDK's version (kept equal to the distribution's; a test checks it)."""

__version__ = "0.1.0"
