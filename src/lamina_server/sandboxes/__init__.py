"""Sandboxed compute over repository data: sessions with a process attached."""
