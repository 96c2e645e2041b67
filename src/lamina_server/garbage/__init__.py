"""Garbage collection: tree nodes and blobs nothing can reach any more are removed.

**What is reachable.** In a repository: the tree of HEAD, the tree of every commit younger than
the repository's ``retention_days`` (older commits are *stale*: the contract says their objects
can no longer be listed or read), the base commit of every open session (open or held for
approval), and every blob an open session staged. Nothing of a soft-deleted repository is
reachable once the grace period after its deletion has passed. Tree nodes are shared between
commits and, being content-addressed, between repositories; blobs are shared by copies. An item
stays while any repository reaches it.

**Cost follows the garbage.** No run marks the repositories. The engine keeps books in the
transactions that change what is reachable (:mod:`lamina_server.versioning.books`): for each
repository, the nodes of its HEAD tree and how many HEAD entries hold each blob address; and a
log of *candidates*, items a repository let go of and when. A commit's rewrite knows which old
nodes it re-chunked and which entries it put in and took out: the re-chunked nodes not in the
new tree, and the addresses whose count fell to zero, are released at the commit's time. A
rollback releases what its session had staged. Each of these costs what the change costs. A
run (:class:`Collector`) reads only the candidates whose holds have expired:

* released by a commit: older than the repository's retention window (the last commit that
  held the item is then older still: it is beyond retention), and older than the base commit
  of each of the repository's open sessions (a base commit from before the release may still
  hold it); released by a rollback: older than the grace period; released by a repository
  that is deleted: once it was deleted longer than the grace period ago;
* and then an item is garbage only if nothing else holds it: no repository's HEAD, no other
  candidate row (another repository whose hold has not expired), no open session's staging.

Its cost is proportional to the expired candidates, whatever the size of the repositories.

**Safe while writers run.** The judgement and the deletion of the nodes and the blobs' rows
happen in one write transaction (``gc_condemned`` then lists the blobs whose bytes go next;
their bytes are deleted after it commits, and a crash in between leaves the list for the next
run). A writer can only reference an item it has seen in a reachable view — a fresh upload's
address (never released), a session's base tree or staging (held by the open session), a
HEAD (held by the books) — and it updates the books in the transaction that references it, so
a judgement either sees the new holder or precedes the write, when nothing could reach the
item any more. Nothing released within the grace period (:data:`GRACE_SECONDS`) is
collected, which covers a writer that read a view just before it let go of the item.

Repositories whose HEAD is not in the books yet (data directories from before they were kept)
are put in with one walk of their HEAD tree before a run collects anything. One collector
runs at a time across processes sharing a database (a lease, :mod:`.periodic`).
"""

from __future__ import annotations

from lamina_server.garbage.collector import GRACE_SECONDS, Collector, Report
from lamina_server.garbage.periodic import collect_once, holder_name, run_periodically

__all__ = [
    "GRACE_SECONDS",
    "Collector",
    "Report",
    "collect_once",
    "holder_name",
    "run_periodically",
]
