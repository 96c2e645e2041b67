"""``lamina auth``: log in (check a key against a server and save it), log out, who am I."""

from __future__ import annotations

import click

from lamina._async._client import AsyncClient
from lamina._config import DEFAULT_ENDPOINT_URL, default_config_path, read_config_file
from lamina.cli.app import CONTEXT_SETTINGS, State, pass_state, run
from lamina.cli.config_file import update_config
from lamina.cli.output import emit_json, note
from lamina.models.users import CurrentUser


@click.group("auth", context_settings=CONTEXT_SETTINGS)
def auth() -> None:
    """Log in to a server, log out, and show who you are.

    The key and endpoint are saved in ~/.lamina/config.toml (mode 0600), the file the SDK
    reads when LAMINA_API_KEY and LAMINA_ENDPOINT_URL are not set.

    \b
    Examples:
      lamina auth login
      lamina auth whoami
      lamina auth logout
    """


async def _me(endpoint_url: str, api_key: str | None) -> tuple[str, CurrentUser]:
    async with AsyncClient(api_key=api_key, endpoint_url=endpoint_url) as client:
        return client.endpoint_url, await client.auth.me()


def _describe(user: CurrentUser) -> str:
    caller = user.caller
    orgs = ", ".join(org.name for org in user.organizations) or "none"
    return f"{caller.type} {caller.name or caller.id} (organizations: {orgs})"


@auth.command("login")
@click.option("--endpoint", "endpoint", metavar="URL", help="The server's URL.")
@click.option("--api-key", "api_key", metavar="KEY", help="The API key (prompted when left out).")
@pass_state
def login(state: State, endpoint: str | None, api_key: str | None) -> None:
    """Check an endpoint and API key against the server, then save them.

    Without --endpoint or --api-key it asks (the key is not echoed). Nothing is saved when
    the server refuses the key.

    \b
    Examples:
      lamina auth login
      lamina auth login --endpoint https://lamina.example.com --api-key tuk-...
    """
    path = default_config_path()
    saved = read_config_file(path)
    endpoint = endpoint or state.endpoint_url
    if endpoint is None:
        endpoint = click.prompt(
            "Endpoint URL", default=saved.get("endpoint_url", DEFAULT_ENDPOINT_URL)
        )
    api_key = api_key or state.api_key or click.prompt("API key", hide_input=True)
    endpoint_url, user = run(_me, endpoint, api_key)
    update_config(path, {"api_key": api_key, "endpoint_url": endpoint_url})
    click.echo(f"Logged in to {endpoint_url} as {_describe(user)}.")
    note(f"Saved the key in {path} (mode 0600).")


@auth.command("logout")
def logout() -> None:
    """Remove the saved API key from the config file (the endpoint stays).

    \b
    Example:
      lamina auth logout
    """
    path = default_config_path()
    if "api_key" not in read_config_file(path):
        note(f"No API key saved in {path}.")
        return
    update_config(path, {"api_key": None})
    click.echo(f"Logged out: removed the API key from {path}.")


@auth.command("whoami")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def whoami(state: State, as_json: bool) -> None:
    """Show who the API key in use belongs to, on which server.

    \b
    Examples:
      lamina auth whoami
      lamina auth whoami --json
    """

    async def body() -> tuple[str, CurrentUser]:
        async with state.client() as client:
            return client.endpoint_url, await client.auth.me()

    endpoint_url, user = run(body)
    if as_json:
        emit_json({"endpoint_url": endpoint_url, "caller": user.caller, **_fields(user)})
        return
    click.echo(f"{_describe(user)} at {endpoint_url}")


def _fields(user: CurrentUser) -> dict[str, object]:
    return {"user": user.user, "organizations": user.organizations}


COMMANDS = [auth]
