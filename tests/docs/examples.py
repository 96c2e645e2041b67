"""The Python examples of the documentation pages, as the examples test runs them.

Every fenced ``python`` block of a page runs, in the page's order, in one namespace per page
(as cells of a notebook: a later block uses what an earlier one made). Two HTML comments,
invisible on the site, steer a page's run:

- ``<!-- docs-test: setup`` ... ``-->``: Python that runs at that point and is not shown (a
  repository the example assumes, a second user);
- ``<!-- docs-test: skip REASON -->`` right before a block: that block does not run, for the
  reason given (it must give one);
- ``<!-- docs-test: file PATH -->`` right before a block: the block is not run but written to
  ``PATH`` in the working directory (a module or test file that a later block imports or
  runs, as a reader would save it).

An example may ``await`` and use ``async with``/``async for`` at the top level, as in a
notebook or ``python -m asyncio``: such a block runs with ``asyncio.run``.
"""

from __future__ import annotations

import re
from pathlib import Path

from attrs import frozen

DOCS = Path(__file__).parents[2] / "docs"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n`]*)$")
_SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip\b(?P<reason>.*?)-->\s*$")
_FILE = re.compile(r"^\s*<!--\s*docs-test:\s*file\s+(?P<path>\S+)\s*-->\s*$")
_SETUP = re.compile(r"^\s*<!--\s*docs-test:\s*setup\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:")


@frozen
class Block:
    """One piece of a page's run: ``code`` from ``line`` (1-based) of ``page``."""

    page: str
    line: int
    code: str
    hidden: bool = False
    skip_reason: str | None = None
    file: str | None = None


class DocsMarkerError(ValueError):
    """A ``docs-test`` comment the runner does not understand, or a skip without a reason."""


def page_blocks(path: Path) -> list[Block]:
    """The python blocks and hidden setups of the page at ``path``, in order."""
    page = path.relative_to(DOCS.parent).as_posix()
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    pending_skip: str | None = None
    pending_file: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if _SETUP.match(line):
            end = _closing(lines, index + 1, page, "-->")
            code = "\n".join(lines[index + 1 : end])
            blocks.append(Block(page, index + 2, code, hidden=True))
            index = end + 1
            continue
        skip = _SKIP.match(line)
        if skip:
            reason = skip.group("reason").strip()
            if not reason:
                raise DocsMarkerError(f"{page}:{index + 1}: docs-test: skip needs a reason")
            pending_skip = reason
            index += 1
            continue
        file = _FILE.match(line)
        if file:
            pending_file = file.group("path")
            index += 1
            continue
        if _MARKER.match(line):
            raise DocsMarkerError(f"{page}:{index + 1}: unknown docs-test comment: {line.strip()}")
        fence = _FENCE.match(line)
        if fence:
            indent, marks = fence.group("indent"), fence.group("fence")
            end = _closing(lines, index + 1, page, marks)
            language = fence.group("info").split()[0] if fence.group("info").split() else ""
            if language in {"python", "py"}:
                body = [
                    text[len(indent) :] if text.startswith(indent) else text
                    for text in lines[index + 1 : end]
                ]
                code = "\n".join(body)
                blocks.append(
                    Block(page, index + 2, code, skip_reason=pending_skip, file=pending_file)
                )
            elif pending_skip is not None or pending_file is not None:
                raise DocsMarkerError(
                    f"{page}:{index + 1}: a docs-test marker before a non-python block"
                )
            pending_skip = pending_file = None
            index = end + 1
            continue
        if line.strip() and (pending_skip is not None or pending_file is not None):
            raise DocsMarkerError(
                f"{page}:{index + 1}: a docs-test marker must come right before a block"
            )
        index += 1
    return blocks


def _closing(lines: list[str], start: int, page: str, closing: str) -> int:
    """The index of the first line from ``start`` that is ``closing`` (spaces aside)."""
    for number in range(start, len(lines)):
        if lines[number].strip() == closing:
            return number
    raise DocsMarkerError(f"{page}:{start}: no closing {closing!r}")


def pages() -> list[Path]:
    """Every Markdown page of the site."""
    return sorted(DOCS.rglob("*.md"))


RUNNER = r"""
import ast, asyncio, json, pathlib, sys

sys.path.insert(0, "")
ns = {"__name__": "__main__"}
for block in json.load(open(sys.argv[1])):
    if block["file"]:
        pathlib.Path(block["file"]).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(block["file"]).write_text(block["code"] + "\n")
        continue
    source = "\n" * (block["line"] - 1) + block["code"]
    code = compile(source, block["page"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & 0x80:  # CO_COROUTINE: top-level await
        asyncio.run(eval(code, ns))
    else:
        exec(code, ns)
"""
