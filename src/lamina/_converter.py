"""The one cattrs converter factory: JSON data <-> the attrs models in :mod:`lamina.models`.

- Unknown keys are ignored, so a newer server's extra fields do not break an older SDK
  (``strict=True`` forbids them; the tests use it to catch fields a model forgot).
- Primitives are checked, not coerced: ``"5"`` is not an ``int`` and ``1`` is not a ``str``.
- Lists and tuples are built only from JSON arrays: a string is not a sequence of
  characters (``"c0"`` is not ``("c", "0")``), nor an object a sequence of its keys.
- Datetimes are RFC 3339 strings (``Z`` or an offset, up to 9 fractional digits, which are
  truncated to microseconds); a value without an offset is taken as UTC. They are written back
  in UTC with a ``Z``.

:func:`structure` turns every failure into a :class:`~lamina.SerializationError` that names the
path of the bad field (``$.results[3].entry.size``).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, get_origin

import attrs
import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_mutable_sequence,
    is_sequence,
    list_structure_factory,
)

from lamina._errors import SerializationError

__all__ = ["format_datetime", "make_converter", "parse_datetime", "structure"]

T = TypeVar("T")

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


def parse_datetime(value: str) -> datetime:
    """An aware datetime from an RFC 3339 timestamp; ``ValueError`` if it is not one."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    tz = timezone.utc
    if sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
    )


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` (a naive datetime is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def make_converter(*, strict: bool = False) -> cattrs.Converter:
    """A converter for the SDK's models; ``strict`` also rejects unknown keys."""
    converter = cattrs.Converter(forbid_extra_keys=strict)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime, format_datetime)
    converter.register_structure_hook_factory(attrs.has, _objects_only(converter))
    converter.register_structure_hook_factory(_is_list_or_tuple, _arrays_only(converter))
    return converter


def _objects_only(converter: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    """Hook factory for attrs classes: the usual generated hook, behind a check that the data
    is a JSON object (so ``"text"`` where a model belongs reports that, not a missing field)."""

    def factory(cl: Any) -> Callable[[Any, Any], Any]:
        structure_fields = converter.gen_structure_attrs_fromdict(cl)

        def hook(value: Any, type_: Any) -> Any:
            if not isinstance(value, Mapping):
                raise _wrong_type(value, "an object")
            return structure_fields(value, type_)

        return hook

    return factory


def _is_list_or_tuple(cl: Any) -> bool:
    return is_sequence(cl) and (get_origin(cl) or cl) is not deque


def _arrays_only(converter: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    """Hook factory for lists and homogeneous tuples (``tuple[X, ...]``): cattrs' own hooks,
    behind a check that the data is an array (cattrs alone iterates any iterable)."""

    def factory(cl: Any) -> Callable[[Any, Any], Any]:
        if is_mutable_sequence(cl):
            structure_items = list_structure_factory(cl, converter)
        else:
            structure_items = homogenous_tuple_structure_factory(cl, converter)

        def hook(value: Any, type_: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                raise _wrong_type(value, "an array")
            return structure_items(value, type_)

        return hook

    return factory


def structure(converter: cattrs.Converter, data: Any, cl: type[T]) -> T:
    """``converter.structure(data, cl)``, raising :class:`SerializationError` on bad data."""
    try:
        return converter.structure(data, cl)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc))
        raise SerializationError(f"cannot read {_name(cl)} from the response: {problems}") from exc
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise SerializationError(f"cannot read {_name(cl)} from the response: {exc} @ $") from exc


def _name(cl: Any) -> str:
    return getattr(cl, "__name__", None) or str(cl)


def _wrong_type(value: Any, expected: str) -> TypeError:
    return TypeError(f"expected {expected}, got {type(value).__name__} {value!r:.40}")


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise _wrong_type(value, "a string")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _wrong_type(value, "an integer")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _wrong_type(value, "a number")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise _wrong_type(value, "a boolean")


def _structure_datetime(value: Any, _: type) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    raise _wrong_type(value, "an RFC 3339 timestamp")
