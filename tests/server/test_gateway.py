"""The S3 gateway with boto3, a client no one here wrote, against the session's server under
``/s3``: S3 credentials, every read and write operation, ranges and conditions, listings and
their pagination, multipart uploads, deletes and copies, and writes refused outside a
session."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any

import boto3.s3.transfer
import httpx
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from lamina.testing import LocalServer
from lamina_server.gateway.tables import s3_credentials
from lamina_server.secrets import Sealer, SecretScope, load_key
from lamina_server.storage.db import Database, sqlite_url
from tests.conftest import RepoHttp
from tests.server.gateway_clients import new_credential, s3_client, s3_error

MIB = 1024 * 1024


@pytest.fixture
def credential(api: httpx.Client) -> dict[str, str]:
    return new_credential(api)


@pytest.fixture
def s3(local_server: LocalServer, credential: dict[str, str]) -> Iterator[Any]:
    client = s3_client(f"{local_server.endpoint_url}/s3", credential)
    yield client
    client.close()


@pytest.fixture
def bucket(repo_http: RepoHttp) -> str:
    return repo_http.repository.replace("/", ".")


# --- credentials --------------------------------------------------------------------------------


def test_credentials_are_shown_once_listed_without_secrets_and_revoked(api: httpx.Client) -> None:
    created = api.post("/auth/s3-credentials")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"access_key_id", "secret_access_key", "created_at"}
    assert created.headers["cache-control"] == "no-store"
    listed = api.get("/auth/s3-credentials").json()["results"]
    mine = [item for item in listed if item["access_key_id"] == body["access_key_id"]]
    assert mine == [
        {
            "access_key_id": body["access_key_id"],
            "created_at": body["created_at"],
            "revoked_at": None,
        }
    ]
    assert body["secret_access_key"] not in api.get("/auth/s3-credentials").text
    assert api.delete(f"/auth/s3-credentials/{body['access_key_id']}").status_code == 204
    listed = api.get("/auth/s3-credentials").json()["results"]
    revoked = next(item for item in listed if item["access_key_id"] == body["access_key_id"])
    assert revoked["revoked_at"] is not None
    missing = api.delete("/auth/s3-credentials/LMS3NOSUCHKEY")
    assert (missing.status_code, missing.json()["code"]) == (404, "s3_credential_not_found")


def test_the_secret_is_sealed_at_rest(
    local_server: LocalServer, credential: dict[str, str]
) -> None:
    async def stored() -> Any:
        db = Database(sqlite_url(local_server.data_dir))
        try:
            async with db.connect() as conn:
                query = sa.select(s3_credentials).where(
                    s3_credentials.c.access_key_id == credential["access_key_id"]
                )
                return (await conn.execute(query)).one()
        finally:
            await db.dispose()

    row = asyncio.run(stored())
    secret = credential["secret_access_key"].encode()
    assert secret not in row.ciphertext and secret not in row.nonce
    sealer = Sealer(load_key(local_server.data_dir, {}))
    scope = SecretScope("s3_credential", credential["access_key_id"])
    opened = sealer.open(scope, "secret_access_key", row.nonce, row.ciphertext)
    assert opened == credential["secret_access_key"]
    # Bound to its access key id: moved to another credential's row, it no longer opens.
    assert (
        sealer.open(
            SecretScope("s3_credential", "LMS3OTHER"),
            "secret_access_key",
            row.nonce,
            row.ciphertext,
        )
        is None
    )


# --- reads --------------------------------------------------------------------------------------


def test_put_then_get_head_at_session_head_and_commit(
    s3: Any, bucket: str, repo_http: RepoHttp
) -> None:
    session = repo_http.session()
    data = b"hello, gateway\n" * 100
    put = s3.put_object(
        Bucket=bucket,
        Key=f"session-{session}/data/hello.txt",
        Body=data,
        ContentType="text/plain",
        Metadata={"team": "ml"},
    )
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert put["ETag"] == etag
    in_session = s3.get_object(Bucket=bucket, Key=f"session-{session}/data/hello.txt")
    assert in_session["Body"].read() == data
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="head/data/hello.txt")
    assert s3_error(missing) == (404, "NoSuchKey")
    commit = repo_http.commit(session)
    for ref in ("head", commit):
        got = s3.get_object(Bucket=bucket, Key=f"{ref}/data/hello.txt")
        assert got["Body"].read() == data
        assert (got["ETag"], got["ContentLength"], got["ContentType"]) == (
            etag,
            len(data),
            "text/plain",
        )
        assert got["Metadata"] == {"team": "ml"}
        assert got["LastModified"] is not None
        head = s3.head_object(Bucket=bucket, Key=f"{ref}/data/hello.txt")
        assert (head["ETag"], head["ContentLength"]) == (etag, len(data))
    assert repo_http.read("data/hello.txt") == data


def test_ranges_and_conditions(s3: Any, bucket: str, repo_http: RepoHttp) -> None:
    session = repo_http.session()
    data = bytes(range(256)) * 4
    repo_http.put(session, "r.bin", data)
    repo_http.commit(session)
    key = "head/r.bin"
    ranged = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert ranged["Body"].read() == data[10:20]
    suffix = s3.get_object(Bucket=bucket, Key=key, Range="bytes=-5")
    assert suffix["Body"].read() == data[-5:]
    with pytest.raises(ClientError) as unsatisfiable:
        s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={len(data)}-")
    assert s3_error(unsatisfiable) == (416, "InvalidRange")
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    with pytest.raises(ClientError) as unchanged:
        s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
    assert s3_error(unchanged)[0] == 304
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read() == data
    with pytest.raises(ClientError) as changed:
        s3.get_object(Bucket=bucket, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"')
    assert s3_error(changed) == (412, "PreconditionFailed")


def test_transfers_of_large_objects_stream_in_parts(
    s3: Any, bucket: str, repo_http: RepoHttp, tmp_path: Any
) -> None:
    """boto3's managed transfer: a multipart upload, and a download in concurrent ranges."""
    session = repo_http.session()
    data = os.urandom(13 * MIB)
    config = boto3.s3.transfer.TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4
    )
    s3.upload_fileobj(io.BytesIO(data), bucket, f"session-{session}/big.bin", Config=config)
    repo_http.commit(session)
    target = tmp_path / "big.bin"
    s3.download_file(bucket, "head/big.bin", str(target), Config=config)
    assert target.read_bytes() == data
    assert s3.head_object(Bucket=bucket, Key="head/big.bin")["ETag"].endswith('-3"')


