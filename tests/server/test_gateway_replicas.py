"""The S3 gateway on two server replicas (one PostgreSQL, one SeaweedFS: the deployment of
``test_replicated.py``): a credential made on one works on the other, writes through one read
through the other, and a credential revoked on one is refused by the other on its next
request — nothing is cached past a revocation."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import RepoHttp
from tests.server.gateway_clients import new_credential, s3_client, s3_error
from tests.server.test_replicated import Deployment, deployment  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow


def test_a_credential_revoked_on_one_replica_is_refused_by_the_other(
    deployment: Deployment,  # noqa: F811
) -> None:
    first, second = deployment.endpoints
    with deployment.client(first) as api:
        made = api.post(f"/organizations/{deployment.first.org}/repositories", json={"name": "s3"})
        assert made.status_code == 201, made.text
        repo = RepoHttp(api, f"{deployment.first.org}/s3")
        credential = new_credential(api)
        session = repo.session()
        bucket = f"{deployment.first.org}.s3"
        on_first, on_second = (
            s3_client(f"{first}/s3", credential),
            s3_client(f"{second}/s3", credential),
        )
        on_second.put_object(Bucket=bucket, Key=f"session-{session}/a.txt", Body=b"from the second")
        repo.commit(session)
        assert (
            on_first.get_object(Bucket=bucket, Key="head/a.txt")["Body"].read()
            == b"from the second"
        )
        assert (
            on_second.get_object(Bucket=bucket, Key="head/a.txt")["Body"].read()
            == b"from the second"
        )
        revoked = api.delete(f"/auth/s3-credentials/{credential['access_key_id']}")
        assert revoked.status_code == 204
    with pytest.raises(ClientError) as refused:
        on_second.get_object(Bucket=bucket, Key="head/a.txt")
    assert s3_error(refused) == (403, "InvalidAccessKeyId")
