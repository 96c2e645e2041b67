"""Retention as reads see it: a commit older than its repository's ``retention_days`` (other
than HEAD) is *stale*. The contract says a stale commit's objects can no longer be listed or
read, and garbage collection may already have removed them (:mod:`lamina_server.garbage`): a
read at one answers 410 ``commit_stale`` rather than whatever is left of it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lamina_server.api.deps import Services
from lamina_server.api.errors import ApiError
from lamina_server.repositories import RepositoryRecord
from lamina_server.versioning import CommitInfo


def is_stale(commit: CommitInfo, repo: RepositoryRecord, head: str) -> bool:
    """Whether ``commit`` is beyond the repository's retention (HEAD never is)."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=repo.retention_days)
    return commit.id != head and commit.creation_date < cutoff


async def check_readable(services: Services, repo: RepositoryRecord, *refs: str | None) -> None:
    """Refuses a read at any of ``refs`` (commit ids; None: HEAD) that is stale: 410."""
    named = [ref for ref in refs if ref is not None]
    if not named:
        return
    head = await services.versions.head(repo.id)
    for ref in named:
        if ref == head:
            continue
        commit = await services.versions.get_commit(repo.id, ref)
        if is_stale(commit, repo, head):
            raise ApiError(
                410,
                "commit_stale",
                f"commit {ref} is beyond the repository's retention ({repo.retention_days} "
                "days): its objects can no longer be listed or read",
            )
