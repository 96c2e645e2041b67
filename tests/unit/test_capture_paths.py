"""capture's path rules are validate_path's: the same verdict on every string."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from lamina_server.api.errors import ApiError
from lamina_server.api.validation import validate_path
from lamina_server.sandboxes.capture import path_problem, printable

_PIECES = st.sampled_from(["a", "é", "/", ".", "..", "\x00", "\udcff", "x" * 300, " "])


@given(st.lists(_PIECES, max_size=8).map("".join) | st.text(max_size=40))
@example("a/b")
@example("a//b")
@example("/a")
@example("")
@example("x" * 1025)
def test_path_problem_agrees_with_validate_path(path: str) -> None:
    try:
        validate_path(path)
    except ApiError:
        assert path_problem(path) is not None
    else:
        assert path_problem(path) is None


def test_printable_escapes_bytes_that_are_not_utf8() -> None:
    assert printable("ok/\udcffname") == "ok/\\xffname"
    assert printable("é") == "é"
