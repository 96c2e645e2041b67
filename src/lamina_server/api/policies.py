"""Policies of an organization: the built-ins and its own, validation, generation, attachments
to users, groups, roles and agents, and a principal's effective policies.

Every route is :attr:`Action.MANAGE_POLICIES`, reads included: an organization's policies and
who holds them are its security configuration. ``policy_text`` is the policy language of
:mod:`lamina_server.authz.policy`; ``rego`` (what the cerebral SDK sends) is OPA's Rego
(:mod:`lamina_server.authz.rego`), validated and evaluated as such, beside the others.

``policies:generate`` answers through the server's policy generator
(:mod:`lamina_server.authz.generate`: built-in rules, or an OpenAI-compatible endpoint).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, organization_action
from lamina_server.api.errors import ApiError, bad_request
from lamina_server.api.pagination import envelope
from lamina_server.api.params import ORG, Pages, ServicesDep
from lamina_server.api.schemas import PaginationBody, error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.authz.generate import GenerationError, GeneratorBadOutput, GeneratorRateLimited
from lamina_server.authz.policy import PolicyError, validate
from lamina_server.authz.records import AttachmentRecord, PolicyRecord
from lamina_server.authz.rego import validate_rego

router = APIRouter(tags=["Policies"], route_class=LaminaRoute)

POLICY = f"{ORG}/policies/{{policy_id}}"
PolicyId = Annotated[str, Path(description="Policy ID")]
PrincipalType = Literal["user", "group", "role", "agent"]
MAX_POLICY_TEXT = 64 * 1024


class CreatePolicyRequest(BaseModel):
    """``policy_text``, or ``rego`` (the cerebral SDK's name for it): one is required."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=1024)
    policy_text: str | None = Field(None, max_length=MAX_POLICY_TEXT)
    rego: str | None = Field(None, max_length=MAX_POLICY_TEXT)


class UpdatePolicyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = Field(None, max_length=1024)
    policy_text: str | None = Field(None, max_length=MAX_POLICY_TEXT)
    rego: str | None = Field(None, max_length=MAX_POLICY_TEXT)


class ValidatePolicyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    policy_text: str | None = Field(None, max_length=MAX_POLICY_TEXT)
    rego: str | None = Field(None, max_length=MAX_POLICY_TEXT)


class GeneratePolicyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str = Field(min_length=1, max_length=4000)


class AttachPolicyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    principal_type: PrincipalType
    principal_id: str = Field(min_length=1, max_length=36)


class Policy(BaseModel):
    id: str
    organization_id: str
    name: str
    description: str
    policy_text: str
    rego: str = Field(description="the text again when it is Rego (what cerebral-sdk reads)")
    language: Literal["dsl", "rego"]
    is_builtin: bool
    created_by_type: str
    created_by: str
    created_at: datetime
    updated_at: datetime


class PolicySummary(BaseModel):
    id: str
    organization_id: str
    name: str
    description: str
    is_builtin: bool
    created_at: datetime
    updated_at: datetime
    attachment_count: int


class PolicyList(BaseModel):
    results: list[PolicySummary]
    pagination: PaginationBody


class Attachment(BaseModel):
    policy_id: str
    policy_name: str
    is_builtin: bool
    principal_type: PrincipalType
    principal_id: str
    principal_name: str
    attached_by_type: str
    attached_by: str
    attached_at: datetime


class PolicyDetail(BaseModel):
    policy: Policy
    attachments: list[Attachment]


class AttachmentList(BaseModel):
    results: list[Attachment]


class ValidationError(BaseModel):
    line: int
    column: int
    message: str


class ValidationResult(BaseModel):
    valid: bool
    errors: list[ValidationError]


class GeneratedPolicy(BaseModel):
    policy_text: str


class EffectivePolicy(BaseModel):
    policy_id: str
    policy_name: str
    is_builtin: bool
    source: Literal["direct", "group", "inline"]
    source_name: str


class EffectivePolicyList(BaseModel):
    results: list[EffectivePolicy]


def policy_json(policy: PolicyRecord) -> dict[str, Any]:
    return {
        "id": policy.id,
        "organization_id": policy.organization_id,
        "name": policy.name,
        "description": policy.description,
        "policy_text": policy.policy_text,
        "rego": policy.policy_text if policy.language == "rego" else "",
        "language": policy.language,
        "is_builtin": policy.is_builtin,
        "created_by_type": policy.created_by_type,
        "created_by": policy.created_by,
        "created_at": rfc3339(policy.created_at),
        "updated_at": rfc3339(policy.updated_at),
    }


def summary_json(policy: PolicyRecord) -> dict[str, Any]:
    return {
        "id": policy.id,
        "organization_id": policy.organization_id,
        "name": policy.name,
        "description": policy.description,
        "is_builtin": policy.is_builtin,
        "created_at": rfc3339(policy.created_at),
        "updated_at": rfc3339(policy.updated_at),
        "attachment_count": policy.attachment_count,
    }


def attachment_json(item: AttachmentRecord) -> dict[str, Any]:
    return {
        "policy_id": item.policy_id,
        "policy_name": item.policy_name,
        "is_builtin": item.is_builtin,
        "principal_type": item.principal_type,
        "principal_id": item.principal_id,
        "principal_name": item.principal_name,
        "attached_by_type": item.attached_by_type,
        "attached_by": item.attached_by,
        "attached_at": rfc3339(item.attached_at),
    }


async def _queried_principal(
    principal_type: Annotated[
        PrincipalType | None, Query(description="user, group, role or agent")
    ] = None,
    principal_id: Annotated[str | None, Query(description="The principal's ID")] = None,
    user_id: Annotated[str | None, Query(description="A user's ID (older clients)")] = None,
) -> tuple[str, str]:
    """``principal_type`` + ``principal_id``, or the older ``user_id``; 400 without."""
    if principal_type and principal_id:
        return (principal_type, principal_id)
    if user_id:
        return ("user", user_id)
    raise bad_request("principal_type and principal_id (or user_id) are required")


# The principal a query names (effective groups, effective policies).
QueriedPrincipal = Annotated[tuple[str, str], Depends(_queried_principal)]


def _text(policy_text: str | None, rego: str | None) -> tuple[str, str]:
    """The text of a body and its language: ``policy_text`` (the policy language) or ``rego``;
    400 without either."""
    if policy_text is not None:
        return policy_text, "dsl"
    if rego is not None:
        return rego, "rego"
    raise bad_request("policy_text: is required (or rego)")


def _errors(text: str, language: str) -> list[PolicyError]:
    return validate_rego(text) if language == "rego" else validate(text)


def _require_valid(text: str, language: str) -> None:
    errors = _errors(text, language)
    if errors:
        first = errors[0]
        field = "rego" if language == "rego" else "policy_text"
        raise bad_request(
            f"{field}: line {first.line}, column {first.column}: {first.message}",
            "invalid_policy",
        )


@router.get(
    f"{ORG}/policies",
    summary="List the organization's policies, built-ins included (by name)",
    response_model=PolicyList,
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def list_policies(services: ServicesDep, access: AccessDep, pages: Pages) -> JSONResponse:
    found, has_more = await services.access.list_policies(access.org, pages.after, pages.amount)
    next_offset = found[-1].name if found else None
    return JSONResponse(
        envelope(
            [summary_json(policy) for policy in found],
            has_more=has_more,
            next_offset=next_offset,
            amount=pages.amount,
        )
    )


@router.post(
    f"{ORG}/policies",
    status_code=201,
    summary="Create a policy (its text must validate)",
    responses={201: {"model": Policy}, **error_responses(400, 403, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def create_policy(
    body: CreatePolicyRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    text, language = _text(body.policy_text, body.rego)
    _require_valid(text, language)
    policy = await services.access.create_policy(
        access.org,
        name=body.name,
        text=text,
        description=body.description,
        by=access.caller,
        language=language,
    )
    return JSONResponse(policy_json(policy), status_code=201)


@router.post(
    f"{ORG}/policies:validate",
    summary="Validate policy text without saving it",
    response_model=ValidationResult,
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def validate_policy(body: ValidatePolicyRequest, access: AccessDep) -> JSONResponse:
    errors = _errors(*_text(body.policy_text, body.rego))
    return JSONResponse(
        {
            "valid": not errors,
            "errors": [
                {"line": error.line, "column": error.column, "message": error.message}
                for error in errors
            ],
        }
    )


@router.post(
    f"{ORG}/policies:generate",
    summary="Generate policy text from a prompt; the text always validates",
    response_model=GeneratedPolicy,
    responses=error_responses(400, 403, 404, 429, 502, 503),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def generate_policy(
    body: GeneratePolicyRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    try:
        text = await services.policy_generator.generate(body.prompt)
    except GeneratorRateLimited as exc:
        raise ApiError(429, "generator_rate_limited", str(exc)) from None
    except GeneratorBadOutput as exc:
        raise ApiError(502, "generator_bad_output", str(exc)) from None
    except GenerationError as exc:
        raise ApiError(503, "generator_unavailable", str(exc)) from None
    return JSONResponse({"policy_text": text})


@router.get(
    POLICY,
    summary="Get a policy with its attachments",
    response_model=PolicyDetail,
    responses=error_responses(403, 404),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def get_policy(policy_id: PolicyId, services: ServicesDep, access: AccessDep) -> JSONResponse:
    policy = await services.access.get_policy(access.org, policy_id)
    attachments = await services.access.attachments(access.org, policy_id=policy_id)
    return JSONResponse(
        {"policy": policy_json(policy), "attachments": [attachment_json(a) for a in attachments]}
    )


@router.put(
    POLICY,
    summary="Update a policy (built-ins cannot be changed)",
    response_model=Policy,
    responses=error_responses(400, 403, 404, 409),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def update_policy(
    policy_id: PolicyId, body: UpdatePolicyRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    text = language = None
    if body.policy_text is not None or body.rego is not None:
        text, language = _text(body.policy_text, body.rego)
        _require_valid(text, language)
    policy = await services.access.update_policy(
        access.org,
        policy_id,
        name=body.name,
        description=body.description,
        text=text,
        language=language,
    )
    return JSONResponse(policy_json(policy))


@router.delete(
    POLICY,
    status_code=204,
    summary="Delete a policy and its attachments (built-ins cannot be deleted)",
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def delete_policy(policy_id: PolicyId, services: ServicesDep, access: AccessDep) -> Response:
    await services.access.delete_policy(access.org, policy_id)
    return Response(status_code=204)


@router.post(
    f"{POLICY}/attachments",
    status_code=201,
    summary="Attach a policy to a user, group, role or agent",
    responses={201: {"model": Attachment}, **error_responses(400, 403, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def attach_policy(
    policy_id: PolicyId, body: AttachPolicyRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    principal = (body.principal_type, body.principal_id)
    await services.access.attach(access.org, policy_id, principal, access.caller)
    found = await services.access.attachments(access.org, policy_id=policy_id, principal=principal)
    return JSONResponse(attachment_json(found[0]), status_code=201)


@router.delete(
    f"{POLICY}/attachments",
    status_code=204,
    summary="Detach a policy from a user, group, role or agent",
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def detach_policy(
    policy_id: PolicyId,
    principal_type: Annotated[PrincipalType, Query(description="user, group, role or agent")],
    principal_id: Annotated[str, Query(description="The principal's ID")],
    services: ServicesDep,
    access: AccessDep,
) -> Response:
    await services.access.detach(access.org, policy_id, (principal_type, principal_id))
    return Response(status_code=204)


@router.get(
    f"{ORG}/attachments",
    summary="Every policy attachment in the organization",
    response_model=AttachmentList,
    responses=error_responses(403, 404),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def list_attachments(services: ServicesDep, access: AccessDep) -> JSONResponse:
    found = await services.access.attachments(access.org)
    return JSONResponse({"results": [attachment_json(item) for item in found]})


@router.get(
    f"{ORG}/effective-policies",
    summary="A principal's effective policies: direct, and inherited through its groups",
    response_model=EffectivePolicyList,
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.MANAGE_POLICIES)],
)
async def effective_policies(
    subject: QueriedPrincipal, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    found = await services.access.effective_policies(access.org, subject)
    return JSONResponse(
        {
            "results": [
                {
                    "policy_id": item.policy.id,
                    "policy_name": item.policy.name,
                    "is_builtin": item.policy.is_builtin,
                    "source": item.source,
                    "source_name": item.source_name,
                }
                for item in found
            ]
        }
    )
