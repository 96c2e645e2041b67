"""The approval page, where ``web_url`` leads: a held change (its message, who asked for it,
the diff with paths and sizes, a text preview of its small files) and the forms that approve
or reject it; and the list of a repository's pending requests.

Reading needs ``GetSession`` and deciding ``ApproveSession``, as through the API; a decision
goes through the same :class:`~lamina_server.governance.approvals.Approvals` and leaves the same
audit entry (``ApproveSession``, outcome ``approved`` or ``rejected``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from lamina_server.api.access import Access, AccessDep, repository_page
from lamina_server.api.deps import Services
from lamina_server.api.errors import bad_request
from lamina_server.api.html import PageRoute, csrf_field, esc, page_path, redirect, render
from lamina_server.api.page_forms import PageForm
from lamina_server.api.params import ServicesDep, SessionPathId
from lamina_server.api.schemas import rfc3339
from lamina_server.authz import Action
from lamina_server.governance import audit
from lamina_server.governance.approvals import APPROVED, PENDING, ApprovalRecord
from lamina_server.principals import Committer
from lamina_server.repositories import RepositoryRecord
from lamina_server.versioning import ListingItem, Page

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE = "/approvals/{organization}/{repository}"
CHANGES_PER_PAGE = 500
LIST_PER_PAGE = 50
MAX_PREVIEWS = 20
PREVIEW_BYTES = 16 * 1024
MAX_MESSAGE_CHARS = 65536
MAX_REASON_CHARS = 4096

After = Annotated[str | None, Query(description="The diff's cursor: changes after this one")]
Offset = Annotated[int, Query(ge=0, description="Requests to skip")]


def _url(repo: RepositoryRecord, session_id: str | None = None) -> str:
    segments = ("approvals", repo.org_name, repo.name)
    return page_path(*segments, session_id) if session_id else page_path(*segments)


def _who(committer: Committer) -> str:
    return f"{esc(committer.type)} <b>{esc(committer.name)}</b>"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


# --- reading the change -----------------------------------------------------------------------


async def _changes(
    services: Services, repo: RepositoryRecord, record: ApprovalRecord, after: str | None
) -> Page[ListingItem] | None:
    """The change under review: a pending session's staged changes against its base, an
    approved one's commit against its first parent; nothing for one that was rolled back."""
    if record.state == PENDING:
        return await services.versions.diff(
            repo.id, session_id=record.session_id, after=after, amount=CHANGES_PER_PAGE
        )
    if record.state == APPROVED and record.commit_id is not None:
        commit = await services.versions.get_commit(repo.id, record.commit_id)
        return await services.versions.diff(
            repo.id,
            left=commit.parents[0] if commit.parents else None,
            right=commit.id,
            after=after,
            amount=CHANGES_PER_PAGE,
        )
    return None


async def _previews(services: Services, items: list[ListingItem]) -> list[tuple[str, str]]:
    """The text of the first :data:`MAX_PREVIEWS` added or modified files of at most
    :data:`PREVIEW_BYTES` that read as UTF-8 text."""
    previews: list[tuple[str, str]] = []
    for item in items:
        entry = item.entry
        if entry is None or entry.size > PREVIEW_BYTES or item.status == "removed":
            continue
        data = b"".join(
            [chunk async for chunk in services.blobs.read(entry.address, 0, entry.size)]
        )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            continue
        previews.append((item.path, text))
        if len(previews) == MAX_PREVIEWS:
            break
    return previews


# --- rendering --------------------------------------------------------------------------------


def _summary(repo: RepositoryRecord, record: ApprovalRecord) -> str:
    rows = [
        ("Repository", f"<code>{esc(repo.org_name)}/{esc(repo.name)}</code>"),
        ("State", f'<span class="state {esc(record.state)}">{esc(record.state)}</span>'),
        ("Message", f"<pre>{esc(record.message)}</pre>"),
        ("Requested by", _who(record.requested_by)),
        ("Requested at", esc(rfc3339(record.requested_at))),
        ("Session", f"<code>{esc(record.session_id)}</code>"),
    ]
    if record.sandbox_id:
        rows.append(("Sandbox", f"<code>{esc(record.sandbox_id)}</code>"))
    if record.metadata:
        pairs = "<br>".join(
            f"<code>{esc(key)}</code> = {esc(value)}" for key, value in record.metadata.items()
        )
        rows.append(("Metadata", pairs))
    if record.decided_by is not None:
        rows.append(("Decided by", _who(record.decided_by)))
    if record.decided_at is not None:
        rows.append(("Decided at", esc(rfc3339(record.decided_at))))
    if record.reason:
        rows.append(("Reason", esc(record.reason)))
    if record.commit_id:
        rows.append(("Commit", f'<code id="commit">{esc(record.commit_id)}</code>'))
    return "<dl>" + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows) + "</dl>"


def _size_cell(item: ListingItem) -> str:
    if item.entry is None:
        return "—"
    return f'<span title="{item.entry.size} bytes">{_size(item.entry.size)}</span>'


