"""Ordered, forward-only cursors over trees, staged overlays and differences.

Every cursor has the same three operations: ``peek()`` (the current ``(key, payload)`` or
``None`` when exhausted), ``advance()`` and ``seek(key)`` (move forward to the first key
``>= key``; never backwards). Listings and diffs are written once against this shape.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Protocol

from lamina_server.versioning.tree import Node, Tree, Value

_MAX_READAHEAD = 16


class Cursor(Protocol):
    def peek(self) -> tuple[str, Any] | None: ...
    def advance(self) -> None: ...
    def seek(self, key: str) -> None: ...


class _Frame:
    __slots__ = ("id", "idx", "node")

    def __init__(self, nid: str, node: Node, idx: int = 0) -> None:
        self.id = nid
        self.node = node
        self.idx = idx


class TreeCursor:
    """Walks one tree's entries in key order.

    The frame stack runs from the root down. Descent is lazy: the last frame may be an internal
    node whose ``idx`` child has not been loaded yet, so skipping whole subtrees (diff) costs
    no reads of the skipped nodes.
    """

    def __init__(self, tree: Tree, root: str, *, readahead: bool = False) -> None:
        self.tree = tree
        node = tree.node(root)
        self.frames: list[_Frame] = [_Frame(root, node)] if node.keys else []
        # With readahead, a miss on the node right after the previous one (a scan) fetches
        # the siblings that follow it too, in one round trip, doubling the window on each such
        # miss up to 16 nodes; a miss after a jump fetches just the node.
        self.readahead = readahead
        self.window = 1

    def _push_child(self, parent: Node, idx: int, sequential: bool) -> None:
        cid = parent.ids[idx]
        if self.readahead and self.tree.cache.get(cid) is None:
            self.window = min(self.window * 2, _MAX_READAHEAD) if sequential else 1
            self.tree.prefetch(parent.ids[idx : idx + self.window])
        self.frames.append(_Frame(cid, self.tree.node(cid)))

    def _descend(self) -> _Frame | None:
        frames = self.frames
        while frames:
            top = frames[-1]
            if top.node.is_leaf:
                return top
            self._push_child(top.node, top.idx, True)
        return None

    def peek(self) -> tuple[str, Value] | None:
        top = self._descend()
        if top is None:
            return None
        return top.node.keys[top.idx], top.node.values[top.idx]

    def advance(self) -> None:
        if self._descend() is not None:
            self.frames[-1].idx += 1
            self._settle()

    def _settle(self) -> None:
        """Pop finished frames, stepping each parent on to its next child."""
        frames = self.frames
        while frames and frames[-1].idx >= len(frames[-1].node.keys):
            frames.pop()
            if frames:
                frames[-1].idx += 1

    def seek(self, key: str) -> None:
        if not key:
            return  # every key is >= "": nothing to move (and nothing to read)
        frames = self.frames
        popped = False
        while len(frames) > 1 and frames[-1].node.keys[-1] < key:
            frames.pop()
            popped = True
        if not frames:
            return
        # where a scan would go next: the child after the one left, or the pending child
        expected = frames[-1].idx + 1 if popped else frames[-1].idx
        while True:
            top = frames[-1]
            keys = top.node.keys
            i = bisect_left(keys, key, top.idx)
            if i == len(keys):
                frames.clear()  # only the root can end up here: every key is below `key`
                return
            top.idx = i
            if top.node.is_leaf:
                return
            sequential = i == expected
            self._push_child(top.node, i, sequential)
            expected = 0 if sequential else -1

    def pending_height(self) -> int:
        """Height of the child the cursor waits at the start of; -1 when on an entry."""
        top = self.frames[-1]
        return -1 if top.node.is_leaf else top.node.height - 1

    def descend_one(self) -> None:
        """Load the child the cursor waits at (see :meth:`pending_height`)."""
        top = self.frames[-1]
        if not top.node.is_leaf:
            self._push_child(top.node, top.idx, True)

    def starts(self) -> list[tuple[int, str]]:
        """The subtrees the cursor stands at the very start of, largest first.

        Each item is ``(depth, node_id)``; depth ``len(frames)`` is the not-yet-loaded child of
        the last frame.
        """
        frames = self.frames
        if not frames:
            return []
        found: list[tuple[int, str]] = []
        top = frames[-1]
        if not top.node.is_leaf:
            found.append((len(frames), top.node.ids[top.idx]))
        for depth in range(len(frames) - 1, -1, -1):
            if frames[depth].idx != 0:
                break
            found.append((depth, frames[depth].id))
        found.reverse()
        return found

    def skip(self, depth: int) -> None:
        """Step past the subtree :meth:`starts` reported at ``depth``."""
        del self.frames[depth:]
        if self.frames:
            self.frames[-1].idx += 1
            self._settle()


class DiffCursor:
    """The keys whose values differ between two trees: ``(key, (left, right))``.

    Identical subtrees are skipped by id whenever both sides stand at the start of the same
    node, so the cost follows the size of the difference, not of the trees.
    """

    def __init__(self, tree: Tree, left: str, right: str) -> None:
        self.left = TreeCursor(tree, left)
        self.right = TreeCursor(tree, right)
        self._current: tuple[str, tuple[Value | None, Value | None]] | None = None
        self._done = left == right

    def peek(self) -> tuple[str, tuple[Value | None, Value | None]] | None:
        if self._current is None and not self._done:
            self._current = self._next()
            self._done = self._current is None
        return self._current

    def advance(self) -> None:
        # both sides already stand past the current key (see _next)
        if self.peek() is not None:
            self._current = None

    def seek(self, key: str) -> None:
        if self._current is not None:
            if self._current[0] >= key:
                return
            self._current = None
        self.left.seek(key)
        self.right.seek(key)

    def _skip_shared(self) -> bool:
        """Step both sides past a subtree they both stand at the start of, if any."""
        left, right = self.left.frames, self.right.frames
        if not left or not right:
            return False
        a, b = left[-1], right[-1]
        if not a.node.is_leaf and not b.node.is_leaf:
            # both wait at a child: step over the run of children the two parents share
            run = _common_run(a.node.ids, a.idx, b.node.ids, b.idx)
            if run:
                a.idx += run
                b.idx += run
                self.left._settle()
                self.right._settle()
                return True
        if (not a.node.is_leaf or a.idx == 0) and (not b.node.is_leaf or b.idx == 0):
            right_ids = {nid: depth for depth, nid in self.right.starts()}
            for depth, nid in self.left.starts():
                other = right_ids.get(nid)
                if other is not None:
                    self.left.skip(depth)
                    self.right.skip(other)
                    return True
        return False

    def _skip_equal_entries(self) -> None:
        """Both sides stand on equal entries: step over the run of equal entries in the leaves."""
        a, b = self.left.frames[-1], self.right.frames[-1]
        run = _common_run(a.node.keys, a.idx, b.node.keys, b.idx)
        run = _common_run(a.node.values, a.idx, b.node.values, b.idx, run)
        a.idx += run
        b.idx += run
        self.left._settle()
        self.right._settle()

    def _next(self) -> tuple[str, tuple[Value | None, Value | None]] | None:
        left, right = self.left, self.right
        while True:
            if self._skip_shared():
                continue
            if left.frames and right.frames:
                # Descend one level at a time, the taller side first, so that shared subtrees
                # further down are still recognised (and skipped) before they are read.
                up_left, up_right = left.pending_height(), right.pending_height()
                if up_left >= 0 or up_right >= 0:
                    if up_left >= up_right:
                        left.descend_one()
                    if up_right >= up_left:
                        right.descend_one()
                    continue
            a = left.peek()
            b = right.peek()
            if a is None and b is None:
                return None
            if b is None or (a is not None and a[0] < b[0]):
                assert a is not None
                left.advance()
                return a[0], (a[1], None)
            if a is None or b[0] < a[0]:
                right.advance()
                return b[0], (None, b[1])
            if a[1] == b[1]:
                self._skip_equal_entries()
                continue
            left.advance()
            right.advance()
            return a[0], (a[1], b[1])


class OverlayCursor:
    """A session view: ``base`` with ``staged`` changes on top (``None`` hides a base key)."""

    def __init__(self, base: Cursor, staged: Cursor) -> None:
        self.base = base
        self.staged = staged

    def peek(self) -> tuple[str, Value] | None:
        base, staged = self.base, self.staged
        while True:
            s = staged.peek()
            b = base.peek()
            if s is None:
                return b
            if b is not None and b[0] < s[0]:
                return b
            if s[1] is not None:
                return s
            # a staged delete: hide the base entry under it, if any
            staged.advance()
            if b is not None and b[0] == s[0]:
                base.advance()

    def advance(self) -> None:
        current = self.peek()
        if current is None:
            return
        for side in (self.staged, self.base):
            item = side.peek()
            if item is not None and item[0] == current[0]:
                side.advance()

    def seek(self, key: str) -> None:
        self.base.seek(key)
        self.staged.seek(key)


class ChangesCursor:
    """A session's effective changes against its base: ``(key, (base, staged))``.

    Staged rows that change nothing (a put of the base entry) are passed over.
    """

    def __init__(self, base: Cursor, staged: Cursor) -> None:
        self.base = base
        self.staged = staged

    def peek(self) -> tuple[str, tuple[Value | None, Value | None]] | None:
        while True:
            s = self.staged.peek()
            if s is None:
                return None
            self.base.seek(s[0])
            b = self.base.peek()
            old = b[1] if b is not None and b[0] == s[0] else None
            if old != s[1]:
                return s[0], (old, s[1])
            self.staged.advance()

    def advance(self) -> None:
        if self.peek() is not None:
            self.staged.advance()

    def seek(self, key: str) -> None:
        self.staged.seek(key)


def _common_run(xs: list[Any], i: int, ys: list[Any], j: int, limit: int | None = None) -> int:
    """How many items from ``xs[i]`` and ``ys[j]`` on are equal pairwise (at most ``limit``).

    Found by bisection over slice comparisons, which run in C: a node's children or entries
    are compared a few dozen at a time rather than one by one in Python.
    """
    n = min(len(xs) - i, len(ys) - j)
    if limit is not None:
        n = min(n, limit)
    if xs[i : i + n] == ys[j : j + n]:
        return n
    low, high = 0, n  # xs[i:i+low] == ys[j:j+low]; the first ``high`` items differ somewhere
    while high - low > 1:
        mid = (low + high) // 2
        if xs[i : i + mid] == ys[j : j + mid]:
            low = mid
        else:
            high = mid
    return low
