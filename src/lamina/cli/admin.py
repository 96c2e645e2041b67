"""Administration: ``lamina org``, ``repo``, ``agent``, ``key`` and ``policy``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lamina._async._client import AsyncClient
from lamina._async.resources.api_keys import AsyncAPIKeys
from lamina.cli.app import CONTEXT_SETTINGS, State, fail, pass_state, run
from lamina.cli.locations import parse_repository
from lamina.cli.output import emit_json, note, table, when
from lamina.models.policies import ValidationResult

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _listing(state: State, collect: Any) -> list[Any]:
    async def body() -> list[Any]:
        async with state.client() as client:
            found: list[Any] = await collect(client)
            return found

    return run(body)


# -- organizations ---------------------------------------------------------------------------


@click.group("org", context_settings=CONTEXT_SETTINGS)
def org() -> None:
    """Organizations you belong to.

    \b
    Examples:
      lamina org ls
      lamina org create acme --display-name "Acme Corp"
    """


@org.command("ls")
@json_option
@pass_state
def org_ls(state: State, as_json: bool) -> None:
    """List your organizations.

    \b
    Examples:
      lamina org ls
      lamina org ls --json
    """
    found = _listing(state, lambda c: _collect(c.organizations.list()))
    if as_json:
        emit_json(found)
        return
    table(
        ("NAME", "DISPLAY NAME", "CREATED"),
        [(o.name, o.display_name, when(o.created_at)) for o in found],
    )


@org.command("create")
@click.argument("name")
@click.option("--display-name", help="A display name (default: NAME).")
@pass_state
def org_create(state: State, name: str, display_name: str | None) -> None:
    """Create an organization (you become its admin).

    \b
    Example:
      lamina org create acme --display-name "Acme Corp"
    """

    async def body() -> str:
        async with state.client() as client:
            return (await client.organizations.create(name, display_name)).name

    click.echo(f"Created organization {run(body)}.")


async def _collect(pager: Any) -> list[Any]:
    return [getattr(item, "data", item) async for item in pager]


# -- repositories ----------------------------------------------------------------------------


@click.group("repo", context_settings=CONTEXT_SETTINGS)
def repo() -> None:
    """Repositories: create, list, remove.

    \b
    Examples:
      lamina repo create acme/datasets --description "training data"
      lamina repo create acme/models --approval-required-for agents
      lamina repo ls acme
      lamina repo rm acme/scratch --yes
    """


@repo.command("create")
@click.argument("repository")
@click.option("--description", default="", help="What it holds.")
@click.option(
    "--approval-required-for",
    type=click.Choice(["none", "agents", "all"]),
    help="Whose commits wait for a second principal's approval.",
)
@pass_state
def repo_create(
    state: State, repository: str, description: str, approval_required_for: str | None
) -> None:
    """Create a repository, org/name.

    \b
    Examples:
      lamina repo create acme/datasets --description "training data"
      lamina repo create acme/models --approval-required-for agents
    """
    target = parse_repository(repository)

    async def body() -> str:
        async with state.client() as client:
            repositories = client.organization(target.org).repositories
            created = await repositories.create(
                target.repo,
                description=description,
                approval_required_for=approval_required_for,  # type: ignore[arg-type]
            )
            return created.path

    click.echo(f"Created repository {run(body)}.")


@repo.command("ls")
@click.argument("organization")
@json_option
@pass_state
def repo_ls(state: State, organization: str, as_json: bool) -> None:
    """List an organization's repositories.

    \b
    Examples:
      lamina repo ls acme
      lamina repo ls acme --json
    """
    found = _listing(state, lambda c: _collect(c.organization(organization).repositories.list()))
    if as_json:
        emit_json(found)
        return
    rows = [(f"{organization}/{r.name}", when(r.created_at), r.description) for r in found]
    table(("REPOSITORY", "CREATED", "DESCRIPTION"), rows)


@repo.command("rm")
@click.argument("repository")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def repo_rm(state: State, repository: str, yes: bool) -> None:
    """Delete a repository.

    \b
    Examples:
      lamina repo rm acme/scratch
      lamina repo rm acme/scratch --yes
    """
    target = parse_repository(repository)
    if not yes:
        click.confirm(f"Delete the repository {target.repository}?", abort=True)

    async def body() -> None:
        async with state.client() as client:
            await client.repository(target.repository).delete()

    run(body)
    click.echo(f"Deleted repository {target.repository}.")


# -- agents ----------------------------------------------------------------------------------


@click.group("agent", context_settings=CONTEXT_SETTINGS)
def agent() -> None:
    """Agents: non-human principals of an organization, with keys of their own.

    \b
    Examples:
      lamina agent create acme etl-bot --description "nightly import" --policy ./etl.policy
      lamina key create nightly --agent acme/etl-bot
      lamina agent ls acme
      lamina agent rm acme etl-bot
    """


@agent.command("ls")
@click.argument("organization")
@json_option
@pass_state
def agent_ls(state: State, organization: str, as_json: bool) -> None:
    """List an organization's agents.

    \b
    Example:
      lamina agent ls acme
    """
    found = _listing(state, lambda c: _collect(c.organization(organization).agents.list()))
    if as_json:
        emit_json(found)
        return
    rows = [(a.name, a.id, when(a.created_at), a.description) for a in found]
    table(("NAME", "ID", "CREATED", "DESCRIPTION"), rows)


@agent.command("create")
@click.argument("organization")
@click.argument("name")
@click.option("--description", default="", help="What the agent does.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file with the agent's inline policy.",
)
@pass_state
def agent_create(
    state: State, organization: str, name: str, description: str, policy_file: Path | None
) -> None:
    """Create an agent (give it a key with: lamina key create NAME --agent ORG/AGENT).

    \b
    Examples:
      lamina agent create acme etl-bot --description "nightly import"
      lamina agent create acme reader --policy ./reader.policy
    """
    policy = policy_file.read_text(encoding="utf-8") if policy_file is not None else None

    async def body() -> str:
        async with state.client() as client:
            agents = client.organization(organization).agents
            created = await agents.create(name, description=description, inline_policy=policy)
            return created.id

    click.echo(f"Created agent {organization}/{name} ({run(body)}).")


@agent.command("rm")
@click.argument("organization")
@click.argument("name")
@pass_state
def agent_rm(state: State, organization: str, name: str) -> None:
    """Delete an agent and revoke its keys.

    \b
    Example:
      lamina agent rm acme etl-bot
    """

    async def body() -> None:
        async with state.client() as client:
            await client.organization(organization).agents.delete(name)

    run(body)
    click.echo(f"Deleted agent {organization}/{name}.")


# -- API keys --------------------------------------------------------------------------------

agent_option = click.option(
    "--agent", "agent_path", metavar="ORG/AGENT", help="An agent's keys instead of your own."
)


async def _keys(client: AsyncClient, agent_path: str | None) -> AsyncAPIKeys:
    if agent_path is None:
        return client.auth.keys
    organization, slash, name = agent_path.partition("/")
    if not slash or not organization or not name:
        fail(f"--agent takes ORG/AGENT, got {agent_path!r}")
    return (await client.organization(organization).agents.get(name)).api_keys


@click.group("key", context_settings=CONTEXT_SETTINGS)
def key() -> None:
    """API keys: yours, or an agent's (--agent ORG/AGENT).

    \b
    Examples:
      lamina key ls
      lamina key create laptop
      lamina key create nightly --agent acme/etl-bot
      lamina key revoke 0b6f... --agent acme/etl-bot
    """


@key.command("ls")
@agent_option
@json_option
@pass_state
def key_ls(state: State, agent_path: str | None, as_json: bool) -> None:
    """List API keys (revoked ones too).

    \b
    Examples:
      lamina key ls
      lamina key ls --agent acme/etl-bot --json
    """

    async def collect(client: AsyncClient) -> list[Any]:
        return [k.data async for k in (await _keys(client, agent_path)).list()]

    found = _listing(state, collect)
    if as_json:
        emit_json(found)
        return
    rows = [
        (
            k.id,
            k.name,
            f"...{k.token_hint}",
            when(k.created_at),
            when(k.last_used_at),
            "revoked" if k.revoked_at else "active",
        )
        for k in found
    ]
    table(("ID", "NAME", "HINT", "CREATED", "LAST USED", "STATE"), rows)


@key.command("create")
@click.argument("name")
@click.option("--description", help="What the key is for.")
@agent_option
@json_option
@pass_state
def key_create(
    state: State, name: str, description: str | None, agent_path: str | None, as_json: bool
) -> None:
    """Issue an API key and print it (shown this once).

    \b
    Examples:
      lamina key create laptop
      lamina key create nightly --agent acme/etl-bot
    """

    async def body() -> tuple[str, str]:
        async with state.client() as client:
            created = await (await _keys(client, agent_path)).create(name, description=description)
            assert created.token is not None
            return created.id, created.token

    key_id, token = run(body)
    if as_json:
        emit_json({"id": key_id, "name": name, "token": token})
        return
    click.echo(token)
    note(f"Key {key_id} ({name}): the token above is shown only once.")


@key.command("revoke")
@click.argument("key_id")
@agent_option
@pass_state
def key_revoke(state: State, key_id: str, agent_path: str | None) -> None:
    """Revoke an API key: it stops working at once.

    \b
    Examples:
      lamina key revoke 0b6f...
      lamina key revoke 0b6f... --agent acme/etl-bot
    """

    async def body() -> None:
        async with state.client() as client:
            await (await _keys(client, agent_path)).revoke(key_id)

    run(body)
    click.echo(f"Revoked key {key_id}.")


# -- policies --------------------------------------------------------------------------------


@click.group("policy", context_settings=CONTEXT_SETTINGS)
def policy() -> None:
    """Policies of an organization.

    \b
    Examples:
      lamina policy validate ./readers.policy --org acme
      lamina policy ls acme
    """


@policy.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--org",
    "organization",
    help="Validate with this organization's server rules (default: your first organization).",
)
@json_option
@pass_state
def policy_validate(state: State, file: str, organization: str | None, as_json: bool) -> None:
    """Check a policy file with the server's validator (exit status 1 when it has errors).

    \b
    Examples:
      lamina policy validate ./readers.policy
      lamina policy validate ./readers.policy --org acme --json
    """
    with click.open_file(file, encoding="utf-8") as handle:
        text = handle.read()

    async def body() -> ValidationResult:
        async with state.client() as client:
            name = organization
            if name is None:
                organizations = (await client.auth.me()).organizations
                if not organizations:
                    fail("you belong to no organization: pass --org")
                name = organizations[0].name
            return await client.organization(name).policies.validate(text)

    result = run(body)
    if as_json:
        emit_json(result)
    elif result.valid:
        click.echo(f"{file}: valid")
    else:
        for issue in result.errors:
            click.echo(f"{file}:{issue.line}:{issue.column}: {issue.message}")
    if not result.valid:
        click.get_current_context().exit(1)


@policy.command("ls")
@click.argument("organization")
@json_option
@pass_state
def policy_ls(state: State, organization: str, as_json: bool) -> None:
    """List an organization's policies (built-in ones too).

    \b
    Example:
      lamina policy ls acme
    """
    found = _listing(state, lambda c: _collect(c.organization(organization).policies.list()))
    if as_json:
        emit_json(found)
        return
    rows = [(p.id, p.name, "yes" if p.is_builtin else "", p.description) for p in found]
    table(("ID", "NAME", "BUILT-IN", "DESCRIPTION"), rows)


COMMANDS = [org, repo, agent, key, policy]
