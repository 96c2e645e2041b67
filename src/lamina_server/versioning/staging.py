"""Sharing database and disk work between concurrent uploads into the same session.

Many clients upload many small objects into one session at once. :class:`Staging` keeps the
metadata database and the disk from serialising them one request at a time: :meth:`Staging.put`
is a group commit (:mod:`lamina_server.storage.group_commit`). Finalizes that arrive while a
batch for their session is running wait for it, then the first of them takes all of them: it
claims their uploads in one :meth:`~lamina_server.storage.blobs.BlobStore.claim_many` per way
of claiming them (:class:`Claim`; one pack sync for all their bytes), then stages every entry
whose upload was claimed in one ``stage_put_many`` transaction. Each request still answers only after its own entry is
committed; a claim that fails (the token was used already) fails only its own request, and a
failed transaction (the session was closed meanwhile) every request of that batch, as it would
have one by one. Each request's journal entries (its audit record) land in the transaction that
stages its entry, and only if it does (:mod:`lamina_server.storage.journal`). Batches are keyed by (repository id, session id) and forgotten when no request
uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import Enum
from typing import Any

from lamina_server.storage import journal
from lamina_server.storage.blobs import BlobError, BlobStore
from lamina_server.storage.group_commit import GroupCommit
from lamina_server.versioning.models import Entry
from lamina_server.versioning.store import VersionStore


class Claim(Enum):
    """How a staged entry's address is claimed first (:meth:`BlobStore.claim_many`)."""

    PENDING = "pending"  # an upload a client was handed a token for
    IN_PLACE = "in place"  # the same, uploaded in place (Presigner.upload_url)
    INTERNAL = "internal"  # bytes the server wrote at an address it never handed out


_Key = tuple[str, str]
# path, entry, how its address is claimed (None: it is not an upload), the request's journal
# entries
_Put = tuple[str, Entry, Claim | None, tuple[Any, ...]]


class Staging:
    """Group-committed puts, per session, claiming their uploads first."""

    def __init__(self, versions: VersionStore, blobs: BlobStore) -> None:
        self._versions = versions
        self._blobs = blobs
        self._puts: dict[_Key, GroupCommit[_Put, Entry | BlobError]] = {}

    async def put(
        self,
        repository_id: str,
        session_id: str,
        path: str,
        entry: Entry,
        *,
        claim: Claim | None = None,
    ) -> Entry:
        """Stages ``entry`` at ``path``; returns it once it is committed to the database.

        With ``claim``, ``entry.address`` is a pending upload, claimed so in the same batch:
        the entry staged and returned carries the address the claim answers, and a failed
        claim raises its :class:`BlobError` (nothing is staged for it).
        """
        key = (repository_id, session_id)
        puts = self._puts.get(key)
        if puts is None:

            async def flush(items: Sequence[_Put]) -> list[Entry | BlobError]:
                return await self._flush(repository_id, session_id, items)

            puts = self._puts[key] = GroupCommit(flush)
        try:
            outcome = await puts.submit((path, entry, claim, journal.pending()))
        finally:
            if puts.idle and self._puts.get(key) is puts:
                del self._puts[key]
        if isinstance(outcome, BlobError):
            raise outcome
        return outcome

    async def put_all(
        self, repository_id: str, session_id: str, items: Sequence[tuple[str, Entry]]
    ) -> list[Entry]:
        """Stages every ``(path, entry)``, each entry's address a pending upload claimed first,
        in one transaction of the calling request (its journal entries land with it) — or
        none: a failed claim raises its :class:`BlobError`, a failed transaction its error, and
        the blobs claimed for them are handed to garbage collection. Returns the entries staged,
        in order, at the addresses their claims answered (a path given twice: the later wins).
        """
        # The addresses were picked for this request and never handed out: claimed once.
        claimed = await self._blobs.claim_many([entry.address for _, entry in items], internal=True)
        staged = [
            (path, replace(entry, address=address))
            for (path, entry), address in zip(items, claimed, strict=True)
            if not isinstance(address, BlobError)
        ]
        try:
            for address in claimed:
                if isinstance(address, BlobError):
                    raise address
            await self._versions.stage_put_many(repository_id, session_id, staged)
        except Exception:
            if staged:
                await self._versions.release_unstaged(repository_id, [e for _, e in staged])
            raise
        return [entry for _, entry in staged]

    async def _flush(
        self, repository_id: str, session_id: str, items: Sequence[_Put]
    ) -> list[Entry | BlobError]:
        outcomes: list[Entry | BlobError] = [item[1] for item in items]
        for how in Claim:
            claims = [index for index, item in enumerate(items) if item[2] is how]
            if not claims:
                continue
            claimed = await self._blobs.claim_many(
                [items[index][1].address for index in claims],
                in_place=how is Claim.IN_PLACE,
                internal=how is Claim.INTERNAL,
            )
            for index, address in zip(claims, claimed, strict=True):
                entry = items[index][1]
                outcomes[index] = (
                    address if isinstance(address, BlobError) else replace(entry, address=address)
                )
        # One entry per path: the later of two puts to a path wins, as it would alone.
        staged = [
            (item, outcome)
            for item, outcome in zip(items, outcomes, strict=True)
            if isinstance(outcome, Entry)
        ]
        latest = {item[0]: outcome for item, outcome in staged}
        if latest:
            try:
                with journal.carrying(entry for item, _ in staged for entry in item[3]):
                    await self._versions.stage_put_many(
                        repository_id, session_id, list(latest.items())
                    )
            except Exception:
                # The uploads are claimed and will never be staged: garbage, once collected.
                orphans = [entry for item, entry in staged if item[2] is not None]
                if orphans:
                    await self._versions.release_unstaged(repository_id, orphans)
                raise
        return outcomes
