"""The S3 gateway with real analytics clients no one here wrote — DuckDB's httpfs, pyarrow's
S3 filesystem, pandas — on ``/s3`` and on a port of its own (``--s3-port``), and a
read-and-write round trip on a server whose blob store is SeaweedFS. (The examples of
``docs/s3-gateway.md`` run with every page's, in tests/docs/test_examples.py.)

DuckDB's httpfs extension comes from the ``duckdb-extension-httpfs`` wheel (the same DuckDB
version), loaded from its file or placed where ``INSTALL httpfs`` finds it: nothing is
downloaded.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from lamina.testing import LocalServer
from tests.conftest import RepoHttp
from tests.server.gateway_clients import REGION, httpfs_extension, new_credential, s3_client
from tests.server.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory: pytest.TempPathFactory, s3_port: int) -> Iterator[LocalServer]:
    """A server of the module's own that also answers S3 at the root of ``s3_port``."""
    with LocalServer(
        data_dir=tmp_path_factory.mktemp("gateway"), server_args=["--s3-port", str(s3_port)]
    ) as server:
        yield server


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def test_duckdb_reads_parquet_at_a_commit_on_the_s3_port(
    gateway_server: LocalServer, s3_port: int
) -> None:
    with httpx.Client(
        base_url=f"{gateway_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {gateway_server.api_key}"},
    ) as api:
        created = api.post(
            f"/organizations/{gateway_server.org}/repositories", json={"name": "duck"}
        )
        assert created.status_code == 201, created.text
        repo = RepoHttp(api, f"{gateway_server.org}/duck")
        session = repo.session()
        table = pa.table({"n": list(range(1000)), "label": [f"row {i}" for i in range(1000)]})
        repo.put(session, "data/x.parquet", _parquet(table))
        repo.put(session, "data/y.parquet", _parquet(table.slice(0, 10)))
        commit = repo.commit(session)
        later = repo.session()
        repo.delete(later, "data/y.parquet")
        repo.commit(later)
        credential = new_credential(api)
    con = duckdb.connect()
    con.execute(f"LOAD '{httpfs_extension()}'")
    for setting, value in (
        ("s3_endpoint", f"127.0.0.1:{s3_port}"),
        ("s3_url_style", "path"),
        ("s3_use_ssl", False),
        ("s3_region", REGION),
        ("s3_access_key_id", credential["access_key_id"]),
        ("s3_secret_access_key", credential["secret_access_key"]),
    ):
        con.execute(f"SET {setting} = ?", [value])
    bucket = f"{gateway_server.org}.duck"
    query = f"SELECT count(*), sum(n) FROM 's3://{bucket}/{commit}/data/x.parquet'"
    assert con.sql(query).fetchone() == (1000, 499500)
    at_commit = f"SELECT count(*) FROM 's3://{bucket}/{commit}/data/*.parquet'"
    assert con.sql(at_commit).fetchone() == (1010,)
    at_head = f"SELECT count(*) FROM 's3://{bucket}/head/data/*.parquet'"
    assert con.sql(at_head).fetchone() == (1000,)  # the later commit deleted y.parquet
    label = con.sql(f"SELECT label FROM 's3://{bucket}/{commit}/data/x.parquet' WHERE n = 7")
    assert label.fetchone() == ("row 7",)


def test_pyarrow_reads_lists_and_writes_into_a_session(
    local_server: LocalServer, api: httpx.Client, repo_http: RepoHttp
) -> None:
    credential = new_credential(api)
    host = local_server.endpoint_url.removeprefix("http://")
    s3fs = fs.S3FileSystem(
        access_key=credential["access_key_id"],
        secret_key=credential["secret_access_key"],
        endpoint_override=f"{host}/s3",
        scheme="http",
        region=REGION,
    )
    bucket = repo_http.repository.replace("/", ".")
    session = repo_http.session()
    table = pa.table({"x": list(range(5000))})
    pq.write_table(table, f"{bucket}/session-{session}/tables/t.parquet", filesystem=s3fs)
    big = os.urandom(12 * MIB)  # past pyarrow's part size: a multipart upload
    with s3fs.open_output_stream(f"{bucket}/session-{session}/raw/big.bin") as out:
        out.write(big)
    commit = repo_http.commit(session)
    assert pq.read_table(f"{bucket}/{commit}/tables/t.parquet", filesystem=s3fs).equals(table)
    infos = s3fs.get_file_info(fs.FileSelector(f"{bucket}/head", recursive=True))
    files = {info.path: info.size for info in infos if info.type == fs.FileType.File}
    assert files[f"{bucket}/head/raw/big.bin"] == len(big)
    with s3fs.open_input_file(f"{bucket}/head/raw/big.bin") as source:
        source.seek(5 * MIB)
        assert source.read(1000) == big[5 * MIB : 5 * MIB + 1000]
    assert repo_http.read("raw/big.bin") == big


def _seaweed_objects(seaweedfs: SeaweedFS, bucket: str) -> int:
    import boto3

    raw = boto3.client(
        "s3",
        endpoint_url=seaweedfs.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    count = 0
    for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        count += len(page.get("Contents", []))
    return count


def test_a_round_trip_with_the_blob_store_in_seaweedfs(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    import boto3

    bucket = "lamina-gateway-test"
    boto3.client(
        "s3",
        endpoint_url=seaweedfs.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    ).create_bucket(Bucket=bucket)
    with (
        LocalServer(
            data_dir=tmp_path / "server", blob_store=seaweedfs.url(bucket, "blobs")
        ) as server,
        httpx.Client(
            base_url=f"{server.endpoint_url}/api/v1",
            headers={"Authorization": f"Bearer {server.api_key}"},
        ) as api,
    ):
        assert (
            api.post(f"/organizations/{server.org}/repositories", json={"name": "weed"}).status_code
            == 201
        )
        repo = RepoHttp(api, f"{server.org}/weed")
        s3: Any = s3_client(f"{server.endpoint_url}/s3", new_credential(api))
        name = f"{server.org}.weed"
        session = repo.session()
        small, large = b"small object", os.urandom(11 * MIB)
        s3.put_object(Bucket=name, Key=f"session-{session}/small.txt", Body=small)
        s3.upload_fileobj(io.BytesIO(large), name, f"session-{session}/large.bin")
        commit = repo.commit(session)
        assert s3.get_object(Bucket=name, Key=f"{commit}/small.txt")["Body"].read() == small
        ranged = s3.get_object(Bucket=name, Key="head/large.bin", Range="bytes=1000-1999")
        assert ranged["Body"].read() == large[1000:2000]
        assert s3.get_object(Bucket=name, Key="head/large.bin")["Body"].read() == large
        before = _seaweed_objects(seaweedfs, bucket)
        copy_session = repo.session()
        s3.copy_object(
            Bucket=name,
            Key=f"session-{copy_session}/copy.bin",
            CopySource=f"{name}/head/large.bin",
        )
        repo.commit(copy_session)
        assert _seaweed_objects(seaweedfs, bucket) == before  # the copy wrote no bytes
        assert s3.get_object(Bucket=name, Key="head/copy.bin")["Body"].read() == large
