"""Route parameters shared by the routers: one definition each, documented once.

A required string the handler refuses when empty documents ``minLength: 1`` (and an object
path its byte limit as ``maxLength``) through ``json_schema_extra``: the handler's own check
keeps answering, with its own code (``invalid_path`` for a path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query
from pydantic.config import JsonDict

from lamina_server.api.pagination import PageParams, page_params
from lamina_server.api.validation import MAX_PATH_BYTES

ORG = "/organizations/{organization}"
REPO = f"{ORG}/repositories/{{repository}}"

OrgName = Annotated[str, Path(description="Organization slug")]
RepoName = Annotated[str, Path(description="Repository name")]
SessionPathId = Annotated[str, Path(description="Session ID")]
CommitId = Annotated[str, Path(description="Commit ID")]

NON_EMPTY: JsonDict = {"minLength": 1}
# Characters, so a true bound of a limit in bytes of UTF-8; the segment rules are described.
PATH_SCHEMA: JsonDict = {"minLength": 1, "maxLength": MAX_PATH_BYTES}
PATH_RULES = (
    f"at most {MAX_PATH_BYTES} bytes of UTF-8, no NUL, '/'-separated segments none of which "
    "is empty, '.' or '..'"
)


ObjectPath = Annotated[
    str, Query(description=f"Object path: {PATH_RULES}", json_schema_extra=PATH_SCHEMA)
]
SessionId = Annotated[str, Query(description="Session ID", json_schema_extra=NON_EMPTY)]
ReadSession = Annotated[
    str | None, Query(description="Session to read from (default: the latest commit)")
]
Ref = Annotated[str | None, Query(description="Commit ID to read at; exclusive with session_id")]
Prefix = Annotated[str | None, Query(description="Only paths starting with this")]
UploadId = Annotated[str, Query(description="Multipart upload ID", json_schema_extra=NON_EMPTY)]
UploadToken = Annotated[
    str, Query(description="Token from POST /object/multipart", json_schema_extra=NON_EMPTY)
]
Pages = Annotated[PageParams, Depends(page_params)]
