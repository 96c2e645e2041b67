"""How the command prints: JSON for ``--json``, aligned columns, sizes, times, notes on stderr."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs
import click

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def jsonable(value: Any) -> Any:
    """``value`` (attrs models, mappings, sequences, datetimes) as plain JSON data."""
    if attrs.has(type(value)):
        return {
            field.name: jsonable(getattr(value, field.name)) for field in attrs.fields(type(value))
        }
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def human_size(size: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"`` (bytes below 1 KiB as a whole number)."""
    if size is None:
        return "-"
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(moment: datetime | None) -> str:
    """A time as ``2026-05-01 12:00:00`` in UTC (``-`` for none)."""
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` in columns under ``headers`` (left-aligned, two spaces apart); with no
    rows, nothing on stdout and ``(none)`` on stderr."""
    if not rows:
        note("(none)")
        return
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [list(headers), *cells]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()

    click.secho(line(headers), bold=True)
    for row in cells:
        click.echo(line(row))


def note(message: str) -> None:
    """A message for the person at the terminal (stderr), not part of the output data."""
    click.echo(message, err=True)


def one_line(text: str) -> str:
    """``text`` with its line breaks folded, for a one-line error."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
