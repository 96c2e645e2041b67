"""The identity and governance models read the contract's full examples (strict: no field the
contract names is left out), and its minimal ones."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from lamina._converter import make_converter, structure
from lamina._errors import SerializationError
from lamina.models import (
    AgentData,
    APIKeyCreated,
    APIKeyData,
    Attachment,
    CurrentUser,
    EffectiveGroup,
    EffectivePolicy,
    GroupDetail,
    PolicyData,
    PolicyDetail,
    ResultList,
    RoleData,
    SecretData,
    SecretValue,
    ValidationResult,
)

STRICT = make_converter(strict=True)
AT = "2026-01-02T03:04:05Z"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
CREATED = {"created_by_type": "user", "created_by": "u1", "created_at": AT}
ATTACHMENT = {
    "policy_id": "p1",
    "policy_name": "readers",
    "is_builtin": False,
    "principal_type": "group",
    "principal_id": "g1",
    "principal_name": "analysts",
    "attached_by_type": "user",
    "attached_by": "u1",
    "attached_at": AT,
}


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (
            GroupDetail,
            {
                "group": {
                    "id": "g1",
                    "organization_id": "o1",
                    "name": "analysts",
                    "description": "d",
                    **CREATED,
                },
                "members": [
                    {
                        "subject_type": "user",
                        "subject_id": "u2",
                        "display_name": "Ana",
                        "username": "ana",
                        "added_at": AT,
                    }
                ],
                "attachments": [ATTACHMENT],
            },
        ),
        (
            PolicyDetail,
            {
                "policy": {
                    "id": "p1",
                    "organization_id": "o1",
                    "name": "readers",
                    "description": "",
                    "policy_text": "GetObject()",
                    "is_builtin": False,
                    **CREATED,
                    "updated_at": AT,
                },
                "attachments": [ATTACHMENT],
            },
        ),
        (
            PolicyData,
            {
                "id": "p1",
                "organization_id": "o1",
                "name": "readers",
                "description": "",
                "is_builtin": True,
                "created_at": AT,
                "updated_at": AT,
                "attachment_count": 3,
            },
        ),
        (
            ResultList[EffectivePolicy],
            {
                "results": [
                    {
                        "policy_id": "p1",
                        "policy_name": "readers",
                        "is_builtin": False,
                        "source": "group",
                        "source_name": "analysts",
                    }
                ]
            },
        ),
        (
            ResultList[EffectiveGroup],
            {
                "results": [
                    {
                        "group_id": "g1",
                        "group_name": "analysts",
                        "description": "",
                        "source": "direct",
                        "source_name": "",
                    }
                ]
            },
        ),
        (
            ValidationResult,
            {"valid": False, "errors": [{"line": 2, "column": 11, "message": "expected ')'"}]},
        ),
        (
            RoleData,
            {
                "id": "r1",
                "organization_id": "o1",
                "name": "ci",
                "description": "",
                **CREATED,
                "created_by_name": "ana",
                "last_used_at": None,
            },
        ),
        (
            AgentData,
            {
                "id": "a1",
                "organization_id": "o1",
                "name": "bot",
                "description": "",
                "metadata": {"team": "data"},
                "inline_policy": "GetObject()",
                "inline_policy_updated_at": AT,
                **CREATED,
                "created_by_name": "ana",
                "last_used_at": AT,
            },
        ),
        (
            APIKeyData,
            {
                "id": "k1",
                "user_id": "u1",
                "name": "laptop",
                "description": "",
                "token_hint": "abcd",
                "created_at": AT,
                "last_used_at": None,
                "revoked_at": None,
            },
        ),
        (APIKeyCreated, {"token": "tak-secret", "id": "k1", "name": "ci", "description": ""}),
        (
            ResultList[SecretData],
            {"results": [{"key": "TOKEN", **CREATED, "updated_at": AT}]},
        ),
        (SecretValue, {"key": "TOKEN", "value": "s3cret"}),
        (
            CurrentUser,
            {
                "user": {
                    "id": "u1",
                    "username": "ana",
                    "email": "ana@example.com",
                    "full_name": "Ana",
                    "company": "",
                    "bio": "",
                    "source": "local",
                    "status": "active",
                    "created_at": AT,
                },
                "organizations": [{"id": "o1", "name": "acme", "display_name": "Acme"}],
                "has_password": True,
                "principal": {"type": "user", "id": "u1", "name": "ana", "organization_id": None},
            },
        ),
    ],
)
def test_full_examples_read_strictly(model: Any, data: Any) -> None:
    structure(STRICT, data, model)


def test_minimal_records_take_defaults() -> None:
    assert structure(STRICT, {"id": "a1", "name": "bot"}, AgentData).metadata == {}
    assert structure(STRICT, {"valid": True}, ValidationResult).errors == []
    detail = structure(STRICT, {"group": {"id": "g1", "name": "g"}}, GroupDetail)
    assert (detail.members, detail.attachments) == ([], [])
    attachment = structure(STRICT, ATTACHMENT, Attachment)
    assert attachment.attached_at == WHEN


def test_the_caller_is_the_principal_or_else_the_user() -> None:
    agent = {"type": "agent", "id": "a1", "name": "bot", "organization_id": "o1"}
    me = structure(STRICT, {"user": None, "principal": agent}, CurrentUser)
    assert (me.caller.type, me.caller.id) == ("agent", "a1")
    tilde = structure(STRICT, {"user": {"id": "u1", "username": "ana"}}, CurrentUser)
    assert (tilde.caller.type, tilde.caller.id, tilde.caller.name) == ("user", "u1", "ana")
    with pytest.raises(SerializationError):
        _ = structure(STRICT, {"user": None}, CurrentUser).caller