def test_presigned_get(s3: Any, bucket: str, repo_http: RepoHttp) -> None:
    session = repo_http.session()
    repo_http.put(session, "p.txt", b"presigned")
    repo_http.commit(session)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "head/p.txt"}, ExpiresIn=60
    )
    assert "X-Amz-Signature=" in url
    response = httpx.get(url)
    assert (response.status_code, response.content) == (200, b"presigned")


def test_missing_keys_and_buckets(s3: Any, bucket: str, local_server: LocalServer) -> None:
    for key in ("head/nothing", "0" * 64 + "/nothing", "head"):
        with pytest.raises(ClientError) as missing:
            s3.get_object(Bucket=bucket, Key=key)
        assert s3_error(missing) == (404, "NoSuchKey")
    for name in (f"{local_server.org}.no-such-repo", "no-dot", "no-such-org.repo"):
        with pytest.raises(ClientError) as no_bucket:
            s3.list_objects_v2(Bucket=name)
        assert s3_error(no_bucket) == (404, "NoSuchBucket")


# --- listings -----------------------------------------------------------------------------------


def _keys(page: dict[str, Any]) -> list[str]:
    return [item["Key"] for item in page.get("Contents", [])]


def _prefixes(page: dict[str, Any]) -> list[str]:
    return [item["Prefix"] for item in page.get("CommonPrefixes", [])]