def _diff(changes: Page[ListingItem] | None, url: str) -> str:
    if changes is None:
        return "<h2>Changes</h2><p class='muted'>The change was rolled back; nothing landed.</p>"
    if not changes.items:
        return "<h2>Changes</h2><p class='muted'>No changes.</p>"
    rows = "".join(
        f"<tr><td><code>{esc(item.path)}</code></td>"
        f'<td class="{esc(item.status or "")}">{esc(item.status or "")}</td>'
        f"<td class='num'>{_size_cell(item)}</td></tr>"
        for item in changes.items
    )
    more = ""
    if changes.has_more and changes.next_offset is not None:
        more = (
            f"<p>More changes follow (at most {CHANGES_PER_PAGE} are shown at a time): "
            f'<a href="{esc(url)}?after={esc(changes.next_offset)}">next changes</a>.</p>'
        )
    return (
        f"<h2>Changes</h2><table id='changes'><thead><tr><th>Path</th><th>Change</th>"
        f"<th>Size</th></tr></thead><tbody>{rows}</tbody></table>{more}"
    )


def _preview_html(previews: list[tuple[str, str]]) -> str:
    if not previews:
        return ""
    parts = "".join(
        f"<h3><code>{esc(path)}</code></h3><pre class='preview'>{esc(text)}</pre>"
        for path, text in previews
    )
    return f"<h2>Previews</h2><p class='muted'>Small text files, as they would land.</p>{parts}"


def _decide(access: Access, record: ApprovalRecord, url: str) -> str:
    if record.state != PENDING:
        return "<p class='muted'>This request has been decided; the page is read-only.</p>"
    token = csrf_field(access)
    return (
        "<h2>Decision</h2><div class='decide'>"
        f'<form method="post" action="{esc(url)}/approve">{token}'
        '<label for="message">Commit message</label>'
        f'<textarea id="message" name="message" rows="3">{esc(record.message)}</textarea>'
        '<button type="submit" class="approve">Approve</button></form>'
        f'<form method="post" action="{esc(url)}/reject">{token}'
        '<label for="reason">Reason</label>'
        '<input type="text" id="reason" name="reason" maxlength="4096">'
        '<button type="submit" class="reject">Reject</button></form></div>'
    )


# --- routes -----------------------------------------------------------------------------------


@router.get(PAGE, dependencies=[repository_page(Action.GET_SESSION)])
async def pending_approvals(
    services: ServicesDep, access: AccessDep, offset: Offset = 0
) -> Response:
    repo = access.repo
    records, total = await services.approvals.page(
        organization_id=access.org.id,
        repository_id=repo.id,
        state=PENDING,
        limit=LIST_PER_PAGE,
        offset=offset,
    )
    rows = "".join(
        f'<tr><td><a href="{esc(_url(repo, record.session_id))}">'
        f"{esc(record.message.splitlines()[0] if record.message else record.session_id)}"
        f"</a></td><td>{_who(record.requested_by)}</td>"
        f"<td>{esc(rfc3339(record.requested_at))}</td></tr>"
        for record in records
    )
    title = f"Pending approvals in {repo.org_name}/{repo.name}"
    body = f"<h1>{esc(title)}</h1>"
    if rows:
        body += (
            "<table><thead><tr><th>Message</th><th>Requested by</th><th>Requested at</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
        )
    else:
        body += "<p class='muted'>Nothing is waiting for approval.</p>"
    if offset + len(records) < total:
        body += f'<p><a href="?offset={offset + LIST_PER_PAGE}">More requests</a></p>'
    return render(title, body, access=access)


@router.get(f"{PAGE}/{{session_id}}", dependencies=[repository_page(Action.GET_SESSION)])
async def approval_page(
    session_id: SessionPathId, services: ServicesDep, access: AccessDep, after: After = None
) -> Response:
    repo = access.repo
    record = await services.approvals.get(repo.id, session_id)
    url = _url(repo, session_id)
    changes = await _changes(services, repo, record, after or None)
    previews = await _previews(services, changes.items) if changes is not None else []
    body = (
        f"<h1>Approval request</h1>{_summary(repo, record)}{_diff(changes, url)}"
        f"{_preview_html(previews)}{_decide(access, record, url)}"
        f'<p><a href="{esc(_url(repo))}">All pending requests</a></p>'
    )
    return render(f"Approval: {record.message[:80]}", body, access=access)


@router.post(
    f"{PAGE}/{{session_id}}/approve", dependencies=[repository_page(Action.APPROVE_SESSION)]
)
async def approve_from_page(
    session_id: SessionPathId, form: PageForm, services: ServicesDep, access: AccessDep
) -> Response:
    message = form.get("message", "").strip()
    if len(message) > MAX_MESSAGE_CHARS:
        raise bad_request(f"message: at most {MAX_MESSAGE_CHARS} characters")
    audit.annotate(outcome="approved")
    await services.approvals.approve(
        access.repo.id, session_id, access.caller, message=message or None
    )
    return redirect(_url(access.repo, session_id))


@router.post(
    f"{PAGE}/{{session_id}}/reject", dependencies=[repository_page(Action.APPROVE_SESSION)]
)
async def reject_from_page(
    session_id: SessionPathId, form: PageForm, services: ServicesDep, access: AccessDep
) -> Response:
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise bad_request(f"reason: at most {MAX_REASON_CHARS} characters")
    audit.annotate(outcome="rejected", reason=reason)
    await services.approvals.reject(access.repo.id, session_id, access.caller, reason=reason)
    return redirect(_url(access.repo, session_id))
