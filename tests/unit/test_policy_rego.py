"""Rego policies (Cerebral compatibility): validated, and evaluated beside DSL policies."""

from __future__ import annotations

import pytest

from lamina_server.authz.actions import Action
from lamina_server.authz.policy import (
    PolicyInvalid,
    PolicySet,
    Subject,
    Target,
    compile_policy,
    evaluate,
)
from lamina_server.authz.rego import compile_rego, validate_rego

POLICY = """package lamina
import rego.v1

default allow := false

allow if {
    input.action in {"GetObject", "ListObjects"}
    startswith(input.resource.path, "public/")
}

allow if input.principal.name == "root"

deny contains "no secrets" if startswith(input.resource.path, "public/secret/")
"""
ALICE = Subject("user", "u1", "alice")


def _obj(path: str) -> Target:
    return Target("acme", "data", path)


def test_allow_and_deny_rules_decide() -> None:
    policy = compile_rego(POLICY, name="cerebral")
    verdict = evaluate([policy], Action.GET_OBJECT, _obj("public/a"), subject=ALICE)
    assert verdict.allowed
    assert verdict.reason == "allowed by Rego policy 'cerebral'"
    verdict = evaluate([policy], Action.PUT_OBJECT, _obj("public/a"), subject=ALICE)
    assert verdict.reason == "no policy allows PutObject on acme/data/public/a"
    root = Subject("user", "u0", "root")
    assert evaluate(
        [policy], Action.DELETE_REPOSITORY, Target("acme", "data"), subject=root
    ).allowed
    verdict = evaluate([policy], Action.GET_OBJECT, _obj("public/secret/k"), subject=root)
    assert verdict == verdict.__class__(False, "denied by Rego policy 'cerebral': no secrets")


def test_a_mix_of_rego_and_dsl_deny_wins_either_way() -> None:
    rego = compile_rego(POLICY, name="cerebral")
    dsl = compile_policy('Deny GetObject(path="public/b*")\nPutObject()', name="dsl")
    assert not evaluate([rego, dsl], Action.GET_OBJECT, _obj("public/b"), subject=ALICE).allowed
    assert evaluate([rego, dsl], Action.PUT_OBJECT, _obj("x"), subject=ALICE).allowed
    assert not evaluate([dsl, rego], Action.GET_OBJECT, _obj("public/secret/x")).allowed


def test_a_policy_set_holding_a_rego_policy_decides_as_the_plain_list() -> None:
    rego = compile_rego(POLICY, name="cerebral")
    dsl = compile_policy('Deny GetObject(path="public/b*")\nPutObject()', name="dsl")
    for policies in ([rego, dsl], [dsl, rego]):
        every = PolicySet(policies)
        for action, path in (
            (Action.GET_OBJECT, "public/b"),
            (Action.GET_OBJECT, "public/a"),
            (Action.GET_OBJECT, "public/secret/x"),
            (Action.PUT_OBJECT, "x"),
        ):
            assert evaluate(every, action, _obj(path), subject=ALICE) == evaluate(
                policies, action, _obj(path), subject=ALICE
            )


def test_a_missing_principal_is_null() -> None:
    policy = compile_rego(POLICY, name="cerebral")
    assert not evaluate([policy], Action.DELETE_REPOSITORY, Target("acme", "data")).allowed


def test_syntax_errors_have_a_line_and_column() -> None:
    errors = validate_rego("package lamina\n\nallow if {{ input.x = }")
    assert errors
    assert (errors[0].line, errors[0].column) == (3, 10)
    with pytest.raises(PolicyInvalid):
        compile_rego("package lamina\nallow if {")


def test_the_package_must_be_lamina() -> None:
    errors = validate_rego("package other\nallow := true")
    assert [e.message for e in errors] == ["a Rego policy must be 'package lamina'"]
    assert validate_rego(POLICY) == []
