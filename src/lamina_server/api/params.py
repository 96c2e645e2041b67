"""Route parameters shared by the routers: one definition each, documented once.

A string the handler checks documents what it accepts (``minLength: 1`` where it refuses an
empty one; an object path's rules as a ``pattern`` and its byte limit as ``maxLength``) through
``json_schema_extra``: the handler's own check keeps answering, with its own code
(``invalid_path`` for a path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query
from pydantic.config import JsonDict

from lamina_server.api.deps import Services, get_services
from lamina_server.api.pagination import PageParams, page_params
from lamina_server.api.validation import MAX_DELIMITER_CHARS, MAX_PATH_BYTES

ORG = "/organizations/{organization}"
REPO = f"{ORG}/repositories/{{repository}}"

OrgName = Annotated[str, Path(description="Organization slug")]
RepoName = Annotated[str, Path(description="Repository name")]
SessionPathId = Annotated[str, Path(description="Session ID")]
CommitId = Annotated[str, Path(description="Commit ID")]

NON_EMPTY: JsonDict = {"minLength": 1}
# validate_path's rules: '/'-separated segments without NUL, none of them empty, '.' or '..'.
_SEGMENT = r"(?:[^/\u0000.][^/\u0000]*|\.[^/\u0000.][^/\u0000]*|\.\.[^/\u0000]+)"
PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
_NO_NUL = r"^[^\u0000]*$"
# A length in characters: a true bound of a limit in bytes of UTF-8.
PATH_SCHEMA: JsonDict = {"minLength": 1, "maxLength": MAX_PATH_BYTES, "pattern": PATH_PATTERN}
PREFIX_SCHEMA: JsonDict = {"maxLength": MAX_PATH_BYTES, "pattern": _NO_NUL}
DELIMITER_SCHEMA: JsonDict = {"maxLength": MAX_DELIMITER_CHARS, "pattern": _NO_NUL}
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
Prefix = Annotated[
    str | None,
    Query(description="Only paths starting with this", json_schema_extra=PREFIX_SCHEMA),
]
Delimiter = Annotated[
    str | None,
    Query(
        description="Group paths by this (e.g. '/') into prefixes",
        json_schema_extra=DELIMITER_SCHEMA,
    ),
]
UploadId = Annotated[str, Query(description="Multipart upload ID", json_schema_extra=NON_EMPTY)]
UploadToken = Annotated[
    str, Query(description="Token from POST /object/multipart", json_schema_extra=NON_EMPTY)
]
Pages = Annotated[PageParams, Depends(page_params)]
ServicesDep = Annotated[Services, Depends(get_services)]
