"""The SDK's policy DSL evaluator (``lamina._policy``): parsing, matching, deciding."""

from __future__ import annotations

import pytest

from lamina import Explanation, InvalidArgumentError, PolicySyntaxError
from lamina._policy import Resource, Rule, SourcePolicy, evaluate, matches, parse_policy


def policy(text: str, name: str = "p", policy_id: str = "id-p") -> SourcePolicy:
    return SourcePolicy(policy_id, name, text)


# --- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("acme/data", "acme/data", True),
        ("acme/data", "acme/data2", False),
        ("acme/data*", "acme/data2", True),
        ("acme/*", "acme/a/b", True),  # * crosses slashes
        ("*", "", True),
        ("raw/*.csv", "raw/2024/x.csv", True),
        ("raw/*.csv", "raw/x.csvx", False),
        ("a.b", "axb", False),  # only * is special
        ("a[b]", "a[b]", True),
    ],
)
def test_wildcard_matching(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, value) is expected


# --- parsing ------------------------------------------------------------------------------


def test_parse_rules_comments_and_blank_lines() -> None:
    rules = parse_policy(
        "# readers\n"
        "\n"
        "ListRepositories()\n"
        '  GetObject(repository="acme/data*", path="raw/*")  # the raw tree\n'
        "Deny PutObject( repository = 'acme/data' , )\n"
        'ListObjects(path="a\\"b#c")\n'
    )
    assert rules == [
        Rule(line=3, text="ListRepositories()", action="ListRepositories"),
        Rule(
            line=4,
            text='GetObject(repository="acme/data*", path="raw/*")  # the raw tree',
            action="GetObject",
            repository="acme/data*",
            path="raw/*",
        ),
        Rule(
            line=5,
            text="Deny PutObject( repository = 'acme/data' , )",
            action="PutObject",
            deny=True,
            repository="acme/data",
        ),
        Rule(
            line=6,
            text='ListObjects(path="a\\"b#c")',
            action="ListObjects",
            path='a"b#c',
        ),
    ]


def test_an_empty_policy_has_no_rules() -> None:
    assert parse_policy("") == []
    assert parse_policy("# nothing\n   \n") == []


@pytest.mark.parametrize(
    ("text", "line", "column", "detail"),
    [
        ("GetObject", 1, 10, "expected '(', found the end of the line"),
        ("\nGetObject(", 2, 11, "expected a condition"),
        ('GetObject(bucket="x")', 1, 11, "unknown condition 'bucket'"),
        ('GetObject(path="a", path="b")', 1, 21, "condition 'path' given twice"),
        ("GetObject(path=a)", 1, 16, "expected a quoted string"),
        ('GetObject(path="a)', 1, 19, "unterminated string"),
        ('GetObject(path="a" repository="b")', 1, 20, "expected ','"),
        ("GetObject() extra", 1, 13, "unexpected text after ')'"),
        ("Deny", 1, 5, "expected '('"),
        ("(x)", 1, 1, "expected an action name"),
        ("Get*()", 1, 4, "expected '('"),
        ("Allow GetObject()", 1, 7, "expected '('"),
    ],
)
def test_syntax_errors_say_where(text: str, line: int, column: int, detail: str) -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        parse_policy(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert caught.value.detail.startswith(detail)
    assert str(caught.value).startswith(f"line {line}, column {column}: ")
    assert isinstance(caught.value, ValueError)


# --- resources ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("acme", Resource("acme")),
        ("acme/data", Resource("acme", "data")),
        ("acme/data/raw/a.csv", Resource("acme", "data", "raw/a.csv")),
        ("acme/data/", Resource("acme", "data")),
    ],
)
def test_resources_parse_as_the_server_writes_them(text: str, parsed: Resource) -> None:
    assert Resource.parse(text) == parsed
    assert str(parsed) == text.rstrip("/")


@pytest.mark.parametrize("text", ["", "/data", "acme//x"])
def test_bad_resources_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Resource.parse(text)


# --- deciding -----------------------------------------------------------------------------


def test_an_allowing_line_allows_and_is_named() -> None:
    result = evaluate(
        [policy("ListRepositories()\nGetObject()", name="readers", policy_id="p1")],
        "GetObject",
        "acme/data/raw/a.csv",
    )
    assert result == Explanation(
        allowed=True,
        action="GetObject",
        resource="acme/data/raw/a.csv",
        reason="policy 'readers' line 2 (GetObject()) allows it",
        policy_id="p1",
        policy_name="readers",
        line=2,
        rule="GetObject()",
    )
    assert result


def test_what_nothing_allows_is_denied() -> None:
    result = evaluate([policy("GetObject()")], "PutObject", "acme/data/x")
    assert not result
    assert (result.policy_id, result.line, result.rule) == (None, None, None)
    assert result.reason == "no policy allows PutObject on acme/data/x"
    assert not evaluate([], "GetObject", "acme/data")


def test_deny_wins_over_an_allow_in_any_policy_and_in_any_order() -> None:
    allow = policy("PutObject()\nGetObject()", name="admin", policy_id="a")
    deny = policy('# no writes to prod\nDeny PutObject(repository="acme/prod")', "guard", "g")
    for order in ([allow, deny], [deny, allow]):
        result = evaluate(order, "PutObject", "acme/prod/x")
        assert not result.allowed
        assert (result.policy_name, result.line) == ("guard", 2)
        assert result.reason.startswith("policy 'guard' line 2 (Deny PutObject(")
    assert evaluate([allow, deny], "PutObject", "acme/dev/x").allowed
    assert evaluate([allow, deny], "GetObject", "acme/prod/x").allowed


