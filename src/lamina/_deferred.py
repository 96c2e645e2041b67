"""Deferred set-up I/O: a hand-written async/blocking pair (the generator never touches it).

Some handles need one request before they are useful: a new session must be created, a
repository or commit handle must be loaded before its properties can be read. The blocking API
keeps tilde-sdk's idioms and does that request implicitly (``repo.session()`` creates the session,
``repo.description`` loads the repository on first access). Async code cannot do I/O from a
constructor or a property, so the async twin makes it explicit: the handle is awaitable, and
awaiting it runs the request (``await repo.session()``, ``await repo.refresh()``).

Generated code inherits from :class:`AsyncDeferred` in ``_async`` and from :class:`Deferred` in
``_sync`` (the generator's ``Async`` prefix rule), and calls the same three private methods in
both modes:

- ``_prepare()``: the request itself, written once in the resource (idempotent).
- ``_require()``: before reading state. Blocking: runs ``_prepare()`` if needed. Async: raises
  :class:`~lamina.LaminaError` telling the caller to await the handle first.
- ``_started()``: returns the handle. Blocking: prepared now. Async: prepared when awaited or
  entered with ``async with``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from lamina._errors import LaminaError

_A = TypeVar("_A", bound="AsyncDeferred")
_S = TypeVar("_S", bound="Deferred")


class AsyncDeferred:
    """Async half: awaiting the handle runs its set-up request and returns the handle."""

    def _is_ready(self) -> bool:
        raise NotImplementedError

    async def _prepare(self) -> None:
        raise NotImplementedError

    def _require(self) -> None:
        if not self._is_ready():
            raise LaminaError(
                f"{self!r} has not been set up yet: await it first "
                "(e.g. `await repo.session()`, `await repo.refresh()`)"
            )

    def _started(self: _A) -> _A:
        return self

    async def _prepared(self: _A) -> _A:
        await self._prepare()
        return self

    def __await__(self: _A) -> Generator[Any, None, _A]:
        return self._prepared().__await__()


class Deferred:
    """Blocking half: the set-up request runs on first need, or at once for ``_started()``."""

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        raise NotImplementedError

    def _require(self) -> None:
        if not self._is_ready():
            self._prepare()

    def _started(self: _S) -> _S:
        self._require()
        return self
