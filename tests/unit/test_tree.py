"""The prolly tree over an in-memory node store, checked against a plain dict."""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina_server.versioning.cursors import DiffCursor, OverlayCursor, TreeCursor
from lamina_server.versioning.errors import InvalidCursor
from lamina_server.versioning.listing import key_after_prefix, list_page
from lamina_server.versioning.tree import EMPTY_LEAF, EMPTY_ROOT, NodeCache, Tree


class MemoryNodes:
    """A node source backed by a dict; counts reads."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.reads = 0

    def load(self, node_id: str) -> bytes:
        self.reads += 1
        return self.bodies[node_id]

    def load_many(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        self.reads += 1
        return {nid: self.bodies[nid] for nid in node_ids}


class ListCursor:
    """A cursor over a sorted in-memory list, standing in for staged rows."""

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self.items = items
        self.keys = [k for k, _ in items]
        self.pos = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def advance(self) -> None:
        self.pos += 1

    def seek(self, key: str) -> None:
        self.pos = bisect_left(self.keys, key, self.pos)


def size_of(value: Any) -> int:
    return int(value[1])


def new_tree(nodes: MemoryNodes | None = None, cache_size: int = 100_000) -> Tree:
    return Tree(nodes or MemoryNodes(), size_of=size_of, cache=NodeCache(cache_size))


def commit(tree: Tree, root: str, changes: dict[str, Any]) -> str:
    rewrite = tree.apply(root, sorted(changes.items()))
    tree.source.bodies.update(rewrite.nodes)  # type: ignore[attr-defined]
    return rewrite.root


def build(tree: Tree, model: dict[str, Any]) -> str:
    rewrite = tree.build(sorted(model.items()))
    tree.source.bodies.update(rewrite.nodes)  # type: ignore[attr-defined]
    return rewrite.root


def entries(tree: Tree, root: str) -> list[tuple[str, Any]]:
    out = []
    cursor = TreeCursor(tree, root)
    while (item := cursor.peek()) is not None:
        out.append(item)
        cursor.advance()
    return out


def val(i: int) -> list[Any]:
    return [f"blob-{i}", i % 1000]


def big_model(n: int) -> dict[str, Any]:
    return {f"data/{i // 1000:04d}/file-{i:07d}.bin": val(i) for i in range(n)}


def cold(tree: Tree) -> Tree:
    """The same nodes behind an empty cache, to count reads."""
    return new_tree(tree.source)  # type: ignore[arg-type]


# --- build, get, stats -----------------------------------------------------------------------


def test_empty_tree() -> None:
    tree = new_tree()
    root = build(tree, {})
    assert root == EMPTY_ROOT
    assert tree.stats(root) == (0, 0)
    assert tree.get(root, "a") is None
    assert entries(tree, root) == []


def test_build_get_and_stats() -> None:
    tree = new_tree()
    model = big_model(5000)
    root = build(tree, model)
    assert tree.node(root).height >= 2
    assert tree.stats(root) == (5000, sum(v[1] for v in model.values()))
    for key in random.Random(1).sample(sorted(model), 200):
        assert tree.get(root, key) == model[key]
    assert tree.get(root, "data/9999") is None
    assert tree.get(root, "") is None
    assert entries(tree, root) == sorted(model.items())


def test_node_sizes_follow_the_target() -> None:
    tree = new_tree()
    root = build(tree, big_model(20_000))
    leaves = [n for n in map(tree.node, tree.source.bodies) if n.is_leaf and n.keys]  # type: ignore[attr-defined]
    mean = sum(len(n.keys) for n in leaves) / len(leaves)
    assert 40 < mean < 100
    assert tree.node(root).height <= 4


# --- apply: structural sharing and history independence -------------------------------------


def test_small_commit_on_large_tree_writes_a_handful_of_nodes() -> None:
    tree = new_tree()
    model = big_model(50_000)
    root = build(tree, model)
    height = tree.node(root).height
    rng = random.Random(7)
    keys = sorted(model)
    changes: dict[str, Any] = {k: val(-1) for k in rng.sample(keys, 6)}
    changes.update({k: None for k in rng.sample(keys, 2)})
    changes.update({"data/0003/new-a": val(1), "zz/new-b": val(2)})
    reader = cold(tree)
    rewrite = reader.apply(root, sorted(changes.items()))
    new_nodes = set(rewrite.nodes) - set(tree.source.bodies)  # type: ignore[attr-defined]
    # at most one root-to-leaf path per change, out of hundreds of nodes
    total = len(tree.source.bodies)  # type: ignore[attr-defined]
    assert total > 700
    assert len(new_nodes) == len(rewrite.nodes) <= len(changes) * (height + 1)
    assert reader.cache.reads <= len(changes) * (height + 1)
    tree.source.bodies.update(rewrite.nodes)  # type: ignore[attr-defined]
    for k, v in changes.items():
        if v is None:
            model.pop(k)
        else:
            model[k] = v
    assert rewrite.root == build(new_tree(), model)


def test_same_contents_same_root_whatever_the_history() -> None:
    model = big_model(3000)
    keys = sorted(model)
    tree = new_tree()
    direct = build(tree, model)
    # insert in shuffled batches, with detours through deleted and overwritten keys
    rng = random.Random(3)
    shuffled = keys[:]
    rng.shuffle(shuffled)
    root = EMPTY_ROOT
    tree.source.bodies[EMPTY_ROOT] = EMPTY_LEAF  # type: ignore[attr-defined]
    for start in range(0, len(shuffled), 250):
        batch = {k: val(0) for k in shuffled[start : start + 250]}
        batch.update({f"tmp/{start}/{i}": val(i) for i in range(30)})
        root = commit(tree, root, batch)
    root = commit(tree, root, {k: model[k] for k in keys})
    root = commit(
        tree, root, {f"tmp/{s}/{i}": None for s in range(0, 3000, 250) for i in range(30)}
    )
    assert root == direct


def test_deleting_everything_returns_the_empty_root() -> None:
    tree = new_tree()
    model = big_model(2000)
    root = build(tree, model)
    root = commit(tree, root, dict.fromkeys(model))
    assert root == EMPTY_ROOT


changes_strategy = st.dictionaries(
    st.text(alphabet="ab/c", min_size=1, max_size=6),
    st.one_of(st.none(), st.integers(0, 50).map(lambda i: [f"v{i}", i])),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(changes_strategy, min_size=1, max_size=6))
def test_apply_matches_a_dict(batches: list[dict[str, Any]]) -> None:
    tree = new_tree()
    model: dict[str, Any] = {}
    root = build(tree, {})
    for batch in batches:
        root = commit(tree, root, batch)
        for k, v in batch.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        assert entries(tree, root) == sorted(model.items())
        assert tree.stats(root) == (len(model), sum(v[1] for v in model.values()))
        assert root == build(new_tree(), model)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_apply_on_large_trees_matches_a_rebuild(data: st.DataObject) -> None:
    # trees several levels deep, so boundary keys vanish and appear at every height
    base = {f"k{i:05d}": [str(i), i] for i in range(0, 60_000, 3)}
    tree = new_tree()
    root = build(tree, base)
    assert tree.node(root).height >= 2
    region = data.draw(st.sampled_from([(0, 60_300), (0, 300), (59_000, 60_300), (30_000, 30_500)]))
    keys = data.draw(st.lists(st.integers(*region), max_size=80))
    deletes = data.draw(st.booleans())
    batch: dict[str, Any] = {}
    for i in keys:
        key = f"k{i:05d}"
        batch[key] = None if deletes and key in base else [f"n{i}", i]
    root = commit(tree, root, batch)
    model = dict(base)
    for k, v in batch.items():
        if v is None:
            model.pop(k, None)
        else:
            model[k] = v
    assert root == build(new_tree(), model)


# --- cursors and listing ---------------------------------------------------------------------


def naive_listing(model: dict[str, Any], prefix: str, delimiter: str | None) -> list[str]:
    out: list[str] = []
    for key in sorted(model):
        if not key.startswith(prefix):
            continue
        if delimiter and delimiter in key[len(prefix) :]:
            rest = key[len(prefix) :]
            group = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if not out or out[-1] != group:
                out.append(group)
        else:
            out.append(key)
    return out


def all_pages(cursor_factory: Any, prefix: str, delimiter: str | None, amount: int) -> list[str]:
    paths: list[str] = []
    after = None
    for _ in range(10_000):
        items, more = list_page(
            cursor_factory(), prefix=prefix, delimiter=delimiter, after=after, amount=amount
        )
        assert len(items) <= amount
        paths.extend(item.path for item in items)
        if not more:
            return paths
        assert len(items) == amount
        after = items[-1].path
    raise AssertionError("pagination did not end")


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text(alphabet="ab/.", min_size=1, max_size=7), st.just(["x", 1])),
    st.sampled_from(["", "a", "a/", "b/a", "/"]),
    st.sampled_from([None, "/", ".", "/a"]),
    st.integers(1, 5),
)
def test_listing_pages_match_a_naive_listing(
    model: dict[str, Any], prefix: str, delimiter: str | None, amount: int
) -> None:
    tree = new_tree()
    root = build(tree, model)
    expected = naive_listing(model, prefix, delimiter)
    assert (
        all_pages(lambda: TreeCursor(tree, root, readahead=True), prefix, delimiter, amount)
        == expected
    )


_DEEP = {
    f"{a}/{b:02d}/{c}" if c % 5 else f"{a}/{b:02d}": [str(c), 1]
    for a in ("p", "q", "q.x", "r")
    for b in range(60)
    for c in range(0, 700, 7)
}
_DEEP_TREE = new_tree()
_DEEP_ROOT = build(_DEEP_TREE, _DEEP)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["", "p", "q", "q/", "q/07", "q/07/", "r/59/", "s"]),
    st.sampled_from([None, "/", ".", "7"]),
    st.one_of(st.none(), st.sampled_from(sorted(_DEEP)), st.text(alphabet="pqr/0579.", max_size=8)),
    st.integers(1, 40),
    st.booleans(),
)
def test_pages_of_a_deep_tree_match_a_naive_listing(
    prefix: str, delimiter: str | None, after: str | None, amount: int, readahead: bool
) -> None:
    assert _DEEP_TREE.node(_DEEP_ROOT).height >= 2
    full = naive_listing(_DEEP, prefix, delimiter)
    rest = full if after is None else [e for e in full if e > after]
    items, more = list_page(
        TreeCursor(_DEEP_TREE, _DEEP_ROOT, readahead=readahead),
        prefix=prefix,
        delimiter=delimiter,
        after=after or None,
        amount=amount,
    )
    assert [i.path for i in items] == rest[:amount]
    assert more == (len(rest) > amount)


def test_seek_and_delimiter_skip_are_logarithmic() -> None:
    tree = new_tree()
    model = big_model(100_000)  # 100 "directories" of 1000 files
    root = build(tree, model)
    height = tree.node(root).height
    for readahead in (False, True):
        reader = cold(tree)
        items, more = list_page(
            TreeCursor(reader, root, readahead=readahead),
            prefix="data/",
            delimiter="/",
            after=None,
            amount=20,
        )
        assert [i.path for i in items] == [f"data/{d:04d}/" for d in range(20)]
        assert more
        # one root-to-leaf descent per group, never a scan of a group's thousand members
        # (nor, with readahead, of the nodes after each group's first)
        assert reader.cache.reads <= 20 * (height + 1)
    reader = cold(tree)
    items, more = list_page(
        TreeCursor(reader, root),
        prefix="data/0042/",
        delimiter="/",
        after="data/0042/file-0042500.bin",
        amount=3,
    )
    assert [i.path for i in items] == [f"data/0042/file-{n:07d}.bin" for n in (42501, 42502, 42503)]
    assert reader.cache.reads <= height + 2


def test_prefetch_paths_takes_one_fetch_per_level() -> None:
    tree = new_tree()
    model = big_model(100_000)
    root = build(tree, model)
    height = tree.node(root).height
    keys = sorted([*random.Random(5).sample(sorted(model), 12), "zzz-missing", "a-missing"])
    reader = cold(tree)
    reader.prefetch_paths(root, keys)
    assert reader.cache.fetches == height + 1
    fetched = reader.cache.reads
    assert [reader.get(root, k) for k in keys] == [model.get(k) for k in keys]
    assert reader.cache.reads == fetched  # every lookup was served from the cache


def test_readahead_batches_sequential_reads() -> None:
    tree = new_tree()
    model = big_model(50_000)
    root = build(tree, model)
    plain, ahead = cold(tree), cold(tree)
    pages = []
    for reader, readahead in ((plain, False), (ahead, True)):
        items, _ = list_page(
            TreeCursor(reader, root, readahead=readahead),
            prefix="data/",
            delimiter=None,
            after="data/0007/file-0007001.bin",
            amount=2000,
        )
        pages.append([i.path for i in items])
    assert pages[0] == pages[1] == sorted(model)[7002:9002]
    assert plain.cache.fetches >= 30  # one per leaf
    assert ahead.cache.fetches <= plain.cache.fetches // 3


def test_after_a_group_resumes_past_the_group() -> None:
    tree = new_tree()
    root = build(tree, {"a/1": val(1), "a/2": val(2), "a0": val(3), "b": val(4)})
    items, more = list_page(TreeCursor(tree, root), prefix="", delimiter="/", after="a/", amount=5)
    assert [i.path for i in items] == ["a0", "b"]
    assert not more
    items, _ = list_page(TreeCursor(tree, root), prefix="", delimiter=None, after="a/", amount=5)
    assert [i.path for i in items] == ["a/1", "a/2", "a0", "b"]


def test_malformed_cursor() -> None:
    tree = new_tree()
    root = build(tree, {"a": val(1)})
    with pytest.raises(InvalidCursor):
        list_page(TreeCursor(tree, root), prefix="", delimiter=None, after="a\x00", amount=1)


def test_key_after_prefix() -> None:
    assert key_after_prefix("a/") == "a0"
    assert key_after_prefix("") is None
    assert key_after_prefix("a\U0010ffff") == "b"
    assert key_after_prefix("\ud7ff") == "\ue000"


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text(alphabet="abc/", min_size=1, max_size=5), st.just(["x", 1])),
    st.dictionaries(
        st.text(alphabet="abc/", min_size=1, max_size=5),
        st.one_of(st.none(), st.just(["y", 2])),
    ),
    st.sampled_from(["", "a", "b/"]),
)
def test_overlay_listing_matches_the_merged_dict(
    base: dict[str, Any], staged: dict[str, Any], prefix: str
) -> None:
    tree = new_tree()
    root = build(tree, base)
    merged = dict(base)
    for k, v in staged.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    staged_items = sorted(staged.items())

    def view() -> OverlayCursor:
        return OverlayCursor(TreeCursor(tree, root), ListCursor(staged_items))

    for delimiter in (None, "/"):
        got = all_pages(view, prefix, delimiter, 2)
        assert got == naive_listing(merged, prefix, delimiter)


# --- diff ------------------------------------------------------------------------------------


def diff_all(tree: Tree, left: str, right: str) -> list[tuple[str, Any, Any]]:
    out = []
    cursor = DiffCursor(tree, left, right)
    while (item := cursor.peek()) is not None:
        out.append((item[0], *item[1]))
        cursor.advance()
    return out


def naive_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.text(alphabet="abcd", min_size=1, max_size=4), st.just(["x", 1])),
    changes_strategy,
)
def test_diff_matches_a_dict(base: dict[str, Any], batch: dict[str, Any]) -> None:
    tree = new_tree()
    left = build(tree, base)
    right = commit(tree, left, batch)
    after = dict(base)
    for k, v in batch.items():
        if v is None:
            after.pop(k, None)
        else:
            after[k] = v
    assert diff_all(tree, left, right) == naive_diff(base, after)
    assert diff_all(tree, right, left) == naive_diff(after, base)


def test_diff_reads_only_the_changed_region() -> None:
    tree = new_tree()
    model = big_model(100_000)
    left = build(tree, model)
    height = tree.node(left).height
    keys = sorted(model)
    changed = {keys[i]: val(-i) for i in (10, 40_000, 99_999)}
    changed["data/0050/zzz"] = val(5)
    changed[keys[70_000]] = None
    right = commit(tree, left, changed)
    reader = cold(tree)
    got = diff_all(reader, left, right)
    assert [k for k, _, _ in got] == sorted(changed)
    # one root-to-leaf path per change on each side
    assert reader.cache.reads <= 2 * len(changed) * (height + 1)
    one = commit(tree, left, {keys[55_555]: val(0)})
    reader = cold(tree)
    assert [k for k, _, _ in diff_all(reader, left, one)] == [keys[55_555]]
    assert reader.cache.reads <= 2 * (height + 1)
    reader = cold(tree)
    assert diff_all(reader, left, left) == []
    assert reader.cache.reads <= 2


def test_diff_seek_then_list_with_prefix() -> None:
    tree = new_tree()
    base = {"a/1": val(1), "a/2": val(2), "b/1": val(3), "c": val(4)}
    left = build(tree, base)
    right = commit(tree, left, {"a/2": None, "b/2": val(9), "c": val(5)})
    items, more = list_page(
        DiffCursor(tree, left, right), prefix="", delimiter="/", after=None, amount=10
    )
    assert [(i.path, i.is_group) for i in items] == [("a/", True), ("b/", True), ("c", False)]
    assert not more
    items, _ = list_page(
        DiffCursor(tree, left, right), prefix="b/", delimiter=None, after=None, amount=10
    )
    assert [(i.path, i.payload) for i in items] == [("b/2", (None, val(9)))]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(_DEEP)), max_size=30),
    st.lists(st.text(alphabet="pqr/0579", min_size=1, max_size=8), max_size=10),
    st.sampled_from(["", "q", "q/", "r/59/"]),
    st.sampled_from([None, "/"]),
    st.one_of(st.none(), st.sampled_from(sorted(_DEEP))),
    st.integers(1, 10),
)
def test_diff_pages_of_a_deep_tree(
    touched: list[str],
    added: list[str],
    prefix: str,
    delimiter: str | None,
    after: str | None,
    amount: int,
) -> None:
    tree = new_tree(_DEEP_TREE.source)  # type: ignore[arg-type]
    batch: dict[str, Any] = {k: None if i % 2 else ["changed", 2] for i, k in enumerate(touched)}
    batch.update({k: ["new", 3] for k in added})
    right = commit(tree, _DEEP_ROOT, batch)
    after_model = dict(_DEEP)
    for k, v in batch.items():
        if v is None:
            after_model.pop(k, None)
        else:
            after_model[k] = v
    changed = {k: v for k, _, v in naive_diff(_DEEP, after_model)}
    full = naive_listing(changed, prefix, delimiter)
    rest = full if after is None else [e for e in full if e > after]
    items, more = list_page(
        DiffCursor(tree, _DEEP_ROOT, right),
        prefix=prefix,
        delimiter=delimiter,
        after=after,
        amount=amount,
    )
    assert [i.path for i in items] == rest[:amount]
    assert more == (len(rest) > amount)
