"""The caller's S3 credentials through the SDK (``client.auth.s3_credentials``) against the
real server: made (the secret shown once), listed without secrets, revoked, and an unknown
one's revocation is a typed error."""

from __future__ import annotations

import pytest

from lamina import AsyncClient, NotFoundError, S3CredentialData

pytestmark = pytest.mark.anyio


async def test_create_list_and_revoke(client: AsyncClient) -> None:
    credentials = client.auth.s3_credentials
    created = await credentials.create()
    assert created.access_key_id.startswith("LMS3")
    assert len(created.secret_access_key) >= 40
    assert created.secret_access_key not in repr(created)
    listed = {item.access_key_id: item async for item in credentials.list()}
    mine = listed[created.access_key_id]
    assert isinstance(mine, S3CredentialData)
    assert (mine.created_at, mine.revoked_at) == (created.created_at, None)
    await credentials.revoke(created.access_key_id)
    revoked = [
        item async for item in credentials.list() if item.access_key_id == created.access_key_id
    ]
    assert revoked[0].revoked_at is not None
    with pytest.raises(NotFoundError) as missing:
        await credentials.revoke("LMS3NOSUCHCREDENTIAL")
    assert missing.value.code == "s3_credential_not_found"
