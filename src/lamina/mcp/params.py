"""The tools' parameters, with the descriptions their input schemas carry."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Organization = Annotated[str, Field(description="Organization name (slug), e.g. 'acme'")]
Repository = Annotated[str, Field(description="Repository as 'org/repo', e.g. 'acme/datasets'")]
SessionId = Annotated[str, Field(description="Session ID, from create_session")]
ObjectPath = Annotated[str, Field(description="Object path in the repository, e.g. 'raw/a.csv'")]
Prefix = Annotated[str, Field(description="Only paths under this prefix ('' for all)")]
Amount = Annotated[int, Field(description="Most items to return", gt=0, le=1000)]
