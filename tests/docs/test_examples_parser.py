"""How ``tests/docs/examples.py`` reads a page: blocks in order, hidden set-ups, skips with a
reason, files, and the mistakes it refuses (a marker it does not know, a skip without a
reason or away from its block)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import DOCS, DocsMarkerError, page_blocks, pages


def _page(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    page = folder / "page.md"
    page.write_text(text)
    return page


def _read(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    monkeypatch.setattr("tests.docs.examples.DOCS", tmp_path / "docs")
    blocks = page_blocks(_page(tmp_path, text))
    return [(b.line, b.code, b.hidden, b.skip_reason, b.file) for b in blocks]


PAGE = """# A page

<!-- docs-test: setup
x = 1
-->

```python
print(x)
```

```sh
echo not python
```

<!-- docs-test: skip it needs a bucket -->
```python
boto3.client("s3")
```

1. In a list:

    ```python
    y = 2
    ```

<!-- docs-test: file app.py -->
```python
APP = True
```
"""


def test_blocks_setups_skips_and_files_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _read(tmp_path, PAGE, monkeypatch) == [
        (4, "x = 1", True, None, None),
        (8, "print(x)", False, None, None),
        (17, 'boto3.client("s3")', False, "it needs a bucket", None),
        (23, "y = 2", False, None, None),
        (28, "APP = True", False, None, "app.py"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- docs-test: skip -->\n```python\nx\n```\n", "needs a reason"),
        ("<!-- docs-test: skip why -->\n\nsome prose\n```python\nx\n```\n", "right before"),
        ("<!-- docs-test: skip why -->\n```sh\nx\n```\n", "non-python"),
        ("<!-- docs-test: run -->\n", "unknown docs-test comment"),
        ("<!-- docs-test: setup\nx = 1\n", "no closing"),
    ],
)
def test_mistakes_in_markers_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    with pytest.raises(DocsMarkerError, match=message):
        _read(tmp_path, text, monkeypatch)


def test_every_page_of_the_site_reads_and_skips_say_why() -> None:
    blocks = [block for page in pages() for block in page_blocks(page)]
    assert len([b for b in blocks if not b.hidden]) > 50
    assert {b.page for b in blocks} >= {"docs/sdk.md", "docs/getting-started.md"}
    assert all(b.skip_reason for b in blocks if b.skip_reason is not None)
    assert DOCS.name == "docs"
