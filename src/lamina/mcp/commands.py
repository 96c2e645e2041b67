"""``run_command``: a command in a sandbox on the repository, and its outcome.

The tool opens a service sandbox (the repository mounted at ``/sandbox``), runs the command
over the sandbox's exec stream, and then, if the command exited 0 (and ``commit`` is true),
finishes the sandbox so that what it wrote under the mount is committed, through approval
when the repository holds an agent's commits; otherwise the sandbox is cancelled and its
changes are discarded. stdout and stderr are kept apart, each bounded (see
:mod:`lamina.mcp.output`).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from lamina._async.resources.sandboxes import AsyncSandbox
from lamina._errors import ConflictError, LaminaError, SandboxError
from lamina.mcp.credentials import Clients, lamina_client
from lamina.mcp.errors import tool_errors
from lamina.mcp.output import BoundedOutput
from lamina.mcp.params import Repository
from lamina.models.sandboxes import SandboxOutcome, SandboxStatus

#: Seconds to wait for the sandbox to start, and then for its outcome once finished.
START_TIMEOUT = 120.0
FINISH_TIMEOUT = 300.0
#: Seconds the sandbox may live beyond the command's own timeout (start, capture, commit).
SANDBOX_MARGIN = 600


@tool_errors
async def run_command(
    repository: Repository,
    command: Annotated[str, Field(description="A shell command, run with sh -c")],
    ctx: Context[Clients, Any],
    image: Annotated[str, Field(description="Sandbox image ('' : the server's default)")] = "",
    env: Annotated[dict[str, str] | None, Field(description="Environment variables")] = None,
    cwd: Annotated[str, Field(description="Working directory ('' : the image's)")] = "",
    timeout: Annotated[int, Field(description="Most seconds the command may run", gt=0)] = 300,
    commit: Annotated[
        bool, Field(description="Commit what the command wrote under /sandbox if it exits 0")
    ] = True,
    max_output_bytes: Annotated[
        int, Field(description="Most bytes of stdout, and of stderr, to return", gt=0)
    ] = 32768,
) -> dict[str, Any]:
    """Run a shell command in a sandbox with the repository mounted at ``/sandbox``.

    What the command writes under ``/sandbox`` is committed when it exits 0 (unless
    ``commit`` is false); otherwise it is discarded. Returns ``status``: ``committed`` (with
    ``commit_id``), ``no_changes``, ``awaiting_approval`` (the repository holds the commit
    for a human: ``web_url``), ``errored`` (non-zero exit: nothing committed), ``cancelled``
    (``commit`` false, or the timeout ran out: ``timed_out``) or ``failed``
    (``error``); and ``exit_code``, ``stdout``, ``stderr`` (each at most
    ``max_output_bytes``: the beginning and the end, with ``stdout_truncated`` /
    ``stderr_truncated`` and the full ``stdout_bytes`` / ``stderr_bytes``), ``sandbox_id``."""
    client = await lamina_client(ctx)
    repo = client.repository(repository)
    sandbox = await repo.sandboxes.create(
        image or None, mode="service", env=env, timeout=timeout + SANDBOX_MARGIN
    )
    try:
        await sandbox.wait(START_TIMEOUT, until="running")
    except BaseException as exc:
        await _cancel(sandbox)
        if isinstance(exc, SandboxError) and exc.status is not None:  # it ended: say how
            return _result(sandbox, SandboxOutcome.from_status(exc.status).kind, exc.status)
        raise
    stdout, stderr = BoundedOutput(max_output_bytes), BoundedOutput(max_output_bytes)
    exit_code: int | None = None
    try:
        with anyio.fail_after(timeout):
            async with sandbox.process(command, stdin=None, cwd=cwd or None) as process:
                async for event in process:
                    (stdout if event.stream == "stdout" else stderr).write(event.data)
                exit_code = await process.wait()
    except TimeoutError:
        await _cancel(sandbox)
        status = await sandbox.wait(FINISH_TIMEOUT)
        return _result(sandbox, "cancelled", status, stdout, stderr, timed_out=True)
    except BaseException:
        await _cancel(sandbox)
        raise
    if exit_code != 0 or not commit:
        await _cancel(sandbox)
        status = await sandbox.wait(FINISH_TIMEOUT)
        kind = "errored" if exit_code != 0 else "cancelled"
        return _result(sandbox, kind, status, stdout, stderr, exit_code=exit_code)
    with contextlib.suppress(ConflictError):  # it already ended: its status says how
        await sandbox.finish()
    status = await sandbox.wait(FINISH_TIMEOUT)
    outcome = SandboxOutcome.from_status(status)
    return _result(sandbox, outcome.kind, status, stdout, stderr, exit_code=exit_code)


async def _cancel(sandbox: AsyncSandbox) -> None:
    """Stop the sandbox and discard its changes (an already ended one is left as it is), also
    when the tool call itself is being cancelled (its client gave up)."""
    with anyio.CancelScope(shield=True), contextlib.suppress(LaminaError):
        await sandbox.cancel()


def _result(
    sandbox: AsyncSandbox,
    kind: str,
    status: SandboxStatus,
    stdout: BoundedOutput | None = None,
    stderr: BoundedOutput | None = None,
    *,
    exit_code: int | None = None,
    timed_out: bool = False,
) -> dict[str, Any]:
    return {
        "status": kind,
        "exit_code": exit_code,
        "stdout": stdout.text() if stdout else "",
        "stderr": stderr.text() if stderr else "",
        "stdout_truncated": stdout.truncated if stdout else False,
        "stderr_truncated": stderr.truncated if stderr else False,
        "stdout_bytes": stdout.total if stdout else 0,
        "stderr_bytes": stderr.total if stderr else 0,
        "timed_out": timed_out,
        "sandbox_id": sandbox.id,
        "sandbox_status": status.describe(),
        "commit_id": status.commit_id if kind == "committed" else None,
        "web_url": status.web_url if kind == "awaiting_approval" else None,
        "error": status.error_message or None,
    }
