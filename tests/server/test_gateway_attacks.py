"""The S3 gateway refuses what it must: unsigned, badly signed, unknown and revoked
credentials, expired or altered presigned URLs, principals without the right (through the
API's own policies, as they are at each request), another repository's session or upload, and
bodies that do not match what they were signed or summed with — and then nothing is staged.
aws-chunked bodies (signed chunk by chunk, or unsigned with a checksum trailer) are built here
by hand, as the AWS documentation describes them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from lamina.testing import LocalServer
from lamina_server.storage.blobs.sigv4 import Credentials as SigV4Credentials
from lamina_server.storage.blobs.sigv4 import SigV4
from tests.conftest import RepoHttp
from tests.server.gateway_clients import REGION, new_credential, s3_client, s3_error
from tests.server.members import new_member


@pytest.fixture
def credential(api: httpx.Client) -> dict[str, str]:
    return new_credential(api)


@pytest.fixture
def endpoint(local_server: LocalServer) -> str:
    return f"{local_server.endpoint_url}/s3"


@pytest.fixture
def s3(endpoint: str, credential: dict[str, str]) -> Iterator[Any]:
    client = s3_client(endpoint, credential)
    yield client
    client.close()


@pytest.fixture
def bucket(repo_http: RepoHttp) -> str:
    session = repo_http.session()
    repo_http.put(session, "data/secret.txt", b"top secret")
    repo_http.commit(session)
    return repo_http.repository.replace("/", ".")


def _code(response: httpx.Response) -> str:
    return response.text.split("<Code>")[1].split("</Code>")[0]


def signed_request(
    credential: dict[str, str],
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    payload: str = "UNSIGNED-PAYLOAD",
) -> dict[str, str]:
    """The headers botocore's SigV4 signer gives a request whose payload hash is ``payload``."""
    request = AWSRequest(
        method=method, url=url, headers={**(headers or {}), "X-Amz-Content-SHA256": payload}
    )
    keys = Credentials(credential["access_key_id"], credential["secret_access_key"])
    SigV4Auth(keys, "s3", REGION).add_auth(request)
    return dict(request.headers.items())


# --- credentials and signatures -----------------------------------------------------------------


def test_unsigned_and_sigv2_requests_are_refused(endpoint: str, bucket: str) -> None:
    anonymous = httpx.get(f"{endpoint}/{bucket}/head/data/secret.txt")
    assert (anonymous.status_code, _code(anonymous)) == (403, "AccessDenied")
    assert "top secret" not in anonymous.text
    v2 = httpx.get(
        f"{endpoint}/{bucket}/head/data/secret.txt",
        params={"AWSAccessKeyId": "x", "Signature": "y", "Expires": "9999999999"},
    )
    assert (v2.status_code, _code(v2)) == (400, "InvalidArgument")
    assert "SigV4" in v2.text


def test_a_wrong_secret_or_unknown_key_is_refused(
    endpoint: str, bucket: str, credential: dict[str, str]
) -> None:
    wrong = s3_client(endpoint, {**credential, "secret_access_key": "not-the-secret"})
    with pytest.raises(ClientError) as mismatch:
        wrong.get_object(Bucket=bucket, Key="head/data/secret.txt")
    assert s3_error(mismatch) == (403, "SignatureDoesNotMatch")
    unknown = s3_client(endpoint, {**credential, "access_key_id": "LMS3AAAAAAAAAAAAAAAA"})
    with pytest.raises(ClientError) as invalid:
        unknown.list_objects_v2(Bucket=bucket)
    assert s3_error(invalid) == (403, "InvalidAccessKeyId")


def test_a_revoked_credential_is_refused_on_the_next_request(
    api: httpx.Client, s3: Any, bucket: str, credential: dict[str, str]
) -> None:
    assert s3.get_object(Bucket=bucket, Key="head/data/secret.txt")["Body"].read() == b"top secret"
    revoked = api.delete(f"/auth/s3-credentials/{credential['access_key_id']}")
    assert revoked.status_code == 204
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="head/data/secret.txt")
    assert s3_error(refused) == (403, "InvalidAccessKeyId")


def test_presigned_urls_expire_and_cannot_be_altered(
    s3: Any, endpoint: str, bucket: str, credential: dict[str, str]
) -> None:
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "head/data/secret.txt"}, ExpiresIn=60
    )
    assert httpx.get(url).status_code == 200
    altered = httpx.get(url.replace("/data/secret.txt", "/data/other.txt"))
    assert (altered.status_code, _code(altered)) == (403, "SignatureDoesNotMatch")
    signer = SigV4(
        endpoint,
        REGION,
        bucket,
        SigV4Credentials(credential["access_key_id"], credential["secret_access_key"]),
    )
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    stale = signer.presign("GET", "head/data/secret.txt", 60, now=an_hour_ago)
    expired = httpx.get(stale)
    assert (expired.status_code, _code(expired)) == (403, "AccessDenied")
    assert "expired" in expired.text
    assert httpx.get(signer.presign("GET", "head/data/secret.txt", 60)).content == b"top secret"


