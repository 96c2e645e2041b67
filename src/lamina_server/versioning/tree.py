"""A prolly tree: a persistent sorted map of string keys stored as content-addressed nodes.

Node boundaries are content-defined. Every key has a *rank* derived from a hash of the key
alone; a key of rank ``r`` ends a node at every height below ``r`` (``rank > height``). With
6 bits per rank the expected fan-out is 64 at every height. Because ranks depend only on
keys, the shape of the tree is a pure function of the set of keys: the same contents give
the same root id whatever order they were written in (history independence), and unchanged
regions of two versions are the very same nodes (structural sharing).

Nodes are JSON arrays (:mod:`~lamina_server.versioning.canonical` form), identified by the
SHA-256 of their encoded bytes:

* leaf (height 0): ``[0, [key, ...], [value, ...]]``
* internal: ``[height, [last_key, ...], [child_id, ...], [count, ...], [size, ...]]`` — one
  column per child: its last key, its id, and the number of entries and the byte total of its
  subtree, so counts and sizes of any subtree are known without visiting it.

Values are opaque JSON values; the caller says how many bytes a value accounts for
(``size_of``). Changes are applied as one ordered batch (:meth:`Tree.apply`): only the nodes on
the paths to the changed keys are re-chunked, so a batch of ``k`` changes writes
``O(k · log n)`` nodes and reads as many.
"""

from __future__ import annotations

import hashlib
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from lamina_server.versioning import canonical

RANK_BITS = 6  # a key ends a node with probability 2**-6: ~64 entries per node
_MAX_RANK = 64 // RANK_BITS
_NO_LEVEL = 1 << 30

Value = Any
SizeOf = Callable[[Value], int]


def rank(key: str) -> int:
    """How many tree heights ``key`` closes a node at (0 for most keys)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    h = int.from_bytes(digest, "big")
    return (64 - h.bit_length()) // RANK_BITS if h else _MAX_RANK


# What a parent records about one child: (last key, id, entry count, byte total).
Summary = tuple[str, str, int, int]


class Node:
    """A decoded node. Leaves use ``values``; internal nodes use ``ids``/``counts``/``sizes``."""

    __slots__ = ("count", "counts", "height", "ids", "keys", "size", "sizes", "values")

    def __init__(
        self,
        height: int,
        keys: list[str],
        *,
        values: list[Value] | None = None,
        ids: list[str] | None = None,
        counts: list[int] | None = None,
        sizes: list[int] | None = None,
        size_of: SizeOf | None = None,
    ) -> None:
        self.height = height
        self.keys = keys
        self.values = values or []
        self.ids = ids or []
        self.counts = counts or []
        self.sizes = sizes or []
        if height == 0:
            self.count = len(keys)
            self.size = sum(map(size_of, self.values)) if size_of is not None else 0
        else:
            self.count = sum(self.counts)
            self.size = sum(self.sizes)

    @property
    def is_leaf(self) -> bool:
        return self.height == 0

    def encode(self) -> bytes:
        if self.height == 0:
            body: list[Any] = [0, self.keys, self.values]
        else:
            body = [self.height, self.keys, self.ids, self.counts, self.sizes]
        return canonical.dumps(body)

    @classmethod
    def decode(cls, body: bytes, size_of: SizeOf) -> Node:
        raw = canonical.loads(body)
        if raw[0] == 0:
            return cls(0, raw[1], values=raw[2], size_of=size_of)
        return cls(raw[0], raw[1], ids=raw[2], counts=raw[3], sizes=raw[4])


def node_id(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


EMPTY_LEAF = Node(0, []).encode()
EMPTY_ROOT = node_id(EMPTY_LEAF)


class NodeSource(Protocol):
    """Where encoded nodes are read from (a table, or a dict in tests)."""

    def load(self, node_id: str) -> bytes: ...

    def load_many(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        """Several nodes in one round trip."""
        ...


class NodeCache:
    """A bounded LRU of decoded nodes, shared by every tree read through one store.

    ``reads`` counts nodes the trees had to read from their source and ``fetches`` the round
    trips that took.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._nodes: OrderedDict[str, Node] = OrderedDict()
        self._lock = threading.Lock()  # trees are read from worker threads concurrently
        self.reads = 0
        self.fetches = 0

    def get(self, key: str) -> Node | None:
        with self._lock:
            node = self._nodes.get(key)
            if node is not None:
                self._nodes.move_to_end(key)
            return node

    def put(self, key: str, node: Node) -> None:
        with self._lock:
            self._nodes[key] = node
            self._nodes.move_to_end(key)
            if len(self._nodes) > self.capacity:
                self._nodes.popitem(last=False)


