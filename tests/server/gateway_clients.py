"""What the S3 gateway's tests share: S3 credentials made through the API, boto3 clients on
the gateway, and readings of the S3 errors boto3 raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import duckdb
import duckdb_extension_httpfs
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"


def httpfs_extension() -> Path:
    """The httpfs extension the wheel ships for the installed DuckDB."""
    root = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    found = root / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    assert found.exists(), f"duckdb-extension-httpfs ships no {found}"
    return found


def new_credential(api: httpx.Client) -> dict[str, str]:
    """A fresh S3 credential of the caller of ``api`` (an ``/api/v1`` client)."""
    response = api.post("/auth/s3-credentials")
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def s3_client(endpoint: str, credential: dict[str, str], **config: Any) -> Any:
    """boto3's S3 client on ``endpoint`` (the server's ``…/s3``, or an ``--s3-port``), path
    style, signing with ``credential``."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credential["access_key_id"],
        aws_secret_access_key=credential["secret_access_key"],
        region_name=REGION,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1},
            **config,
        ),
    )


def s3_error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 code) of the error boto3 raised."""
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]
