"""The async -> blocking generator (scripts/unasync.py): its rules on small snippets, its
failure modes, and the tree operations behind ``--check``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.generator import generator as gen


def convert(source: str, renames: dict[str, str] | None = None) -> tuple[str, list[str]]:
    rule = gen.Unasync(gen.RENAMES if renames is None else renames)
    return gen.unasync_source(source, rule, gen.LINE_RULES, Counter())


def test_prefix_rule_renames_every_async_class_name() -> None:
    text, residue = convert(
        "class AsyncRepository(AsyncBase):\n"
        "    http: httpx.AsyncClient\n"
        "    def pages(self) -> AsyncIterator[AsyncPage]: ...\n"
        "    stack = contextlib.AsyncExitStack()\n"
        "    Asyncish = AsyncX = Async = 1\n"
    )
    assert text == (
        "class Repository(Base):\n"
        "    http: httpx.Client\n"
        "    def pages(self) -> Iterator[Page]: ...\n"
        "    stack = contextlib.ExitStack()\n"
        "    Asyncish = X = Async = 1\n"
    )
    assert residue == []


def test_async_and_await_are_removed() -> None:
    text, residue = convert(
        "async def f(self):\n"
        "    async with self.limiter:\n"
        "        async for page in self.pages():\n"
        "            await self.http.aclose()\n"
        "    return [x async for x in y], await g()\n"
    )
    assert text == (
        "def f(self):\n"
        "    with self.limiter:\n"
        "        for page in self.pages():\n"
        "            self.http.close()\n"
        "    return [x for x in y], g()\n"
    )
    assert residue == []


def test_token_table() -> None:
    text, _ = convert(
        "from lamina._async._client import AsyncClient\n"
        "from lamina._concurrency import asleep, agather_bounded\n"
        "@asynccontextmanager\n"
        "async def __aenter__(self): await asleep(1); await response.aread()\n"
        "def __aiter__(self): return self\n"
        "async def __anext__(self): raise StopAsyncIteration\n"
        "x = await anext(it); t = transport.handle_async_request(r); r.aiter_raw()\n"
        "lines = response.aiter_lines()\n"
    )
    assert text == (
        "from lamina._sync._client import Client\n"
        "from lamina._concurrency import sleep, gather_bounded\n"
        "@contextmanager\n"
        "def __enter__(self): sleep(1); response.read()\n"
        "def __iter__(self): return self\n"
        "def __next__(self): raise StopIteration\n"
        "x = next(it); t = transport.handle_request(r); r.iter_raw()\n"
        "lines = response.iter_lines()\n"
    )


def test_names_in_strings_and_comments_are_rewritten_word_by_word() -> None:
    text, _ = convert(
        '"""Use AsyncClient, then aclose() it (see lamina._async)."""\n'
        "x = cast('AsyncPager[int]', y)  # an AsyncPager, not asyncio\n"
    )
    assert text == (
        '"""Use Client, then close() it (see lamina._sync)."""\n'
        "x = cast('Pager[int]', y)  # an Pager, not asyncio\n"
    )


def test_line_rules() -> None:
    text, residue = convert("import pytest\n\npytestmark = pytest.mark.anyio\n")
    assert text == "import pytest\n\npytestmark = pytest.mark.sync\n"
    assert residue == []
    text, _ = convert("from websockets.asyncio.client import ClientConnection, connect\n")
    assert text == "from websockets.sync.client import ClientConnection, connect\n"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import anyio\n", "anyio"),
        ("import asyncio\nasyncio.sleep(1)\n", "asyncio"),
        ("from typing import Awaitable\n", "Awaitable"),
        ("x: AsyncGenerator[int, None]\n", "AsyncGenerator"),
        (
            "async def f():\n    async with anyio.create_task_group() as tg: ...\n",
            "create_task_group",
        ),
        ("x = r.aiter_text()\n", "aiter_text"),
    ],
)
def test_residue_is_reported_with_its_line(source: str, found: str) -> None:
    _, residue = convert(source)
    assert any(item.endswith(f": {found}") and item.startswith("line ") for item in residue)


def test_residue_in_text_is_not_code() -> None:
    _, residue = convert('"""Runs on asyncio or trio; never await in a docstring."""\n')
    assert residue == []


def test_unused_rules_are_reported() -> None:
    rule = gen.Unasync({"aclose": "close", "frobnicate": "twiddle"})
    used: Counter[str] = Counter()
    line_rules = {r"^pytestmark = pytest\.mark\.anyio$": "pytestmark = pytest.mark.sync"}
    gen.unasync_source("async def f(c):\n    await c.aclose()\n", rule, line_rules, used)
    assert gen.unused_rules(rule, line_rules, used) == [
        "token rule 'frobnicate'",
        "line rule '^pytestmark = pytest\\\\.mark\\\\.anyio$'",
    ]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny project with one async module and one async test, and a rule table fit for it."""
    (tmp_path / "src/lamina/_async").mkdir(parents=True)
    (tmp_path / "tests/_async").mkdir(parents=True)
    (tmp_path / "src/lamina/_async/_thing.py").write_text(
        '"""A thing."""\nfrom lamina._async._other import AsyncOther\nimport os\n\n\n'
        "class AsyncThing:\n    async def aclose(self) -> None:\n        await self.x.aclose()\n"
    )
    (tmp_path / "tests/_async/test_thing.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.anyio\n\n\nasync def test_it() -> None:\n"
        "    assert True\n"
    )
    monkeypatch.setattr(gen, "RENAMES", {"aclose": "close", "_async": "_sync"})
    monkeypatch.setattr(
        gen, "LINE_RULES", {r"^pytestmark = pytest\.mark\.anyio$": "pytestmark = pytest.mark.sync"}
    )
    return tmp_path


