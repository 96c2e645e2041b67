"""The checked-in OpenAPI document (docs/api/openapi.json) is what the app generates, and what
the running server serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from lamina.testing import LocalServer

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
            for status, response in errors.items():
                if (path, method) in CONTRACT_OPERATIONS or "content" in response:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"message", "code", "request_id"}
    assert error["additionalProperties"] is False
    assert document["paths"]["/healthz"]["servers"] == [{"url": "/"}]
