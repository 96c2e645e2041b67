"""Buckets of source objects in the test SeaweedFS, for the connector and import tests:
created, filled concurrently with obstore, and the connector config that reaches them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import obstore
from obstore.store import S3Store

from lamina_server.storage.blobs.sigv4 import Credentials, SigV4
from tests.server import seaweedfs as weed
from tests.server.seaweedfs import SeaweedFS


def create_bucket(seaweedfs: SeaweedFS, bucket: str) -> None:
    signer = SigV4(
        seaweedfs.endpoint, weed.REGION, bucket, Credentials(weed.ACCESS_KEY, weed.SECRET_KEY)
    )
    created = httpx.put(signer.url(""), headers=signer.headers("PUT", "", {}))
    assert created.status_code == 200, created.text


def store(seaweedfs: SeaweedFS, bucket: str) -> S3Store:
    return S3Store(
        bucket,
        config={
            "endpoint": seaweedfs.endpoint,
            "region": weed.REGION,
            "access_key_id": weed.ACCESS_KEY,
            "secret_access_key": weed.SECRET_KEY,
            "virtual_hosted_style_request": False,
        },
        client_options={"allow_http": True},
    )


def put_objects(
    seaweedfs: SeaweedFS, bucket: str, objects: Mapping[str, bytes], concurrency: int = 64
) -> None:
    """Puts every object, ``concurrency`` at a time."""
    target = store(seaweedfs, bucket)

    async def run() -> None:
        limit = asyncio.Semaphore(concurrency)

        async def one(key: str, data: bytes) -> None:
            async with limit:
                await obstore.put_async(target, key, data)

        await asyncio.gather(*(one(key, data) for key, data in objects.items()))

    asyncio.run(run())


def delete_objects(seaweedfs: SeaweedFS, bucket: str, keys: list[str]) -> None:
    obstore.delete(store(seaweedfs, bucket), keys)


def config(seaweedfs: SeaweedFS, **more: Any) -> dict[str, Any]:
    """The connector config that reaches the test SeaweedFS."""
    return {
        "endpoint": seaweedfs.endpoint,
        "region": weed.REGION,
        "access_key_id": weed.ACCESS_KEY,
        "secret_access_key": weed.SECRET_KEY,
        **more,
    }
