"""The checked-in OpenAPI document (docs/api/openapi.json) is what the app generates, and what
the running server serves."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from lamina.testing import LocalServer
from lamina_server.api.params import PATH_PATTERN

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "api" / "openapi.json"
GENERATOR = ROOT / "scripts" / "generate_openapi.py"

CONTRACT_OPERATIONS = {
    ("/organizations", "get"),
    ("/organizations", "post"),
    ("/organizations/{organization}", "get"),
    ("/organizations/{organization}/members", "get"),
    ("/organizations/{organization}/repositories", "get"),
    ("/organizations/{organization}/repositories", "post"),
    ("/organizations/{organization}/repositories/{repository}", "get"),
    ("/organizations/{organization}/repositories/{repository}", "put"),
    ("/organizations/{organization}/repositories/{repository}", "delete"),
    ("/organizations/{organization}/repositories/{repository}/sessions", "post"),
    ("/organizations/{organization}/repositories/{repository}/sessions/{session_id}", "post"),
    ("/organizations/{organization}/repositories/{repository}/sessions/{session_id}", "delete"),
    (
        "/organizations/{organization}/repositories/{repository}/sessions/{session_id}/approve",
        "head",
    ),
    ("/organizations/{organization}/repositories/{repository}/log", "get"),
    ("/organizations/{organization}/repositories/{repository}/commits/{commit_id}", "get"),
    ("/organizations/{organization}/repositories/{repository}/commits/{commit_id}/revert", "post"),
    ("/organizations/{organization}/repositories/{repository}/diff", "get"),
}


def test_checked_in_document_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_running_server_serves_the_checked_in_document(local_server: LocalServer) -> None:
    served = httpx.get(f"{local_server.endpoint_url}/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(CHECKED_IN.read_text(encoding="utf-8"))


def test_document_describes_the_contract() -> None:
    document = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    assert document["servers"] == [{"url": "/api/v1"}]
    operations = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "servers"
    }
    assert operations >= CONTRACT_OPERATIONS
    ids = [
        op["operationId"]
        for item in document["paths"].values()
        for method, op in item.items()
        if method != "servers"
    ]
    assert len(ids) == len(set(ids))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "servers":
                continue
            responses = operation["responses"]
            # Validation failures are 400 envelopes, never FastAPI's 422.
            assert "422" not in responses, (path, method)
            errors = {status: r for status, r in responses.items() if status[0] in "45"}
            if (path, method) in CONTRACT_OPERATIONS:
                assert "401" in errors, (path, method)
                assert operation["security"] == [{"BearerAuth": []}]
            # A batched upload's errors may also list the objects it refused (BatchFailed).
            body = "BatchFailed" if path.endswith("/objects/upload") else "ErrorBody"
            for status, response in errors.items():
                if (path, method) in CONTRACT_OPERATIONS or "content" in response:
                    schema = response["content"]["application/json"]["schema"]
                    expected = body if status in ("400", "403", "404", "413") else "ErrorBody"
                    assert schema == {"$ref": f"#/components/schemas/{expected}"}, (path, status)
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"message", "code", "request_id"}
    assert error["additionalProperties"] is False
    batch_failed = document["components"]["schemas"]["BatchFailed"]
    assert set(batch_failed["properties"]) == {*error["properties"], "failed"}
    assert set(batch_failed["required"]) == set(error["required"])
    assert document["paths"]["/healthz"]["servers"] == [{"url": "/"}]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "servers":
                yield path, method, operation


def _query(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "query"}


def test_document_tells_what_the_server_does() -> None:
    document = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    paths = document["paths"]
    schemas = document["components"]["schemas"]
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        # The prelude refuses a query string that is not UTF-8, everywhere.
        assert "400" in responses, (path, method)
        if "security" in operation:
            assert {"401", "403"} <= set(responses), (path, method)
        if "requestBody" in operation:
            assert "413" in responses, (path, method)
        for status, response in responses.items():
            if status[0] in "45":
                assert {"X-Error-Code", "X-Error-Message"} <= set(response["headers"])
            elif method == "head":
                assert "content" not in response, (path, method, status)
        # Required strings the server refuses when empty say so.
        for name, schema in _query(operation).items():
            if name in {"path", "source_path", "destination_path"}:
                assert (schema["minLength"], schema["maxLength"]) == (1, 1024), (path, name)
                assert schema["pattern"] == PATH_PATTERN, (path, name)
            elif name in {"session_id", "token", "upload_id", "upload_token"} and (
                schema.get("type") == "string"
            ):
                assert schema["minLength"] == 1, (path, name)
        assert "/blobs/" not in path or "security" not in operation, path
    repo = "/organizations/{organization}/repositories/{repository}"
    read = paths[f"{repo}/object"]["get"]["responses"]["307"]
    assert "content" not in read and read["headers"]["Location"]["required"] is True
    assert "ETag" in paths[f"{repo}/object"]["head"]["responses"]["200"]["headers"]
    for blob in ("/blobs/upload", "/blobs/part"):
        assert "content" not in paths[blob]["put"]["responses"]["200"], blob
    download = paths["/blobs/download"]["get"]
    assert set(download["responses"]["200"]["content"]) == {"*/*"}
    assert set(download["responses"]["206"]["content"]) == {"*/*"}
    assert "Content-Range" in download["responses"]["416"]["headers"]
    assert {p["name"] for p in download["parameters"]} == {"token", "Range", "If-Range"}
    part = _query(paths[f"{repo}/object/multipart/part"]["get"])["part_number"]
    assert (part["minimum"], part["maximum"]) == (1, 10000)
    completed = schemas["CompletedPart"]["properties"]["part_number"]
    assert (completed["minimum"], completed["maximum"]) == (1, 10000)
    assert schemas["CompleteRequest"]["properties"]["parts"]["minItems"] == 1
    deleted = schemas["DeleteObjectsRequest"]["properties"]["paths"]
    assert (deleted["minItems"], deleted["maxItems"]) == (1, 1000)
    assert deleted["items"]["minLength"] == 1
    assert [option["required"] for option in schemas["AddMemberRequest"]["anyOf"]] == [
        ["username"],
        ["user_id"],
    ]
