"""BoundedOutput: a command's output within a bound, its head and tail kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lamina.mcp.output import BoundedOutput


def test_output_within_the_limit_is_kept_whole() -> None:
    output = BoundedOutput(10)
    for chunk in (b"abc", b"", b"defg", b"hij"):
        output.write(chunk)
    assert (output.text(), output.total, output.truncated) == ("abcdefghij", 10, False)


def test_output_past_the_limit_keeps_its_head_and_tail() -> None:
    output = BoundedOutput(8)
    output.write(b"0123456789")
    output.write(b"abcdef")
    assert output.truncated
    assert output.total == 16
    assert output.text() == "0123\n[... 8 bytes omitted ...]\ncdef"


def test_bad_utf8_is_replaced() -> None:
    output = BoundedOutput(100)
    output.write("é".encode()[:1] + b"ok")
    assert output.text() == "\ufffdok"


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(min_value=0, max_value=64))
def test_keeps_exactly_the_first_and_last_bytes(chunks: list[bytes], limit: int) -> None:
    output = BoundedOutput(limit)
    for chunk in chunks:
        output.write(chunk)
    whole = b"".join(chunks)
    assert output.total == len(whole)
    if len(whole) <= limit:
        head, rest = whole[: limit // 2], whole[limit // 2 :]
        assert output.text() == head.decode("utf-8", "replace") + rest.decode("utf-8", "replace")
        assert not output.truncated
    else:
        head, tail = whole[: limit // 2], whole[len(whole) - (limit - limit // 2) :]
        dropped = len(whole) - len(head) - len(tail)
        expected = (
            f"{head.decode('utf-8', 'replace')}\n[... {dropped} bytes omitted ...]\n"
            f"{tail.decode('utf-8', 'replace')}"
        )
        assert output.text() == expected