def test_a_request_signed_long_ago_is_refused(
    endpoint: str, bucket: str, credential: dict[str, str]
) -> None:
    signer = SigV4(
        endpoint,
        REGION,
        bucket,
        SigV4Credentials(credential["access_key_id"], credential["secret_access_key"]),
    )
    key = "head/data/secret.txt"
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    stale = httpx.get(signer.url(key), headers=signer.headers("GET", key, {}, now=old))
    assert (stale.status_code, _code(stale)) == (403, "RequestTimeTooSkewed")
    fresh = httpx.get(signer.url(key), headers=signer.headers("GET", key, {}))
    assert (fresh.status_code, fresh.content) == (200, b"top secret")


# --- who may do what ----------------------------------------------------------------------------


def _agent(api: httpx.Client, org: str, name: str, policy: str) -> httpx.Client:
    """An agent of ``org`` with ``policy`` inline, as an ``/api/v1`` client of its own key."""
    created = api.post(f"/organizations/{org}/agents", json={"name": name, "inline_policy": policy})
    assert created.status_code == 201, created.text
    key = api.post(f"/organizations/{org}/agents/{name}/auth/keys", json={"name": "s3"})
    assert key.status_code == 201, key.text
    return httpx.Client(
        base_url=api.base_url, headers={"Authorization": f"Bearer {key.json()['token']}"}
    )


def test_a_principal_without_read_permission_gets_access_denied(
    api: httpx.Client,
    local_server: LocalServer,
    endpoint: str,
    bucket: str,
    unique_name: Any,
) -> None:
    agent = _agent(api, local_server.org, unique_name("nobody"), "")
    s3 = s3_client(endpoint, new_credential(agent))  # an agent makes its own credential
    for call in (
        lambda: s3.get_object(Bucket=bucket, Key="head/data/secret.txt"),
        lambda: s3.list_objects_v2(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as denied:
            call()
        assert s3_error(denied) == (403, "AccessDenied")
    assert bucket not in [item["Name"] for item in s3.list_buckets()["Buckets"]]


def test_rights_are_the_principals_own_at_each_request(
    api: httpx.Client,
    local_server: LocalServer,
    endpoint: str,
    bucket: str,
    repo_http: RepoHttp,
    unique_name: Any,
) -> None:
    name = unique_name("reader")
    agent = _agent(api, local_server.org, name, 'GetObject(path="data/*")\nListObjects()')
    s3 = s3_client(endpoint, new_credential(agent))
    assert s3.get_object(Bucket=bucket, Key="head/data/secret.txt")["Body"].read() == b"top secret"
    session = repo_http.session()
    with pytest.raises(ClientError) as write:
        s3.put_object(Bucket=bucket, Key=f"session-{session}/data/new.txt", Body=b"no")
    assert s3_error(write) == (403, "AccessDenied")
    assert "PutObject" in write.value.response["Error"]["Message"]
    narrowed = api.put(
        f"/organizations/{local_server.org}/agents/{name}",
        json={"inline_policy": 'GetObject(path="public/*")'},
    )
    assert narrowed.status_code == 200, narrowed.text
    with pytest.raises(ClientError) as now_denied:
        s3.get_object(Bucket=bucket, Key="head/data/secret.txt")
    assert s3_error(now_denied) == (403, "AccessDenied")
    deleted = api.delete(f"/organizations/{local_server.org}/agents/{name}")
    assert deleted.status_code == 204
    with pytest.raises(ClientError) as gone:
        s3.list_buckets()
    assert s3_error(gone) == (403, "InvalidAccessKeyId")


def test_a_non_member_is_told_there_is_no_such_bucket(
    api: httpx.Client,
    local_server: LocalServer,
    endpoint: str,
    bucket: str,
    unique_name: Any,
) -> None:
    member = new_member(api, local_server, unique_name)
    s3 = s3_client(endpoint, new_credential(member.client))
    with pytest.raises(ClientError) as hidden:
        s3.get_object(Bucket=bucket, Key="head/data/secret.txt")
    assert s3_error(hidden) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as nothing:
        s3.list_objects_v2(Bucket=f"{local_server.org}.no-such-repository")
    assert s3_error(nothing) == (404, "NoSuchBucket")  # the same answer: nothing is learned
    deleted = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "head/data/secret.txt"}]}
    )
    assert deleted.get("Deleted", []) == []


