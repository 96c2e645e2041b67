"""The request body behind a slice of an upload, as the client sends it (no server needed)."""

from __future__ import annotations

import pytest

from lamina._async._object_writer import AsyncBody
from lamina._sources import CHUNK_SIZE, Slice

pytestmark = pytest.mark.anyio


async def test_a_body_sends_its_slice_and_can_be_sent_again() -> None:
    data = bytes(range(256)) * (CHUNK_SIZE // 128)
    progress: list[int] = []
    body = AsyncBody(
        Slice(
            lambda offset, length: data[offset : offset + length], 3, len(data) - 3, progress.append
        )
    )
    for _ in range(2):
        assert b"".join([chunk async for chunk in body]) == data[3:]
    assert sum(progress) == len(data) - 3