class Rewrite(NamedTuple):
    """The result of :meth:`Tree.apply`: the new root and every node it encoded; and, for
    the garbage collector's books, the old nodes it re-chunked (``replaced``: those not among
    ``nodes`` left the tree) and the values it put in and took out (``added``/``removed``:
    an overwrite is both)."""

    root: str
    nodes: dict[str, bytes]
    replaced: frozenset[str] = frozenset()
    added: tuple[Value, ...] = ()
    removed: tuple[Value, ...] = ()


class Tree:
    """Read and rewrite trees whose nodes come from ``source``."""

    def __init__(self, source: NodeSource, *, size_of: SizeOf, cache: NodeCache | None = None):
        self.source = source
        self.size_of = size_of
        self.cache = cache if cache is not None else NodeCache()

    def node(self, nid: str) -> Node:
        node = self.cache.get(nid)
        if node is None:
            self.cache.reads += 1
            self.cache.fetches += 1
            node = Node.decode(self.source.load(nid), self.size_of)
            self.cache.put(nid, node)
        return node

    def prefetch(self, ids: Iterable[str]) -> None:
        """Bring the nodes among ``ids`` that are not cached into the cache in one fetch."""
        cache = self.cache
        missing = [nid for nid in dict.fromkeys(ids) if cache.get(nid) is None]
        if not missing:
            return
        cache.reads += len(missing)
        cache.fetches += 1
        for nid, body in self.source.load_many(missing).items():
            cache.put(nid, Node.decode(body, self.size_of))

    def prefetch_paths(self, root: str, keys: Sequence[str]) -> None:
        """Cache every node on the paths to sorted ``keys``: one fetch per tree level."""
        level: list[tuple[str, int, int]] = [(root, 0, len(keys))]  # node, its slice of keys
        while level and keys:
            self.prefetch(nid for nid, _, _ in level)
            below: list[tuple[str, int, int]] = []
            for nid, lo, hi in level:
                node = self.node(nid)
                if node.is_leaf:
                    continue
                while lo < hi:
                    child = bisect_left(node.keys, keys[lo])
                    if child == len(node.keys):
                        break  # past the last key of the tree
                    end = bisect_right(keys, node.keys[child], lo, hi)
                    below.append((node.ids[child], lo, end))
                    lo = end
            level = below

    def stats(self, root: str) -> tuple[int, int]:
        """(entry count, byte total) of the whole tree, read off the root."""
        node = self.node(root)
        return node.count, node.size

    def get(self, root: str, key: str) -> Value | None:
        node = self.node(root)
        while not node.is_leaf:
            i = bisect_left(node.keys, key)
            if i == len(node.keys):
                return None
            node = self.node(node.ids[i])
        i = bisect_left(node.keys, key)
        if i < len(node.keys) and node.keys[i] == key:
            return node.values[i]
        return None

    def build(self, entries: Iterable[tuple[str, Value]]) -> Rewrite:
        """A tree from entries sorted by key with unique keys (the bulk loader)."""
        builder = _Builder(self)
        for key, value in entries:
            builder.add(0, (key, value), key, rank(key))
            builder.added.append(value)
        return builder.rewrite()

    def apply(self, root: str, changes: Iterable[tuple[str, Value | None]]) -> Rewrite:
        """Apply changes sorted by key (unique keys); a ``None`` value deletes the key.

        Walks the old tree in key order next to the changes, re-chunking only where a change
        lands and reusing every untouched subtree by id.
        """
        pending = _Pending(iter(changes))
        if pending.head is None:
            return Rewrite(root, {})
        builder = _Builder(self)
        self._walk(root, pending, builder)
        while pending.head is not None:
            key, value = pending.pop()
            if value is not None:
                builder.add(0, (key, value), key, rank(key))
                builder.added.append(value)
        return builder.rewrite()

    def _walk(self, nid: str, pending: _Pending, builder: _Builder) -> None:
        node = self.node(nid)
        builder.replaced.add(nid)
        if node.is_leaf:
            self._merge_leaf(node, pending, builder)
            return
        height = node.height
        keys, ids, counts, sizes = node.keys, node.ids, node.counts, node.sizes
        last = len(keys) - 1
        i = 0
        while i <= last:
            head = pending.head
            if builder.empty_below(height):
                # Children before the one holding the next change are untouched; all but the
                # last close at exactly this height (they close a child, not this node), so
                # they are reused as they are, in one step.
                stop = last if head is None else min(bisect_left(keys, head[0], i), last)
                if stop > i:
                    builder.extend(
                        height,
                        zip(keys[i:stop], ids[i:stop], counts[i:stop], sizes[i:stop], strict=True),
                    )
                    i = stop
                    continue
                if i == last and (head is None or head[0] > keys[i]):
                    r = rank(keys[i])
                    # the last child is reused if it is closed by its own key or nothing follows
                    if r >= height or head is None:
                        builder.add(height, (keys[i], ids[i], counts[i], sizes[i]), keys[i], r)
                        return
            self._walk(ids[i], pending, builder)
            i += 1

    @staticmethod
    def _merge_leaf(node: Node, pending: _Pending, builder: _Builder) -> None:
        keys, values = node.keys, node.values
        last = len(keys) - 1
        i = 0
        while i <= last:
            head = pending.head
            stop = last if head is None else min(bisect_left(keys, head[0], i), last)
            if stop > i:
                # untouched entries; inside a leaf only the last key can close anything
                builder.extend(0, zip(keys[i:stop], values[i:stop], strict=True))
                i = stop
                continue
            if head is not None and head[0] <= keys[i]:
                key, value = pending.pop()
                if key == keys[i]:
                    builder.removed.append(values[i])
                    i += 1
                if value is not None:
                    builder.add(0, (key, value), key, rank(key))
                    builder.added.append(value)
                continue
            builder.add(0, (keys[i], values[i]), keys[i], rank(keys[i]))
            i += 1