def test_another_repositorys_session_and_upload_are_refused(
    s3: Any, bucket: str, repo_http: RepoHttp, new_repo_http: Any
) -> None:
    other = new_repo_http()
    other_session = other.session()
    with pytest.raises(ClientError) as foreign:
        s3.put_object(Bucket=bucket, Key=f"session-{other_session}/x.txt", Body=b"x")
    assert s3_error(foreign) == (404, "NoSuchSession")
    session = repo_http.session()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=f"session-{session}/m.bin")
    other_bucket = other.repository.replace("/", ".")
    with pytest.raises(ClientError) as stolen:
        s3.upload_part(
            Bucket=other_bucket,
            Key=f"session-{other_session}/m.bin",
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"x",
        )
    assert s3_error(stolen) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as forged:
        s3.upload_part(
            Bucket=bucket,
            Key=f"session-{session}/m.bin",
            UploadId=upload["UploadId"] + "x",
            PartNumber=1,
            Body=b"x",
        )
    assert s3_error(forged) == (404, "NoSuchUpload")
    assert other.tree(session_id=other_session) == {}


# --- bodies -------------------------------------------------------------------------------------


def test_a_body_that_is_not_what_was_signed_stages_nothing(
    endpoint: str, bucket: str, credential: dict[str, str], repo_http: RepoHttp
) -> None:
    session = repo_http.session()
    url = f"{endpoint}/{bucket}/session-{session}/tampered.txt"
    headers = signed_request(
        credential, "PUT", url, payload=hashlib.sha256(b"what was signed").hexdigest()
    )
    tampered = httpx.put(url, headers=headers, content=b"something else")
    assert (tampered.status_code, _code(tampered)) == (400, "XAmzContentSHA256Mismatch")
    md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    headers = signed_request(credential, "PUT", url, headers={"Content-MD5": md5})
    bad_md5 = httpx.put(url, headers=headers, content=b"body")
    assert (bad_md5.status_code, _code(bad_md5)) == (400, "BadDigest")
    assert set(repo_http.tree(session_id=session)) == {"data/secret.txt"}


def _chunk_signature(key: bytes, stamp: str, scope: str, previous: str, data: bytes) -> str:
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            stamp,
            scope,
            previous,
            hashlib.sha256(b"").hexdigest(),
            hashlib.sha256(data).hexdigest(),
        ]
    )
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _signing_key(secret: str, date: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signed_chunked(
    credential: dict[str, str], url: str, chunks: list[bytes], *, corrupt: bool = False
) -> tuple[dict[str, str], bytes]:
    headers = signed_request(
        credential,
        "PUT",
        url,
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(sum(len(chunk) for chunk in chunks)),
        },
        payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    authorization = headers["Authorization"]
    previous = authorization.rpartition("Signature=")[2]
    stamp = headers["X-Amz-Date"]
    scope = f"{stamp[:8]}/{REGION}/s3/aws4_request"
    key = _signing_key(credential["secret_access_key"], stamp[:8])
    body = b""
    for chunk in [*chunks, b""]:
        signature = _chunk_signature(key, stamp, scope, previous, chunk)
        previous = signature
        sent = chunk[::-1] if corrupt and chunk else chunk
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + sent + b"\r\n"
    return headers, body


def test_signed_aws_chunked_uploads(
    endpoint: str, bucket: str, credential: dict[str, str], repo_http: RepoHttp
) -> None:
    session = repo_http.session()
    chunks = [b"a" * 65536, b"b" * 65536, b"tail"]
    url = f"{endpoint}/{bucket}/session-{session}/chunked.bin"
    headers, body = _signed_chunked(credential, url, chunks)
    uploaded = httpx.put(url, headers=headers, content=body)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.headers["etag"] == f'"{hashlib.md5(b"".join(chunks)).hexdigest()}"'
    bad_url = f"{endpoint}/{bucket}/session-{session}/corrupt.bin"
    headers, body = _signed_chunked(credential, bad_url, chunks, corrupt=True)
    corrupt = httpx.put(bad_url, headers=headers, content=body)
    assert (corrupt.status_code, _code(corrupt)) == (403, "SignatureDoesNotMatch")
    assert set(repo_http.tree(session_id=session)) == {"data/secret.txt", "chunked.bin"}


def _trailer_body(chunks: list[bytes], crc: bytes) -> bytes:
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks)
    return body + b"0\r\nx-amz-checksum-crc32:" + base64.b64encode(crc) + b"\r\n\r\n"


def test_unsigned_aws_chunked_uploads_with_a_checksum_trailer(
    endpoint: str, bucket: str, credential: dict[str, str], repo_http: RepoHttp
) -> None:
    session = repo_http.session()
    chunks = [b"x" * 1000, b"y" * 10]
    data = b"".join(chunks)
    crc = zlib.crc32(data).to_bytes(4, "big")
    for name, checksum, expected in (("good", crc, 200), ("bad", b"\0\0\0\0", 400)):
        url = f"{endpoint}/{bucket}/session-{session}/{name}.bin"
        headers = signed_request(
            credential,
            "PUT",
            url,
            headers={
                "Content-Encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": "x-amz-checksum-crc32",
            },
            payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        )
        response = httpx.put(url, headers=headers, content=_trailer_body(chunks, checksum))
        assert response.status_code == expected, response.text
    assert set(repo_http.tree(session_id=session)) == {"data/secret.txt", "good.bin"}
    assert repo_http.read("good.bin", session_id=session) == data
