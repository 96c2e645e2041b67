"""The official tilde-sdk's and cerebral-sdk's "Connectors and Imports" README flows, run
unchanged against the server and a real SeaweedFS (only the connector's endpoint and keys
are this test's)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import tilde
from tilde.exceptions import GoneError

from lamina.testing import LocalServer
from tests.server import s3_source
from tests.server.seaweedfs import SeaweedFS

cerebral = pytest.importorskip("cerebral")


@pytest.fixture
def bucket(seaweedfs: SeaweedFS, unique_name: Callable[..., str]) -> str:
    name = unique_name("readme")
    s3_source.create_bucket(seaweedfs, name)
    s3_source.put_objects(
        seaweedfs,
        name,
        {
            "datasets/train/a.csv": b"x\n1\n",
            "datasets/test/b.csv": b"x\n2\n",
            "data/c.csv": b"x\n3\n",
        },
    )
    return name


def test_tilde_readme_flow(
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    unique_name: Callable[..., str],
) -> None:
    with tilde.Client(
        api_key=local_server.api_key, endpoint_url=local_server.endpoint_url
    ) as client:
        org = client.organizations.get(local_server.org)
        repo_name = org.repositories.create(unique_name("readme")).name
        repo = client.repository(f"{local_server.org}/{repo_name}")
        connectors = org.connectors

        # S3
        conn = connectors.create(
            name="production-s3",
            type="s3",
            source_uri=f"s3://{bucket}/datasets/",
            config=s3_source.config(seaweedfs),
        )
        assert (conn.type, conn.source_uri, conn.disabled) == (
            "s3",
            f"s3://{bucket}/datasets/",
            False,
        )

        # Attach to a repo
        repo.connectors.attach(conn.id)
        assert [(c.name, c.type) for c in repo.connectors.list()] == [("production-s3", "s3")]

        job = repo.imports.create_from_connector(
            connector_id=conn.id,
            destination_path="imported/",
            source_prefix="datasets/",
            commit_message="Import production datasets",
        )
        deadline = time.monotonic() + 60
        while job.status not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
            job.refresh()
        assert (job.status, job.objects_imported, job.error) == ("completed", 2, None)
        assert job.commit_id

        source = org.repositories.create(unique_name("source")).name
        with client.repository(f"{local_server.org}/{source}").session() as session:
            session.objects.put("datasets/train/t.bin", b"train")
            session.commit("training data")
        job = repo.imports.create_from_repository(
            repo_path=f"{local_server.org}/{source}",
            destination_path="external/",
            source_prefix="datasets/train/",
            commit_message="Import training data",
        )
        deadline = time.monotonic() + 60
        while job.status not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
            job.refresh()
        assert (job.status, job.objects_imported) == ("completed", 1)
        paths = {entry.path for entry in next(iter(repo.commits.list(amount=1))).objects.list()}
        assert paths == {"imported/train/a.csv", "imported/test/b.csv", "external/t.bin"}

        conn.delete()
        with pytest.raises(GoneError):
            connectors.get(conn.id)


def test_cerebral_readme_flow(
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    unique_name: Callable[..., str],
) -> None:
    client = cerebral.Client(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url)
    repo_name = client.organization(local_server.org).repositories.create(unique_name("cer")).name
    repo = client.repository(f"{local_server.org}/{repo_name}")

    # Org-level connectors
    connectors = client.organizations.connectors(local_server.org)
    conn = connectors.create(
        "my-s3", "s3", {"bucket": bucket, "region": "us-east-1", **s3_source.config(seaweedfs)}
    )
    assert (conn.name, conn.type, conn.disabled) == ("my-s3", "s3", False)

    # Attach to repo
    repo.connectors.attach(conn.id)
    assert [c.id for c in repo.connectors.list()] == [conn.id]

    # Import
    job_id = repo.imports.from_connector(
        connector_id=conn.id, destination_path="imported/", source_prefix="data/"
    )
    deadline = time.monotonic() + 60
    status = repo.imports.status(job_id)
    while status.status not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        status = repo.imports.status(job_id)
    assert (status.status, status.objects_imported) == ("completed", 1)
    connectors.delete(conn.id)
    with pytest.raises(cerebral.GoneError):
        connectors.get(conn.id)
