"""Lamina reference server: the Tilde API (`/api/v1`) on embedded defaults or scaled-out engines."""

__version__ = "0.1.0"