def test_list_objects_v2_prefix_delimiter_and_pagination(
    s3: Any, bucket: str, repo_http: RepoHttp
) -> None:
    session = repo_http.session()
    names = [f"logs/{index:02d}.txt" for index in range(23)] + ["a.txt", "dir/x", "dir/y"]
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"session-{session}/{name}", Body=name.encode())
    commit = repo_http.commit(session)
    top = s3.list_objects_v2(Bucket=bucket, Prefix=f"{commit}/", Delimiter="/")
    assert _keys(top) == [f"{commit}/a.txt"]
    assert _prefixes(top) == [f"{commit}/dir/", f"{commit}/logs/"]
    assert top["KeyCount"] == 3
    listed: list[str] = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix="head/logs/", PaginationConfig={"PageSize": 7}
    ):
        pages += 1
        assert page["KeyCount"] <= 7
        listed.extend(_keys(page))
    assert pages == 4
    assert listed == [f"head/{name}" for name in sorted(names) if name.startswith("logs/")]
    after = s3.list_objects_v2(Bucket=bucket, Prefix="head/", StartAfter="head/logs/20.txt")
    assert _keys(after) == ["head/logs/21.txt", "head/logs/22.txt"]
    limited = s3.list_objects_v2(Bucket=bucket, Prefix="head/dir/", MaxKeys=1)
    assert (limited["IsTruncated"], _keys(limited)) == (True, ["head/dir/x"])
    rest = s3.list_objects_v2(
        Bucket=bucket, Prefix="head/dir/", ContinuationToken=limited["NextContinuationToken"]
    )
    assert (rest["IsTruncated"], _keys(rest)) == (False, ["head/dir/y"])
    root = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert (_keys(root), _prefixes(root)) == ([], ["head/"])
    everything = s3.list_objects_v2(Bucket=bucket)
    assert len(_keys(everything)) == len(names)
    v1 = s3.list_objects(Bucket=bucket, Prefix="head/logs/", Marker="head/logs/19.txt")
    assert [item["Key"] for item in v1["Contents"]][:1] == ["head/logs/20.txt"]


def test_keys_with_spaces_and_pluses_list_url_encoded(
    s3: Any, bucket: str, repo_http: RepoHttp
) -> None:
    session = repo_http.session()
    key = f"session-{session}/odd names/a+b c%.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"odd")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"session-{session}/odd names/")
    assert _keys(listed) == [key]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"odd"


def test_buckets(s3: Any, bucket: str) -> None:
    names = [item["Name"] for item in s3.list_buckets()["Buckets"]]
    assert bucket in names
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None


# --- writes -------------------------------------------------------------------------------------


def test_multipart_upload_complete_and_abort(s3: Any, bucket: str, repo_http: RepoHttp) -> None:
    session = repo_http.session()
    key = f"session-{session}/parts.bin"
    first, second = os.urandom(5 * MIB), os.urandom(MIB)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-test")
    upload_id = upload["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)[
            "ETag"
        ]
        for number, body in ((1, first), (2, second))
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]
        },
    )
    assert done["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=bucket, Key=key)
    assert (got["Body"].read(), got["ContentType"]) == (first + second, "application/x-test")
    aborted_key = f"session-{session}/aborted.bin"
    aborted = s3.create_multipart_upload(Bucket=bucket, Key=aborted_key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=aborted_key, UploadId=aborted, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key=aborted_key, UploadId=aborted)
    with pytest.raises(ClientError) as gone:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=aborted_key,
            UploadId=aborted,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
        )
    assert s3_error(gone)[1] in ("NoSuchUpload", "InvalidPart")
    with pytest.raises(ClientError) as not_staged:
        s3.head_object(Bucket=bucket, Key=aborted_key)
    assert s3_error(not_staged)[0] == 404
    with pytest.raises(ClientError) as elsewhere:
        s3.upload_part(
            Bucket=bucket, Key=key + ".other", UploadId=upload_id, PartNumber=1, Body=b""
        )
    assert s3_error(elsewhere) == (404, "NoSuchUpload")


def test_delete_object_and_objects_in_a_session(s3: Any, bucket: str, repo_http: RepoHttp) -> None:
    session = repo_http.session()
    for name in ("a", "b", "c", "d"):
        repo_http.put(session, name, name.encode())
    repo_http.commit(session)
    session = repo_http.session()
    s3.delete_object(Bucket=bucket, Key=f"session-{session}/a")
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": f"session-{session}/b"},
                {"Key": f"session-{session}/c"},
                {"Key": "head/d"},
            ]
        },
    )
    assert sorted(item["Key"] for item in result["Deleted"]) == [
        f"session-{session}/b",
        f"session-{session}/c",
    ]
    assert [(item["Key"], item["Code"]) for item in result["Errors"]] == [
        ("head/d", "MethodNotAllowed")
    ]
    assert _keys(s3.list_objects_v2(Bucket=bucket, Prefix=f"session-{session}/")) == [
        f"session-{session}/d"
    ]
    assert sorted(repo_http.tree()) == ["a", "b", "c", "d"]  # nothing lands before a commit
    repo_http.commit(session)
    assert sorted(repo_http.tree()) == ["d"]


