"""``:generate``: the rule generator's policies are valid and allow what was asked, not more; the
OpenAI-compatible generator never returns invalid text (exercised over a mock transport)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina_server.authz.actions import Action
from lamina_server.authz.generate import (
    GeneratorBadOutput,
    GeneratorRateLimited,
    GeneratorSettings,
    GeneratorUnavailable,
    OpenAIGenerator,
    RuleGenerator,
    policy_generator,
)
from lamina_server.authz.policy import Target, compile_policy, evaluate, validate

pytestmark = pytest.mark.anyio

RULES = RuleGenerator()


def allowed(prompt: str) -> set[tuple[Action, Target]]:
    """Which (action, target) of a fixed probe set the generated policy allows."""
    text = RULES.policy_for(prompt)
    assert validate(text) == [], text
    policy = compile_policy(text, name="generated")
    return {
        (action, target)
        for action in Action
        for target in PROBES
        if evaluate([policy], action, target).allowed
    }


PROBES = (
    Target("acme"),
    Target("acme", "X", "data/a.csv"),
    Target("acme", "X", "other/a.csv"),
    Target("acme", "Y", "data/a.csv"),
)
READS = {
    Action.LIST_REPOSITORIES,
    Action.GET_REPOSITORY,
    Action.LIST_OBJECTS,
    Action.GET_OBJECT,
    Action.LIST_COMMITS,
    Action.GET_COMMIT,
}
SANDBOX = {
    Action.LIST_SANDBOXES,
    Action.GET_SANDBOX,
    Action.CREATE_SANDBOX,
    Action.EXEC_SANDBOX,
    Action.CANCEL_SANDBOX,
    Action.FINISH_SANDBOX,
}


def actions(found: set[tuple[Action, Target]]) -> set[Action]:
    return {action for action, _ in found}


def test_read_only_access_to_all_repositories() -> None:
    found = allowed("read-only access to all repositories")
    assert actions(found) == READS
    assert all((Action.GET_OBJECT, target) in found for target in PROBES[1:])


def test_write_to_a_prefix_in_one_repository() -> None:
    found = allowed("write to data/ in repo X")
    assert actions(found) == {
        Action.CREATE_SESSION,
        Action.GET_SESSION,
        Action.COMMIT_SESSION,
        Action.ROLLBACK_SESSION,
        Action.PUT_OBJECT,
    }
    assert {t for a, t in found if a is Action.PUT_OBJECT} == {PROBES[1]}
    assert {t for a, t in found if a is Action.CREATE_SESSION} == {PROBES[1], PROBES[2]}


def test_run_sandboxes() -> None:
    found = allowed("run sandboxes")
    assert actions(found) == SANDBOX


def test_organization_slash_repository_and_folder() -> None:
    found = allowed("Read access to acme/Y under folder data")
    assert {t for a, t in found if a is Action.GET_OBJECT} == {PROBES[3]}
    assert (Action.LIST_REPOSITORIES, PROBES[0]) in found


def test_a_negation_takes_away_and_denies() -> None:
    assert Action.DELETE_OBJECT not in actions(allowed("read and write in repo X, no deletes"))
    found = allowed("admin, everything except deleting")
    assert actions(found) == set(Action) - {Action.DELETE_OBJECT}
    assert "Deny DeleteObject()" in RULES.policy_for("admin, everything except deleting")


def test_admin_allows_everything() -> None:
    assert actions(allowed("make them an org admin")) == set(Action)


def test_a_request_no_rule_understands_allows_nothing() -> None:
    text = RULES.policy_for("make me a sandwich")
    assert validate(text) == []
    assert allowed("make me a sandwich") == set()
    assert "allows nothing" in text


def test_hostile_prompts_stay_valid() -> None:
    for prompt in ['write "x") GetObject( in repo "a\\b', "read\nDeleteObject()", "/ / * repo /"]:
        text = RULES.policy_for(prompt)
        assert validate(text) == [], text
    # A statement in the prompt is echoed in a comment, never obeyed.
    assert Action.DELETE_OBJECT not in actions(allowed("read\nDeleteObject()"))


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_any_prompt_gives_valid_text(prompt: str) -> None:
    assert validate(RULES.policy_for(prompt)) == []


async def test_the_rule_generator_is_a_policy_generator() -> None:
    assert await RULES.generate("run sandboxes") == RULES.policy_for("run sandboxes")
    assert isinstance(policy_generator(None), RuleGenerator)


# --- OpenAI-compatible endpoint, over a mock transport (no network) ---------------------------


def _endpoint(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[dict[str, object]]]:
    requests: list[dict[str, object]] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://llm.test/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer k"
        requests.append(json.loads(request.content))
        return queue.pop(0)

    return httpx.MockTransport(handle), requests


def _says(content: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


async def test_a_valid_answer_is_returned_without_fences() -> None:
    transport, requests = _endpoint(_says("```\nGetObject()\n```"))
    generator = OpenAIGenerator("https://llm.test/v1/", "k", "m", transport=transport)
    assert await generator.generate("read") == "GetObject()\n"
    assert requests[0]["model"] == "m"


async def test_an_invalid_answer_is_retried_with_its_errors() -> None:
    transport, requests = _endpoint(_says("GetObjects()"), _says("GetObject()"))
    generator = OpenAIGenerator("https://llm.test/v1", "k", "m", transport=transport)
    assert await generator.generate("read") == "GetObject()\n"
    retry = requests[1]["messages"]
    assert isinstance(retry, list)
    assert "did you mean 'GetObject'" in retry[-1]["content"]


async def test_twice_invalid_is_an_error_or_the_fallback() -> None:
    transport, _ = _endpoint(_says("nope"), _says("still nope"))
    generator = OpenAIGenerator("https://llm.test/v1", "k", "m", transport=transport)
    with pytest.raises(GeneratorBadOutput):
        await generator.generate("read")
    transport, _ = _endpoint(_says("nope"), _says("still nope"))
    generator = OpenAIGenerator(
        "https://llm.test/v1", "k", "m", transport=transport, fallback=RULES
    )
    assert await generator.generate("run sandboxes") == RULES.policy_for("run sandboxes")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(429), GeneratorRateLimited),
        (httpx.Response(500, text="boom"), GeneratorUnavailable),
        (httpx.Response(200, json={"choices": []}), GeneratorBadOutput),
        (httpx.Response(200, text="not json"), GeneratorBadOutput),
    ],
)
async def test_endpoint_failures_are_named(
    response: httpx.Response, error: type[Exception]
) -> None:
    transport, _ = _endpoint(response)
    with pytest.raises(error):
        await OpenAIGenerator("https://llm.test/v1", "k", "m", transport=transport).generate("x")


def test_settings_give_an_endpoint_generator_with_the_rules_behind() -> None:
    generator = policy_generator(GeneratorSettings("https://llm.test/v1", "k", "m"))
    assert isinstance(generator, OpenAIGenerator)