def test_the_first_allowing_line_is_the_one_named() -> None:
    result = evaluate(
        [policy("GetObject(path='raw/*')\nGetObject()", "one"), policy("GetObject()", "two")],
        "GetObject",
        "acme/data/raw/a",
    )
    assert (result.policy_name, result.line) == ("one", 1)


def test_repository_conditions() -> None:
    rules = [policy('GetObject(repository="acme/data*")')]
    assert evaluate(rules, "GetObject", "acme/data/x")
    assert evaluate(rules, "GetObject", "acme/data-2/x")
    assert not evaluate(rules, "GetObject", "acme/other/x")
    assert not evaluate(rules, "GetObject", "other/data/x")
    assert not evaluate(rules, "GetObject", "acme")  # no repository to match
    anywhere = [policy('GetObject(repository="*/data")')]
    assert evaluate(anywhere, "GetObject", "acme/data/x")
    assert evaluate(anywhere, "GetObject", "other/data")
    assert not evaluate(anywhere, "GetObject", "acme/data2")
    assert evaluate([policy('GetObject(repository="*")')], "GetObject", "acme/any")


def test_an_action_without_repository_matches_every_repository_and_the_org() -> None:
    rules = [policy("ListRepositories()\nManageAgents()")]
    assert evaluate(rules, "ListRepositories", "acme")
    assert evaluate(rules, "ListRepositories", "acme/anything")
    assert evaluate(rules, "ManageAgents", "acme")


def test_path_conditions_match_the_path_or_nothing() -> None:
    rules = [policy('GetObject(path="raw/*")\nDeny DeleteObject(path="keep/*")\nDeleteObject()')]
    assert evaluate(rules, "GetObject", "acme/data/raw/a")
    assert not evaluate(rules, "GetObject", "acme/data/cooked/a")
    assert not evaluate(rules, "GetObject", "acme/data")  # the whole repository: no
    assert not evaluate(rules, "DeleteObject", "acme/data/keep/a")
    assert evaluate(rules, "DeleteObject", "acme/data/other")
    assert evaluate(rules, "DeleteObject", "acme/data")  # a path-scoped deny is not repo-wide
    # a resource without a path has the path "" (a listing of the whole repository)
    assert evaluate([policy('ListObjects(path="*")')], "ListObjects", "acme/data")
    assert not evaluate([policy('ListObjects(path="public/*")')], "ListObjects", "acme/data")


def test_a_policy_that_does_not_parse_is_an_error_naming_it() -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        evaluate([policy("GetObject()"), policy("\nGetObject(", name="broken")], "X", "a")
    assert caught.value.policy == "broken"
    assert caught.value.line == 2
    assert str(caught.value).startswith("policy 'broken', line 2, column 11: ")


# --- agreement with the server's evaluator -------------------------------------------------

AGREEMENT_POLICIES = [
    "",
    "# only comments\n",
    "GetObject()\nListObjects()",
    'GetObject(repository="acme/*", path="public/*")\nListObjects(repository="acme/*")',
    'PutObject(repository="acme/scratch", path="analysts/*")\nDeny PutObject(path="*.exe")',
    'Deny GetObject(path="public/embargoed/*")   # until the announcement\nGetObject()',
    'ListObjects(path="*")\nDeny ListObjects(repository="*/secret")',
    'DeleteRepository(repository="*/tmp-*")\nGetRepository(repository="*")',
    "ManageAgents()\nDeny ManageAgents()",
    'GetObject(path="*.csv", repository="acme/data",)',
]
AGREEMENT_REQUESTS = [
    ("GetObject", "acme/data/public/a.csv"),
    ("GetObject", "acme/data/public/embargoed/b"),
    ("GetObject", "other/data/public/a"),
    ("GetObject", "acme/data/x.csv"),
    ("ListObjects", "acme/data"),
    ("ListObjects", "acme/secret/a"),
    ("PutObject", "acme/scratch/analysts/run.exe"),
    ("PutObject", "acme/scratch/analysts/run.py"),
    ("DeleteRepository", "acme/tmp-1"),
    ("DeleteRepository", "acme/keep"),
    ("GetRepository", "zeta/any"),
    ("ManageAgents", "acme"),
]


def test_the_sdk_decides_as_the_server_does() -> None:
    """Every subset of up to two of the policies above, on every request above: the same
    decision as ``lamina_server.authz.policy.evaluate`` (when the server is installed)."""
    server = pytest.importorskip("lamina_server.authz.policy")
    from lamina_server.authz.actions import Action

    texts = [(f"p{i}", text) for i, text in enumerate(AGREEMENT_POLICIES)]
    combinations = [[one] for one in texts] + [
        [one, two] for i, one in enumerate(texts) for two in texts[i + 1 :]
    ]
    for chosen in combinations:
        compiled = [server.compile_policy(text, name=name) for name, text in chosen]
        ours = [policy(text, name=name, policy_id=name) for name, text in chosen]
        for action, resource in AGREEMENT_REQUESTS:
            parsed = Resource.parse(resource)
            path = parsed.path
            if path is None and action in ("GetObject", "PutObject", "ListObjects", "DeleteObject"):
                path = ""
            target = server.Target(parsed.organization, parsed.repository, path)
            expected = server.evaluate(compiled, Action(action), target).allowed
            assert evaluate(ours, action, parsed).allowed is expected, (chosen, action, resource)


def test_the_server_builtin_policies_parse() -> None:
    builtins = pytest.importorskip("lamina_server.authz.builtins")
    for name, text in builtins.BUILTIN_TEXTS.items():
        assert parse_policy(text), name
