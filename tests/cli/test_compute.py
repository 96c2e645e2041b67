"""``lamina exec`` and ``lamina sandboxes`` against real bubblewrap sandboxes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from lamina import Client
from lamina.testing import LocalServer
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests.cli.conftest import SRC, Invoke

_CANNOT_RUN = BubblewrapRunner().check()
pytestmark = pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")

Process = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def client(local_server: LocalServer) -> Client:
    return Client(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url)


def test_exec_streams_output_and_exits_with_the_commands_code(
    lamina_process: Process, repository: str
) -> None:
    done = lamina_process(
        "exec", repository, "--", "echo out; echo err >&2; echo hi > /sandbox/hi.txt"
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"out\n"
    assert done.stderr.decode().startswith("err\nCommitted ")

    failed = lamina_process(
        "exec", repository, "-e", "CODE=3", "--", "sh", "-c", 'touch /sandbox/x; exit "$CODE"'
    )
    assert failed.returncode == 3
    assert "Exited with code 3" in failed.stderr.decode() and "discarded" in failed.stderr.decode()


def test_exec_commits_what_it_wrote_and_reads_stdin(lamina: Invoke, repository: str) -> None:
    missing = lamina("exec", repository, "--", "no-such-command-here")
    assert missing.exit_code == 127 and "Exited with code 127" in missing.stderr
    wrote = lamina(
        "exec",
        repository,
        "--stdin",
        "--",
        "mkdir -p /sandbox/out && cat > /sandbox/out/in.txt",
        input=b"piped",
    )
    assert wrote.exit_code == 0, wrote.output
    assert "Committed " in wrote.stderr
    assert lamina("cat", f"{repository}/out/in.txt").stdout_bytes == b"piped"
    nothing = lamina("exec", repository, "--", "true")
    assert nothing.exit_code == 0 and "No changes to commit." in nothing.stderr
    argv = lamina("exec", repository, "--", "printf", "%s|", "a b", "c")
    assert argv.stdout == "a b|c|"


def test_sandboxes_ls_logs_and_cancel(lamina: Invoke, repository: str, client: Client) -> None:
    repo = client.repository(repository)
    one_shot = repo.sandboxes.create(command="echo first; sleep 1; echo second")
    followed = lamina("sandboxes", "logs", repository, one_shot.id, "-f")
    assert followed.exit_code == 0, followed.output
    assert followed.stdout == "first\nsecond\n"
    assert lamina("sandboxes", "logs", repository, one_shot.id).stdout == "first\nsecond\n"

    service = repo.sandboxes.create(mode="service")
    service.wait(60, until="running")
    early = lamina("sandboxes", "logs", repository, service.id)
    assert early.exit_code == 1 and "use -f" in early.stderr
    listed = lamina("sandboxes", "ls", repository)
    assert one_shot.id in listed.stdout and service.id in listed.stdout
    assert "running" in next(line for line in listed.stdout.splitlines() if service.id in line)

    cancelled = lamina("sandboxes", "cancel", repository, service.id)
    assert cancelled.exit_code == 0, cancelled.output
    assert service.wait(60).status == "cancelled"
    again = lamina("sandboxes", "cancel", repository, service.id)
    assert again.exit_code == 1 and "HTTP 409" in again.stderr
    as_json = json.loads(lamina("sandboxes", "ls", repository, "--json").stdout)
    statuses = {item["id"]: item["status"] for item in as_json}
    assert statuses[service.id] == "cancelled" and statuses[one_shot.id] == "done"


def test_exec_output_is_live_and_ctrl_c_cancels_the_sandbox(
    cli_env: dict[str, str | None], repository: str, lamina: Invoke
) -> None:
    environ = {k: v for k, v in {**os.environ, **cli_env}.items() if v is not None}
    environ["PYTHONPATH"] = str(SRC)
    # As from a terminal: Ctrl-C's SIGINT at its default even when this test run was started
    # in the background (whose children inherit it ignored).
    as_in_a_terminal = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    command = ["-m", "lamina.cli", "exec", repository, "--", "echo started; sleep 60"]
    process = subprocess.Popen(
        [sys.executable, "-c", as_in_a_terminal, *command],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"started\n"  # while the command still runs
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert time.monotonic() - started < 30
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert stderr.decode().strip().endswith("Interrupted.")
    [sandbox] = json.loads(lamina("sandboxes", "ls", repository, "--json").stdout)
    assert sandbox["status"] == "cancelled"
