"""Route parameters shared by the routers: one definition each, documented once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query

from lamina_server.api.pagination import PageParams, page_params

ORG = "/organizations/{organization}"
REPO = f"{ORG}/repositories/{{repository}}"

OrgName = Annotated[str, Path(description="Organization slug")]
RepoName = Annotated[str, Path(description="Repository name")]
SessionPathId = Annotated[str, Path(description="Session ID")]
CommitId = Annotated[str, Path(description="Commit ID")]
ObjectPath = Annotated[str, Query(description="Object path (no leading /)")]
SessionId = Annotated[str, Query(description="Session ID")]
ReadSession = Annotated[
    str | None, Query(description="Session to read from (default: the latest commit)")
]
Ref = Annotated[str | None, Query(description="Commit ID to read at; exclusive with session_id")]
Prefix = Annotated[str | None, Query(description="Only paths starting with this")]
UploadId = Annotated[str, Query(description="Multipart upload ID")]
UploadToken = Annotated[str, Query(description="Token from POST /object/multipart")]
Pages = Annotated[PageParams, Depends(page_params)]