class _Pending:
    """A one-item lookahead over the sorted changes."""

    __slots__ = ("_it", "head")

    def __init__(self, it: Iterator[tuple[str, Value | None]]) -> None:
        self._it = it
        self.head: tuple[str, Value | None] | None = next(it, None)

    def pop(self) -> tuple[str, Value | None]:
        item = self.head
        assert item is not None
        self.head = next(self._it, None)
        return item


class _Builder:
    """Streaming chunker: one open node per height, closed at boundary keys."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.levels: list[list[Any]] = [[]]
        self.lowest = _NO_LEVEL  # the lowest height with an open (non-empty) node
        self.nodes: dict[str, bytes] = {}
        self.replaced: set[str] = set()  # old nodes walked into
        self.added: list[Value] = []
        self.removed: list[Value] = []

    def rewrite(self) -> Rewrite:
        root = self.finish()
        return Rewrite(
            root, self.nodes, frozenset(self.replaced), tuple(self.added), tuple(self.removed)
        )

    def empty_below(self, height: int) -> bool:
        return self.lowest >= height

    def extend(self, height: int, items: Iterable[Any]) -> None:
        """Append items known not to close a node at ``height``."""
        while height >= len(self.levels):
            self.levels.append([])
        before = len(self.levels[height])
        self.levels[height].extend(items)
        if len(self.levels[height]) > before:
            self.lowest = min(self.lowest, height)

    def add(self, height: int, item: Any, key: str, r: int) -> None:
        while height >= len(self.levels):
            self.levels.append([])
        self.levels[height].append(item)
        self.lowest = min(self.lowest, height)
        if r > height:
            self._close(height, key, r)

    def _close(self, height: int, key: str, r: int) -> None:
        items = self.levels[height]
        self.levels[height] = []
        self.lowest = next(
            (h for h in range(height + 1, len(self.levels)) if self.levels[h]), _NO_LEVEL
        )
        if height == 0:
            keys, values = zip(*items, strict=True)
            node = Node(0, list(keys), values=list(values), size_of=self.tree.size_of)
        else:
            keys, ids, counts, sizes = zip(*items, strict=True)
            node = Node(height, list(keys), ids=list(ids), counts=list(counts), sizes=list(sizes))
        body = node.encode()
        nid = node_id(body)
        self.nodes[nid] = body
        self.tree.cache.put(nid, node)
        summary: Summary = (key, nid, node.count, node.size)
        self.add(height + 1, summary, key, r)

    def finish(self) -> str:
        """Close the open nodes bottom-up; the root is the first height left with one node."""
        height = 0
        while True:
            items = self.levels[height]
            above = any(self.levels[height + 1 :])
            if not above:
                if height == 0 and not items:
                    self.nodes[EMPTY_ROOT] = EMPTY_LEAF
                    return EMPTY_ROOT
                if height > 0 and len(items) == 1:
                    root: str = items[0][1]
                    return root
            if items:
                last = items[-1]
                self._close(height, last[0], 0)
            height += 1
