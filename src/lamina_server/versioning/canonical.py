"""Canonical JSON: the one byte form of tree nodes and staged entries.

Compact, object keys sorted, non-ASCII text as UTF-8 — byte for byte what
``json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()``
gives for the values stored here (strings, integers within 64 bits, lists, objects with string
keys), so node ids (the SHA-256 of these bytes) do not depend on which encoder wrote them.
orjson writes and reads it: commits and diffs of big trees spend much of their time here.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