def test_generate_writes_banner_and_formatted_code(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("out")
    written = gen.generate(tree, out)
    assert sorted(map(str, written)) == ["src/lamina/_sync/_thing.py", "tests/_sync/test_thing.py"]
    thing = (out / "src/lamina/_sync/_thing.py").read_text()
    assert thing.splitlines()[0] == (
        "# GENERATED by scripts/unasync.py from src/lamina/_async/_thing.py — do not edit."
    )
    # imports sorted by ruff (stdlib before first party), code formatted
    assert '"""A thing."""\n\nimport os\n\nfrom lamina._sync._other import Other\n' in thing
    assert "class Thing:\n    def close(self) -> None:\n        self.x.close()\n" in thing
    assert "pytestmark = pytest.mark.sync" in (out / "tests/_sync/test_thing.py").read_text()


def test_rules_only_the_blocking_shape_trips_are_exempted_where_they_fire(tmp_path: Path) -> None:
    banner = "# GENERATED by scripts/unasync.py from x.py — do not edit.\n"
    nested = banner + "def f(a, b):\n    with a:\n        with b:\n            pass\n"
    assert gen.format_file(tmp_path / "m.py", nested).splitlines()[:2] == [
        banner.strip(),
        "# ruff: noqa: SIM117",
    ]
    plain = banner + "def f(a):\n    with a:\n        pass\n"
    assert gen.format_file(tmp_path / "m.py", plain) == plain


def test_generate_fails_on_an_unused_rule(
    tree: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gen, "RENAMES", {"aclose": "close", "_async": "_sync", "aread": "read"})
    with pytest.raises(gen.GeneratorError, match="token rule 'aread' is not needed by any source"):
        gen.generate(tree, tmp_path_factory.mktemp("out"))


def test_generate_fails_on_residue(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    (tree / "src/lamina/_async/_bad.py").write_text("import anyio\n")
    with pytest.raises(gen.GeneratorError, match=r"_bad\.py, line 1: anyio would be left"):
        gen.generate(tree, tmp_path_factory.mktemp("out"))


def test_check_reports_missing_extra_and_differing_files(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("out")
    expected = gen.generate(tree, out)
    assert gen.compare(tree, out, expected) == [
        "missing: src/lamina/_sync/_thing.py",
        "missing: tests/_sync/test_thing.py",
    ]
    gen.write(tree, out, expected)
    assert gen.compare(tree, out, expected) == []

    (tree / "src/lamina/_sync/_thing.py").write_text("# GENERATED by scripts/unasync.py\nx = 1\n")
    (tree / "tests/_sync/sub").mkdir()
    (tree / "tests/_sync/sub/test_old.py").write_text("# GENERATED by scripts/unasync.py\n")
    report = gen.compare(tree, out, expected)
    assert report[0] == "extra: tests/_sync/sub/test_old.py"
    assert report[1].startswith("differs: src/lamina/_sync/_thing.py\n")
    assert "+class Thing:" in report[1]

    assert gen.write(tree, out, expected) == (1, 1)  # one file rewritten, one orphan deleted
    assert not (tree / "tests/_sync/sub").exists()
    assert gen.compare(tree, out, expected) == []


def test_write_refuses_to_delete_hand_written_files(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("out")
    expected = gen.generate(tree, out)
    (tree / "tests/_sync").mkdir(parents=True)
    (tree / "tests/_sync/test_mine.py").write_text("def test_mine(): ...\n")
    with pytest.raises(gen.GeneratorError, match=r"test_mine\.py"):
        gen.write(tree, out, expected)
    assert (tree / "tests/_sync/test_mine.py").exists()


def test_the_checked_in_mirror_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert gen.main(["--check"]) == 0, capsys.readouterr().out
