"""The policy DSL: errors with their line and column, matching, Deny, reasons, built-ins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina_server.authz.actions import Action
from lamina_server.authz.builtins import BUILTIN_POLICIES, BUILTIN_TEXTS, builtin
from lamina_server.authz.policy import (
    ACCOUNT_ACTIONS,
    ORGANIZATION_ACTIONS,
    PATH_ACTIONS,
    CompiledPolicy,
    PolicyError,
    PolicyInvalid,
    PolicySet,
    Target,
    compile_policy,
    evaluate,
    validate,
)

REPO = Target("acme", "data")


def _obj(path: str, repository: str = "data", organization: str = "acme") -> Target:
    return Target(organization, repository, path)


def allows(text: str, action: Action, target: Target) -> bool:
    return evaluate([compile_policy(text, name="p")], action, target).allowed


# --- validation -------------------------------------------------------------------------------


def test_empty_and_comment_only_policies_are_valid_and_allow_nothing() -> None:
    for text in ("", "\n\n", "# nothing yet\n   # at all", "\t\n"):
        assert validate(text) == []
        assert not allows(text, Action.GET_OBJECT, _obj("a"))


def test_a_valid_policy_has_no_errors() -> None:
    text = (
        "# readers\n"
        "ListRepositories()\n"
        '  GetObject(repository="acme/*", path="public/*")   # trailing comment\n'
        'Deny  PutObject( path = "secret/*" , )\r\n'
        'GetObject(path="say \\"hi\\" \\\\ there")\n'
    )
    assert validate(text) == []


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("GetObjects()", 1, 1, "did you mean 'GetObject'?"),
        ("ListObjects()\n  getobject()", 2, 3, "did you mean 'GetObject'?"),
        ("Frobnicate()", 1, 1, "unknown action 'Frobnicate'"),
        ('GetObject(repo="a/b")', 1, 11, "did you mean 'repository'?"),
        ('GetObject(pth="a")', 1, 11, "did you mean 'path'?"),
        ('GetObject(path="a)', 1, 16, "unterminated string"),
        ('GetObject(path="a", path="b")', 1, 21, "duplicate argument 'path'"),
        ("deny GetObject()", 1, 1, "write 'Deny'"),
        ("Deny ()", 1, 6, "expected an action name"),
        ("GetObject", 1, 10, "expected '('"),
        ("GetObject() ListObjects()", 1, 13, "one statement per line"),
        ('GetObject(path="a"', 1, 19, "expected ',' or ')'"),
        ('GetObject(path="a" repository="b/c")', 1, 20, "expected ',' or ')'"),
        ("GetObject(path=a)", 1, 16, "expected a quoted string"),
        ("GetObject(,)", 1, 11, "expected an argument name"),
        ('GetObject(path="\\n")', 1, 17, "unknown escape"),
        ('GetObject(path="")', 1, 16, "must not be empty"),
        ('GetObject(path="/x")', 1, 16, "no leading '/'"),
        ('GetObject(repository="data")', 1, 22, '"*/data"'),
        ('ListMembers(repository="a/b")', 1, 13, "organization action"),
        ('CreateOrganization(repository="a/b")', 1, 20, "organization action"),
        ('GetRepository(path="x")', 1, 15, "takes no 'path' argument"),
        (") GetObject()", 1, 1, "expected an action name"),
    ],
)
def test_errors_name_line_column_and_problem(
    text: str, line: int, column: int, fragment: str
) -> None:
    errors = validate(text)
    assert len(errors) == 1, errors
    assert (errors[0].line, errors[0].column) == (line, column), errors[0]
    assert fragment in errors[0].message


def test_every_bad_line_is_reported_in_order() -> None:
    errors = validate("GetObject()\nBogus()\n\nGetObject(path=1)\n# fine\nListObjects(")
    assert [(e.line, e.column) for e in errors] == [(2, 1), (4, 16), (6, 13)]


def test_compile_raises_with_every_error() -> None:
    with pytest.raises(PolicyInvalid) as raised:
        compile_policy("Bogus()\nGetObject(")
    assert raised.value.errors == (
        PolicyError(1, 1, "unknown action 'Bogus'"),
        PolicyError(2, 11, "expected an argument name or ')', found end of line"),
    )
    assert "line 1, column 1" in str(raised.value)


def test_only_a_newline_ends_a_line() -> None:
    # A form feed or a Unicode line separator is not a line break: line numbers match editors'.
    assert [e.line for e in validate("GetObject()\x0cBogus()\nBogus()")] == [1, 2]


# --- matching ---------------------------------------------------------------------------------


def test_no_arguments_match_every_repository_and_org_level_actions() -> None:
    assert allows("GetObject()", Action.GET_OBJECT, _obj("any/thing", "other"))
    assert allows("ListRepositories()", Action.LIST_REPOSITORIES, Target("acme"))
    assert allows("ManageSecrets()", Action.MANAGE_SECRETS, Target("acme"))
    assert allows("CreateOrganization()", Action.CREATE_ORGANIZATION, Target(""))
    assert not allows("GetObject()", Action.PUT_OBJECT, _obj("a"))


def test_repository_pattern_matches_organization_slash_repository() -> None:
    text = 'GetObject(repository="acme/data")'
    assert allows(text, Action.GET_OBJECT, _obj("x"))
    assert not allows(text, Action.GET_OBJECT, _obj("x", "data2"))
    assert not allows(text, Action.GET_OBJECT, _obj("x", "data", "other"))
    assert allows('GetObject(repository="*/data")', Action.GET_OBJECT, _obj("x", "data", "o"))
    assert allows('GetObject(repository="acme/d*a")', Action.GET_OBJECT, _obj("x", "delta"))
    assert not allows('GetObject(repository="acme/d*a")', Action.GET_OBJECT, _obj("x", "deltas"))
    assert allows('GetObject(repository="*")', Action.GET_OBJECT, _obj("x", "z", "y"))


def test_a_repository_pattern_never_matches_an_organization_level_target() -> None:
    assert not allows('ManageSecrets(repository="acme/*")', Action.MANAGE_SECRETS, Target("acme"))
    assert allows('ManageSecrets(repository="acme/*")', Action.MANAGE_SECRETS, REPO)


def test_path_patterns_and_wildcards_across_slashes() -> None:
    text = 'GetObject(path="public/*")'
    assert allows(text, Action.GET_OBJECT, _obj("public/a"))
    assert allows(text, Action.GET_OBJECT, _obj("public/deep/er/a.csv"))
    assert not allows(text, Action.GET_OBJECT, _obj("publica"))
    assert not allows(text, Action.GET_OBJECT, _obj("private/public/a"))
    assert allows('GetObject(path="*.csv")', Action.GET_OBJECT, _obj("a/b/c.csv"))
    assert not allows('GetObject(path="*.csv")', Action.GET_OBJECT, _obj("a/b/c.csvx"))
    assert allows('GetObject(path="a/*/c/*")', Action.GET_OBJECT, _obj("a/b/b/c/d"))
    assert allows('GetObject(path="exact.txt")', Action.GET_OBJECT, _obj("exact.txt"))
    assert not allows('GetObject(path="exact.txt")', Action.GET_OBJECT, _obj("exact.txt2"))
    # Regex characters in a pattern are literal.
    assert allows('GetObject(path="a.(b)+*")', Action.GET_OBJECT, _obj("a.(b)+z"))
    assert not allows('GetObject(path="a.(b)+*")', Action.GET_OBJECT, _obj("aX(b)+z"))


def test_a_path_pattern_does_not_allow_the_whole_repository() -> None:
    # A listing with no prefix lists from the root: a pattern for public/ does not cover it.
    assert not allows('ListObjects(path="public/*")', Action.LIST_OBJECTS, REPO)
    assert allows('ListObjects(path="public/*")', Action.LIST_OBJECTS, _obj("public/"))
    assert allows('ListObjects(path="*")', Action.LIST_OBJECTS, REPO)


def test_both_arguments_must_match() -> None:
    text = 'GetObject(repository="acme/*", path="public/*")'
    assert allows(text, Action.GET_OBJECT, _obj("public/x", "r"))
    assert not allows(text, Action.GET_OBJECT, _obj("private/x", "r"))
    assert not allows(text, Action.GET_OBJECT, _obj("public/x", "r", "evil"))


# --- Deny and reasons -------------------------------------------------------------------------


def test_deny_wins_over_allows_in_any_policy_and_any_order() -> None:
    allow = compile_policy("GetObject()\nPutObject()", name="allow")
    deny = compile_policy('# no secrets\n\nDeny GetObject(path="secret/*")', name="deny")
    for policies in ([allow, deny], [deny, allow]):
        verdict = evaluate(policies, Action.GET_OBJECT, _obj("secret/key"))
        assert verdict.allowed is False
        assert verdict.reason == (
            "denied by policy 'deny' line 3: Deny GetObject(path=\"secret/*\")"
        )
        assert evaluate(policies, Action.GET_OBJECT, _obj("public/key")).allowed
        assert evaluate(policies, Action.PUT_OBJECT, _obj("secret/key")).allowed


def test_deny_in_the_same_policy_wins_whatever_the_line_order() -> None:
    text = 'Deny PutObject(repository="acme/prod")\nPutObject()'
    assert not allows(text, Action.PUT_OBJECT, _obj("x", "prod"))
    assert allows(text, Action.PUT_OBJECT, _obj("x", "dev"))


def test_a_deny_alone_allows_nothing() -> None:
    assert not allows('Deny GetObject(path="x")', Action.GET_OBJECT, _obj("y"))


def test_reasons_name_policy_line_action_and_resource() -> None:
    policies = [
        compile_policy("ListObjects()", name="first"),
        compile_policy("# c\nGetObject()\nGetObject()", name="ReadOnly"),
    ]
    assert evaluate(policies, Action.GET_OBJECT, _obj("a/b")).reason == (
        "allowed by policy 'ReadOnly' line 2"
    )
    assert evaluate(policies, Action.PUT_OBJECT, _obj("a/b")).reason == (
        "no policy allows PutObject on acme/data/a/b"
    )
    assert evaluate([], Action.GET_REPOSITORY, REPO).reason == (
        "no policy allows GetRepository on acme/data"
    )
    assert evaluate([], Action.LIST_MEMBERS, Target("acme")).reason == (
        "no policy allows ListMembers on acme"
    )


def test_a_deny_reason_quotes_its_arguments_back() -> None:
    policy = compile_policy('Deny GetObject(repository="acme/*", path="a \\"b\\" \\\\")', name="q")
    verdict = evaluate([policy], Action.GET_OBJECT, _obj('a "b" \\'))
    assert (
        verdict.reason
        == 'denied by policy \'q\' line 1: Deny GetObject(repository="acme/*", path="a \\"b\\" \\\\")'
    )


# --- built-ins --------------------------------------------------------------------------------


def test_builtins_are_valid_and_compiled_once() -> None:
    assert set(BUILTIN_POLICIES) == {"OrgAdmin", "ReadOnly", "ReadWrite"}
    for name, text in BUILTIN_TEXTS.items():
        assert validate(text) == []
        assert builtin(name) is BUILTIN_POLICIES[name]
        assert BUILTIN_POLICIES[name].name == name
    assert builtin("Nope") is None


def test_org_admin_allows_every_action() -> None:
    admin = BUILTIN_POLICIES["OrgAdmin"]
    for action in Action:
        assert evaluate([admin], action, _obj("x")).allowed, action


def test_read_only_reads_and_never_writes() -> None:
    read_only = BUILTIN_POLICIES["ReadOnly"]
    for action in Action:
        expected = action.value.startswith(("List", "Get")) and action not in {
            Action.GET_SECRET,
            Action.LIST_MEMBERS,
            Action.LIST_ORGANIZATIONS,
        }
        assert evaluate([read_only], action, _obj("x")).allowed is expected, action


def test_read_write_adds_sessions_objects_and_sandboxes() -> None:
    read_only = BUILTIN_POLICIES["ReadOnly"].actions
    read_write = BUILTIN_POLICIES["ReadWrite"].actions
    assert read_only < read_write
    assert read_write - read_only == {
        Action.CREATE_SESSION,
        Action.COMMIT_SESSION,
        Action.ROLLBACK_SESSION,
        Action.PUT_OBJECT,
        Action.DELETE_OBJECT,
        Action.CREATE_SANDBOX,
        Action.EXEC_SANDBOX,
        Action.CANCEL_SANDBOX,
        Action.FINISH_SANDBOX,
    }
    assert Action.APPROVE_SESSION not in read_write


# --- properties -------------------------------------------------------------------------------

_pattern = st.text(alphabet='ab/*.-_ "\\é', min_size=1, max_size=12)


def _render(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def _statements(draw: st.DrawFn) -> str:
    action = draw(st.sampled_from(list(Action)))
    arguments = []
    if action not in ACCOUNT_ACTIONS | ORGANIZATION_ACTIONS and draw(st.booleans()):
        organization = draw(st.sampled_from(["*", "acme", "a*"]))
        arguments.append(f"repository={_render(organization + '/' + draw(_pattern))}")
    if action in PATH_ACTIONS and draw(st.booleans()):
        path = draw(_pattern.filter(lambda p: not p.startswith("/")))
        arguments.append(f"path={_render(path)}")
    if draw(st.booleans()):
        arguments.reverse()
    deny = "Deny " if draw(st.booleans()) else ""
    comment = draw(st.sampled_from(["", "  # why", "#"]))
    return f"{deny}{action.value}({', '.join(arguments)}){comment}"


_targets = st.builds(
    Target,
    st.sampled_from(["acme", "", "other"]),
    st.none() | st.text(alphabet="ab-", max_size=6),
    st.none() | st.text(alphabet="ab/*.é", max_size=10),
)


@given(st.lists(_statements() | st.just("") | st.just("# note"), max_size=12), st.data())
def test_generated_policies_validate_and_evaluate_never_raises(
    lines: list[str], data: st.DataObject
) -> None:
    text = "\n".join(lines)
    assert validate(text) == []
    policy = compile_policy(text, name="gen")
    assert isinstance(policy, CompiledPolicy)
    verdict = evaluate([policy], data.draw(st.sampled_from(list(Action))), data.draw(_targets))
    assert verdict.reason


@given(st.text(max_size=200))
def test_validate_and_compile_agree_on_any_text(text: str) -> None:
    errors = validate(text)
    assert all(error.line >= 1 and error.column >= 1 for error in errors)
    if errors:
        with pytest.raises(PolicyInvalid):
            compile_policy(text)
    else:
        compile_policy(text)


# Statements a PolicySet gathers each way: prefixes, exact paths, wildcards elsewhere,
# repository-scoped ones, and no argument at all.
_FOCUSED = [
    f"{deny}{action.value}({', '.join(arguments)})"
    for deny in ("", "Deny ")
    for action in (Action.GET_OBJECT, Action.PUT_OBJECT)
    for path in (None, "a*", "ab/*", "a", "ab", "*", "**", "*b", "a*b", "b/*")
    for repository in (None, "acme/*", "other/b")
    for arguments in [
        [
            f"{name}={_render(value)}"
            for name, value in (("path", path), ("repository", repository))
            if value
        ]
    ]
]
_OBJECT_PATHS = (None, "", "a", "ab", "ab/c", "abb", "b/a", "ba", "x")
_object_targets = st.builds(
    Target,
    st.sampled_from(["acme", "other"]),
    st.sampled_from(["data", "b"]),
    st.sampled_from(_OBJECT_PATHS),
)


@settings(max_examples=400)
@given(
    st.lists(
        st.lists(
            st.sampled_from(_FOCUSED) | _statements(),
            min_size=1,
            max_size=4,
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([Action.GET_OBJECT, Action.PUT_OBJECT, Action.LIST_OBJECTS]),
    st.lists(_object_targets | _targets, min_size=1, max_size=8),
)
def test_a_policy_set_decides_as_its_policies_do(
    texts: list[list[str]], action: Action, targets: list[Target]
) -> None:
    policies = [compile_policy("\n".join(lines), name=f"p{i}") for i, lines in enumerate(texts)]
    every = PolicySet(policies)
    assert list(every) == policies
    for target in targets:
        assert evaluate(every, action, target) == evaluate(policies, action, target)


def test_a_policy_set_decides_each_kind_of_statement_as_its_policies_do() -> None:
    grant = compile_policy("GetObject()\nPutObject()", name="grant")
    for line in _FOCUSED:
        policy = compile_policy(line, name="one")
        for policies in ([policy], [policy, grant], [grant, policy]):
            every = PolicySet(policies)
            for action in (Action.GET_OBJECT, Action.PUT_OBJECT):
                for organization in ("acme", "other"):
                    for repository in ("data", "b"):
                        for path in _OBJECT_PATHS:
                            target = Target(organization, repository, path)
                            assert evaluate(every, action, target) == evaluate(
                                policies, action, target
                            ), (line, target)


def test_a_policy_set_reports_the_first_allow_and_any_deny_as_the_plain_list_does() -> None:
    locked = compile_policy(
        'GetObject(path="area/*")\nDeny PutObject(path="area/locked/*")', name="p0"
    )
    grant = compile_policy("PutObject()\nGetObject()", name="p1")
    every = PolicySet([locked, grant])
    verdict = evaluate(every, Action.PUT_OBJECT, _obj("area/locked/x"))
    assert verdict == evaluate([locked, grant], Action.PUT_OBJECT, _obj("area/locked/x"))
    assert not verdict.allowed and "p0" in verdict.reason
    assert evaluate(every, Action.PUT_OBJECT, _obj("area/x")).reason == (
        "allowed by policy 'p1' line 1"
    )
    assert evaluate(every, Action.GET_OBJECT, _obj("area/x")).reason == (
        "allowed by policy 'p0' line 1"
    )
    assert evaluate(PolicySet([locked]), Action.PUT_OBJECT, _obj("b")) == evaluate(
        [locked], Action.PUT_OBJECT, _obj("b")
    )
    exact = compile_policy('Deny PutObject(path="area/x")', name="p2")
    verdict = evaluate(PolicySet([grant, exact]), Action.PUT_OBJECT, _obj("area/x"))
    assert verdict == evaluate([grant, exact], Action.PUT_OBJECT, _obj("area/x"))
    assert not verdict.allowed