def _blob_bytes(server: LocalServer) -> int:
    return sum(
        path.stat().st_size for path in (server.data_dir / "blobs").rglob("*") if path.is_file()
    )


def test_copy_object_reuses_the_bytes(
    s3: Any,
    bucket: str,
    repo_http: RepoHttp,
    new_repo_http: Any,
    local_server: LocalServer,
) -> None:
    session = repo_http.session()
    data = os.urandom(MIB)
    repo_http.put(session, "src.bin", data)
    commit = repo_http.commit(session)
    other = new_repo_http()
    other_bucket = other.repository.replace("/", ".")
    target = other.session()
    session = repo_http.session()
    before = _blob_bytes(local_server)
    copied = s3.copy_object(
        Bucket=bucket, Key=f"session-{session}/copy.bin", CopySource=f"{bucket}/{commit}/src.bin"
    )
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    s3.copy_object(
        Bucket=other_bucket,
        Key=f"session-{target}/from-elsewhere.bin",
        CopySource={"Bucket": bucket, "Key": "head/src.bin"},
        MetadataDirective="REPLACE",
        ContentType="application/x-copied",
    )
    assert _blob_bytes(local_server) == before  # no byte was copied
    repo_http.commit(session)
    other.commit(target)
    assert s3.get_object(Bucket=bucket, Key="head/copy.bin")["Body"].read() == data
    elsewhere = s3.get_object(Bucket=other_bucket, Key="head/from-elsewhere.bin")
    assert (elsewhere["Body"].read(), elsewhere["ContentType"]) == (data, "application/x-copied")


def test_writes_outside_a_session_are_refused(s3: Any, bucket: str, repo_http: RepoHttp) -> None:
    session = repo_http.session()
    repo_http.put(session, "kept.txt", b"kept")
    commit = repo_http.commit(session)
    attempts = [
        lambda ref: s3.put_object(Bucket=bucket, Key=f"{ref}/new.txt", Body=b"x"),
        lambda ref: s3.create_multipart_upload(Bucket=bucket, Key=f"{ref}/new.txt"),
        lambda ref: s3.delete_object(Bucket=bucket, Key=f"{ref}/kept.txt"),
        lambda ref: s3.copy_object(
            Bucket=bucket, Key=f"{ref}/copy.txt", CopySource=f"{bucket}/head/kept.txt"
        ),
    ]
    for ref in ("head", commit):
        for attempt in attempts:
            with pytest.raises(ClientError) as refused:
                attempt(ref)
            assert s3_error(refused) == (405, "MethodNotAllowed")
            assert "session" in refused.value.response["Error"]["Message"]
    assert repo_http.tree() == {"kept.txt": hashlib.md5(b"kept").hexdigest()}


def test_a_closed_session_takes_no_writes(s3: Any, bucket: str, repo_http: RepoHttp) -> None:
    session = repo_http.session()
    repo_http.commit(session)
    with pytest.raises(ClientError) as closed:
        s3.put_object(Bucket=bucket, Key=f"session-{session}/late.txt", Body=b"late")
    assert s3_error(closed) == (409, "SessionClosed")


def test_writes_are_audited_with_their_request(
    s3: Any, bucket: str, repo_http: RepoHttp, api: httpx.Client, local_server: LocalServer
) -> None:
    session = repo_http.session()
    put = s3.put_object(Bucket=bucket, Key=f"session-{session}/audited.txt", Body=b"a")
    request_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    log = api.get(
        f"/organizations/{local_server.org}/audit-log",
        params={"action": "PutObject", "resource_id": "audited.txt"},
    )
    assert log.status_code == 200, log.text
    entries = [entry for entry in log.json()["items"] if entry["request_id"] == request_id]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["resource_kind"], entry["outcome"], entry["principal_name"]) == (
        "object",
        "success",
        "admin",
    )
    assert entry["resource"] == f"{repo_http.repository}/audited.txt"


def test_the_gateway_answers_under_s3_only(local_server: LocalServer) -> None:
    unsigned = httpx.get(f"{local_server.endpoint_url}/s3")
    assert unsigned.status_code == 403
    assert unsigned.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code>" in unsigned.text
    elsewhere = httpx.get(f"{local_server.endpoint_url}/s3x/bucket")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "not_found")
