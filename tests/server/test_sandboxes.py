"""Sandboxes over the wire, against the real server with real bubblewrap sandboxes: every
route and mode, the transactional finish, live output, stdin, the terminal, and the attacks a
sandbox must not get away with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection

from lamina.testing import LocalServer
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests.conftest import RepoHttp
from tests.postgres import data_args
from tests.server.sandbox_wire import Sandboxes, handshake_status, read_exec

_CANNOT_RUN = BubblewrapRunner().check()
pytestmark = pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")


@pytest.fixture
def boxes(repo_http: RepoHttp, local_server: LocalServer) -> Sandboxes:
    return Sandboxes(repo_http, local_server.endpoint_url, local_server.api_key)


# --- one-shot: the command's exit decides what lands ------------------------------------------


def test_a_one_shot_sandbox_that_exits_0_commits_what_it_wrote(boxes: Sandboxes) -> None:
    boxes.commit_files({"data/in.txt": b"seven\n"})
    sandbox_id = boxes.create(
        command=["sh", "-c", "wc -c < /sandbox/data/in.txt > /sandbox/data/out.txt; echo hi"]
    )
    status = boxes.wait(sandbox_id)
    assert (status["status"], status["status_reason"], status["exit_code"]) == (
        "done",
        "committed",
        0,
    )
    assert boxes.repo.read("data/out.txt").strip() == b"6"
    commit = boxes.api.get(f"{boxes.repo.base}/commits/{status['commit_id']}").json()
    assert commit["metadata"]["lamina.sandbox_id"] == sandbox_id
    assert "hi" in boxes.logs(sandbox_id)


def test_a_sandbox_that_changes_nothing_ends_with_no_changes(boxes: Sandboxes) -> None:
    boxes.commit_files({"a.txt": b"a"})
    head = boxes.repo.tree()
    status = boxes.wait(
        boxes.create(command=["sh", "-c", "cat /sandbox/a.txt; touch /sandbox/a.txt"])
    )
    assert (status["status"], status["status_reason"]) == ("done", "no_changes")
    assert boxes.repo.tree() == head


def test_a_non_zero_exit_lands_nothing(boxes: Sandboxes) -> None:
    boxes.commit_files({"keep.txt": b"k"})
    head = boxes.repo.tree()
    status = boxes.wait(
        boxes.create(
            command=["sh", "-c", "echo x > /sandbox/new.txt; rm /sandbox/keep.txt; exit 3"]
        )
    )
    assert (status["status"], status["status_reason"], status["exit_code"]) == (
        "errored",
        "exit_non_zero",
        3,
    )
    assert "3" in status["error_message"]
    assert boxes.repo.tree() == head


def test_deletes_and_removed_folders_land_as_deletes(boxes: Sandboxes) -> None:
    boxes.commit_files({"a.txt": b"a", "dir/x": b"x", "dir/sub/y": b"y", "other/z": b"z"})
    status = boxes.wait(
        boxes.create(command=["sh", "-c", "rm /sandbox/a.txt; rm -rf /sandbox/dir"])
    )
    assert status["status_reason"] == "committed", status
    assert set(boxes.repo.tree()) == {"other/z"}


def test_the_mount_shows_only_the_path_prefix_and_writes_land_under_it(boxes: Sandboxes) -> None:
    boxes.commit_files({"a/x": b"x", "b/y": b"y"})
    sandbox_id = boxes.create(
        command=["sh", "-c", "ls -A /work; echo new > /work/n.txt"],
        path_prefix="a",
        mountpoint="/work",
    )
    status = boxes.wait(sandbox_id)
    assert status["status_reason"] == "committed", status
    assert boxes.logs(sandbox_id).split() == ["x"]
    assert set(boxes.repo.tree()) == {"a/x", "a/n.txt", "b/y"}


def test_a_timeout_kills_the_command_and_lands_nothing(boxes: Sandboxes) -> None:
    head = boxes.repo.tree()
    started = time.monotonic()
    status = boxes.wait(
        boxes.create(command=["sh", "-c", "echo x > /sandbox/t; sleep 6061"], timeout_seconds=1)
    )
    assert (status["status"], status["status_reason"]) == ("failed", "timeout")
    assert time.monotonic() - started < 20
    assert boxes.repo.tree() == head
    assert not _processes_running("sleep\x006061"), "a process outlived its sandbox's timeout"


def test_cancel_stops_a_running_sandbox_and_lands_nothing(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(command=["sh", "-c", "echo x > /sandbox/c; sleep 60"])
    response = boxes.api.delete(f"{boxes.base}/{sandbox_id}")
    assert response.status_code == 202 and "message" in response.json()
    status = boxes.wait(sandbox_id)
    assert (status["status"], status["status_reason"]) == ("cancelled", "cancelled_by_user")
    assert "c" not in boxes.repo.tree()
    again = boxes.api.delete(f"{boxes.base}/{sandbox_id}")
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_an_unknown_image_fails_without_a_fallback(boxes: Sandboxes) -> None:
    status = boxes.wait(boxes.create(image="no-such-image:1", command=["true"]))
    assert (status["status"], status["status_reason"]) == ("failed", "image_not_found")
    assert "no-such-image:1" in status["error_message"]


# --- service sandboxes: /finish commits, DELETE rolls back ------------------------------------


def test_a_service_sandbox_commits_on_finish(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(mode="service")
    result = boxes.exec(sandbox_id, "echo made > /sandbox/made.txt && echo ok")
    assert (result.exit_code, result.stdout) == (0, b"ok\n")
    response = boxes.api.post(f"{boxes.base}/{sandbox_id}/finish")
    assert response.status_code == 202
    status = boxes.wait(sandbox_id)
    assert (status["status"], status["status_reason"], status["exit_code"]) == (
        "done",
        "committed",
        0,
    )
    assert boxes.repo.read("made.txt") == b"made\n"
    late = boxes.api.post(f"{boxes.base}/{sandbox_id}/finish")
    assert late.status_code == 409


def test_a_service_sandbox_rolls_back_on_delete(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(mode="service")
    assert boxes.exec(sandbox_id, "echo x > /sandbox/gone.txt").exit_code == 0
    assert boxes.api.delete(f"{boxes.base}/{sandbox_id}").status_code == 202
    status = boxes.wait(sandbox_id)
    assert status["status"] == "cancelled"
    assert "gone.txt" not in boxes.repo.tree()


def test_finish_is_only_for_service_sandboxes(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(command=["sleep", "30"])
    response = boxes.api.post(f"{boxes.base}/{sandbox_id}/finish")
    assert response.status_code == 400 and response.json()["code"] == "wrong_mode"
    boxes.api.delete(f"{boxes.base}/{sandbox_id}")


def test_concurrent_sandboxes_merge_like_sessions(boxes: Sandboxes) -> None:
    first, second, third = (boxes.running(mode="service") for _ in range(3))
    boxes.exec(first, "echo 1 > /sandbox/one.txt; echo 1 > /sandbox/same.txt")
    boxes.exec(second, "echo 2 > /sandbox/two.txt")
    boxes.exec(third, "echo 3 > /sandbox/same.txt")
    for sandbox_id in (first, second, third):
        assert boxes.api.post(f"{boxes.base}/{sandbox_id}/finish").status_code == 202
        boxes.wait(sandbox_id)
    assert boxes.status(first)["status_reason"] == "committed"
    assert boxes.status(second)["status_reason"] == "committed"
    failed = boxes.status(third)
    assert (failed["status"], failed["status_reason"]) == ("failed", "commit_failed")
    assert "same.txt" in failed["error_message"]
    assert boxes.repo.read("same.txt") == b"1\n" and boxes.repo.read("two.txt") == b"2\n"


# --- /exec -------------------------------------------------------------------------------------


def test_exec_streams_output_before_the_command_ends_and_honours_stdin(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(mode="service")
    with boxes.socket(sandbox_id) as ws:
        launch = {"cmd": ["sh", "-c", "echo ready; read line; echo got:$line; echo err >&2"]}
        ws.send(b"\x00" + json.dumps(launch).encode())
        first = ws.recv(timeout=10)  # before any stdin: the command is blocked on read
        assert first == b"\x03ready\n"
        ws.send(b"\x01hello\n")
        ws.send(b"\x02")
        rest = read_exec(ws)
    assert rest.stdout == b"got:hello\n" and rest.stderr == b"err\n" and rest.exit_code == 0
    boxes.api.delete(f"{boxes.base}/{sandbox_id}")


def test_exec_round_trips_binary_stdin_and_passes_env_and_cwd(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(mode="service", env_vars={"FROM_REQUEST": "r", "BOTH": "request"})
    data = bytes(range(256)) * 1000
    assert boxes.exec(sandbox_id, ["cat"], stdin=data).stdout == data
    result = boxes.exec(
        sandbox_id,
        "pwd; echo $FROM_REQUEST $BOTH $FROM_LAUNCH; env | sort | cut -d= -f1 | tr '\\n' ' '",
        env={"FROM_LAUNCH": "l", "BOTH": "launch"},
        cwd="/tmp",
    )
    lines = result.stdout.decode().splitlines()
    assert lines[:2] == ["/tmp", "r launch l"]
    assert not {"LAMINA_API_KEY", "PYTEST_CURRENT_TEST"} & set(lines[2].split())
    assert boxes.exec(sandbox_id, "exit 7").exit_code == 7
    missing = boxes.exec(sandbox_id, ["/no/such/program"])
    assert missing.exit_code == 127
    boxes.api.delete(f"{boxes.base}/{sandbox_id}")


def test_exec_handshakes_are_refused_with_the_envelope(
    boxes: Sandboxes, local_server: LocalServer
) -> None:
    sandbox_id = boxes.create(command=["true"])
    boxes.wait(sandbox_id)
    url = f"{boxes.ws_base}/{sandbox_id}/exec"
    status, body = handshake_status(url, local_server.api_key)
    assert status == 410 and body["code"] == "sandbox_finished"
    status, body = handshake_status(url, None)
    assert status == 401 and body["code"] == "unauthorized"
    status, body = handshake_status(
        f"{boxes.ws_base}/{'0' * 8}-0000-0000-0000-{'0' * 12}/exec", local_server.api_key
    )
    assert status == 404 and body["code"] == "sandbox_not_found"


# --- the terminal ------------------------------------------------------------------------------


def test_an_interactive_sandbox_has_a_real_terminal_that_resizes(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(mode="interactive")
    output = b""
    with boxes.socket(sandbox_id, "terminal") as ws:
        ws.send(b"\x02" + json.dumps({"cols": 111, "rows": 33}).encode())
        ws.send(b"\x00tty && stty size && exit 0\n")
        while True:
            frame = ws.recv(timeout=20)
            assert isinstance(frame, bytes)
            if frame[0] == 3:
                assert json.loads(frame[1:]) == {"exited": True, "exit_code": 0}
                break
            output += frame[1:]
    assert b"/dev/" in output and b"33 111" in output
    assert boxes.wait(sandbox_id)["status"] == "done"


def _terminal_output_until(ws: ClientConnection, marker: bytes) -> bytes:
    output = b""
    while marker not in output:
        frame = ws.recv(timeout=20)
        assert isinstance(frame, bytes) and frame[0] == 1, frame
        output += frame[1:]
    return output


def test_a_terminal_shows_what_was_printed_before_it_attached(boxes: Sandboxes) -> None:
    script = "echo first-prompt; read line; echo got-$line; read again; exit 3"
    sandbox_id = boxes.running(mode="interactive", command=["sh", "-c", script])
    with boxes.api.stream("GET", f"{boxes.base}/{sandbox_id}/logs/stdout") as response:
        assert next(response.iter_lines()) == "first-prompt"  # printed with no one attached
    with boxes.socket(sandbox_id, "terminal") as ws:
        assert b"first-prompt" in _terminal_output_until(ws, b"first-prompt")
        ws.send(b"\x00hello\n")
        _terminal_output_until(ws, b"got-hello")
    with boxes.socket(sandbox_id, "terminal") as ws:  # back again: where it left off
        replayed = _terminal_output_until(ws, b"got-hello")
        assert replayed.index(b"first-prompt") < replayed.index(b"got-hello")
        ws.send(b"\x00bye\n")
        while (frame := ws.recv(timeout=20))[0] != 3:
            assert b"first-prompt" not in frame  # sent once per attach, not again
        assert json.loads(frame[1:]) == {"exited": True, "exit_code": 3}


# --- logs --------------------------------------------------------------------------------------


def test_the_log_follows_a_running_sandbox_until_it_ends(boxes: Sandboxes) -> None:
    sandbox_id = boxes.running(command=["sh", "-c", "echo one; sleep 1; echo two >&2"])
    seen: list[tuple[float, str]] = []
    with boxes.api.stream("GET", f"{boxes.base}/{sandbox_id}/logs/stdout") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        for line in response.iter_lines():
            seen.append((time.monotonic(), line))
    assert [line for _, line in seen] == ["one", "two"]
    assert seen[1][0] - seen[0][0] > 0.5  # "one" arrived while the command still ran
    network = boxes.api.get(f"{boxes.base}/{sandbox_id}/logs/network")
    assert network.status_code == 200 and network.text == ""


# --- the records -------------------------------------------------------------------------------


def test_records_list_and_get_are_wire_exact(boxes: Sandboxes) -> None:
    sandbox_id = boxes.create(command=["true"], env_vars={"A": "1"}, timeout_seconds=30)
    boxes.wait(sandbox_id)
    record = boxes.api.get(f"{boxes.base}/{sandbox_id}").json()
    assert record["id"] == sandbox_id and record["mode"] == "one-shot"
    assert record["command"] == ["true"] and record["env_vars"] == {"A": "1"}
    assert record["mountpoint"] == "/sandbox" and record["timeout_seconds"] == 30
    assert record["finished_at"] and record["created_by_type"] == "user"
    listed = boxes.api.get(boxes.base, params={"amount": 1}).json()
    assert listed["results"][0]["id"] == sandbox_id
    assert set(listed["pagination"]) >= {"has_more", "next_offset"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "batch"}, "mode"),
        ({"mountpoint": "/"}, "mountpoint"),
        ({"mountpoint": "/proc/x"}, "mountpoint"),
        ({"mountpoint": "relative"}, "mountpoint"),
        ({"env_vars": {"BAD=NAME": "x"}}, "env_vars"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"command": "echo"}, "command"),
        ({"run_as": {"type": "user", "id": "x"}}, "run_as"),
        ({"image": ""}, "image"),
    ],
)
def test_bad_requests_are_400s_naming_the_field(
    boxes: Sandboxes, body: dict[str, object], field: str
) -> None:
    response = boxes.api.post(boxes.base, json={"image": "host", **body})
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]


# --- attacks: each must fail inside the sandbox ------------------------------------------------


def test_a_sandbox_cannot_read_host_files_outside_its_mount(
    boxes: Sandboxes, tmp_path: Path
) -> None:
    secret = tmp_path / "planted-secret.txt"
    secret.write_text("host secret")
    sandbox_id = boxes.running(mode="service")
    for path in (str(secret), "/etc/shadow", "/root", str(Path.cwd() / "pyproject.toml")):
        result = boxes.exec(sandbox_id, ["cat", path])
        assert result.exit_code != 0 and b"host secret" not in result.stdout, path
    boxes.api.delete(f"{boxes.base}/{sandbox_id}")


def test_a_sandbox_cannot_reach_the_server_or_see_host_processes(
    boxes: Sandboxes, local_server: LocalServer
) -> None:
    port = int(local_server.endpoint_url.rsplit(":", 1)[1])
    sandbox_id = boxes.running(mode="service")
    probe = (
        "import socket,sys\n"
        f"try: socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "except OSError as e: print('refused', e); sys.exit(0)\n"
        "print('connected'); sys.exit(1)\n"
    )
    reached = boxes.exec(sandbox_id, ["python3", "-c", probe])
    assert reached.exit_code == 0 and b"refused" in reached.stdout, reached
    pids = boxes.exec(sandbox_id, "ls /proc | grep -E '^[0-9]+$' | wc -l")
    assert int(pids.stdout) < 10
    assert str(os.getpid()).encode() not in boxes.exec(sandbox_id, "ls /proc").stdout
    caps = boxes.exec(sandbox_id, "grep CapEff /proc/self/status")
    assert caps.stdout.split()[-1] == b"0000000000000000"
    assert boxes.exec(sandbox_id, "unshare -U true").exit_code != 0
    # The sandbox's own init (the agent that spawns its commands) is out of reach: its memory,
    # its control socket, and signals.
    assert boxes.exec(sandbox_id, "cat /proc/1/environ /proc/1/mem").exit_code != 0
    fds = boxes.exec(sandbox_id, ["sh", "-c", 'ls "/proc/$$/fd"']).stdout.split()
    assert fds == [b"0", b"1", b"2"], fds
    boxes.exec(sandbox_id, "kill -9 1; kill -TERM 1")
    assert boxes.exec(sandbox_id, "echo alive").stdout == b"alive\n"
    boxes.api.delete(f"{boxes.base}/{sandbox_id}")


def test_a_symlink_written_to_the_mount_is_never_followed_by_capture(
    boxes: Sandboxes, tmp_path: Path
) -> None:
    secret = tmp_path / "host-only.txt"
    secret.write_text("never captured")
    sandbox_id = boxes.create(
        command=[
            "sh",
            "-c",
            f"ln -s {secret} /sandbox/escape; ln -s /etc/passwd /sandbox/pw; echo ok > /sandbox/f",
        ]
    )
    status = boxes.wait(sandbox_id)
    assert status["status_reason"] == "committed", status
    tree = boxes.repo.tree()
    assert set(tree) == {"f"}
    log = boxes.logs(sandbox_id)
    assert "escape" in log and "pw" in log


# --- restart -----------------------------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    server = LocalServer(data_dir=tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _processes_running(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def test_a_restart_marks_running_sandboxes_lost_and_kills_them(own_server: LocalServer) -> None:
    api = httpx.Client(
        base_url=f"{own_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {own_server.api_key}"},
        timeout=30,
    )
    assert (
        api.post(
            f"/organizations/{own_server.org}/repositories", json={"name": "restart-repo"}
        ).status_code
        == 201
    )
    boxes = Sandboxes(
        RepoHttp(api, f"{own_server.org}/restart-repo"), own_server.endpoint_url, own_server.api_key
    )
    sandbox_id = boxes.running(command=["sh", "-c", "echo x > /sandbox/x; sleep 4242"])
    deadline = time.monotonic() + 10
    while not _processes_running("sleep\x004242") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_running("sleep\x004242")
    own_server.kill()
    deadline = time.monotonic() + 10
    while _processes_running("sleep\x004242") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_running("sleep\x004242"), "a sandbox process outlived its server"
    own_server.start()
    api.base_url = f"{own_server.endpoint_url}/api/v1"
    boxes = Sandboxes(
        RepoHttp(api, f"{own_server.org}/restart-repo"), own_server.endpoint_url, own_server.api_key
    )
    status = boxes.status(sandbox_id)
    assert (status["status"], status["status_reason"]) == ("failed", "sandbox_lost")
    assert "x" not in boxes.repo.tree()
    api.close()


# --- triggers ----------------------------------------------------------------------------------


def _runs(boxes: Sandboxes, trigger_id: str) -> list[dict[str, object]]:
    response = boxes.api.get(f"{boxes.repo.base}/sandbox-triggers/{trigger_id}/runs")
    assert response.status_code == 200, response.text
    runs: list[dict[str, object]] = response.json()["results"]
    return runs


def test_a_trigger_fires_once_per_matching_commit_and_never_on_its_own(boxes: Sandboxes) -> None:
    created = boxes.api.post(
        f"{boxes.repo.base}/sandbox-triggers",
        json={
            "name": "stamp",
            "conditions": [{"type": "prefix", "prefix": "in/"}],
            "sandbox_config": {
                "image": "host",
                "command": ["sh", "-c", "date +%s%N > /sandbox/in/stamp-$$"],
            },
        },
    )
    assert created.status_code == 201, created.text
    trigger_id = created.json()["id"]
    commit_id = boxes.commit_files({"in/a.txt": b"a"})
    deadline = time.monotonic() + 30
    while len(_runs(boxes, trigger_id)) < 2:
        assert time.monotonic() < deadline, _runs(boxes, trigger_id)
        time.sleep(0.1)
    time.sleep(1.5)  # long enough for a runaway loop to show itself
    runs = sorted(_runs(boxes, trigger_id), key=lambda run: str(run["status"]))
    assert [(run["status"], run["reason"]) for run in runs] == [
        ("created", ""),
        ("skipped", "self_triggered"),
    ]
    fired = runs[0]
    assert fired["commit_id"] == commit_id and fired["matched_paths"] == ["in/a.txt"]
    status = boxes.wait(str(fired["sandbox_id"]))
    assert status["status_reason"] == "committed"
    assert runs[1]["commit_id"] == status["commit_id"]
    assert len([path for path in boxes.repo.tree() if path.startswith("in/stamp-")]) == 1


# --- limits ------------------------------------------------------------------------------------


@pytest.fixture
def small_limits(tmp_path: Path) -> Iterator[Sandboxes]:
    server = LocalServer(
        data_dir=tmp_path / "data",
        server_args=["--sandbox-memory-limit", "64M", "--sandbox-max-processes", "24"],
    )
    server.start()
    api = httpx.Client(
        base_url=f"{server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=30,
    )
    try:
        assert api.post(
            f"/organizations/{server.org}/repositories", json={"name": "limits"}
        ).is_success
        yield Sandboxes(RepoHttp(api, f"{server.org}/limits"), server.endpoint_url, server.api_key)
    finally:
        api.close()
        server.stop()


def test_memory_and_process_limits_stop_the_sandbox_not_the_server(small_limits: Sandboxes) -> None:
    boxes = small_limits
    hog = boxes.wait(
        boxes.create(command=["python3", "-c", "x = bytearray(512 * 1024 * 1024); print(len(x))"])
    )
    assert (hog["status"], hog["status_reason"]) == ("errored", "exit_non_zero"), hog
    assert "memory limit" in hog["error_message"]
    sandbox_id = boxes.running(mode="service")
    fork_bomb = (
        "import os, signal, time\n"
        "children = []\n"
        "for _ in range(200):\n"
        "    try: pid = os.fork()\n"
        "    except OSError: break\n"
        "    if pid == 0: time.sleep(30); os._exit(0)\n"
        "    children.append(pid)\n"
        "print(len(children))\n"
        "for pid in children: os.kill(pid, signal.SIGKILL)\n"
    )
    bomb = boxes.exec(sandbox_id, ["python3", "-c", fork_bomb])
    assert bomb.exit_code == 0, bomb
    assert 0 < int(bomb.stdout) < 24
    boxes.api.delete(f"{boxes.base}/{sandbox_id}")
    after = boxes.wait(boxes.create(command=["sh", "-c", "echo still > /sandbox/ok"]))
    assert after["status_reason"] == "committed"


def test_a_command_that_does_not_exist_is_the_users_error(boxes: Sandboxes) -> None:
    status = boxes.wait(boxes.create(command=["no-such-program", "x"]))
    assert (status["status"], status["status_reason"], status["exit_code"]) == (
        "errored",
        "exit_non_zero",
        127,
    )
    assert "no-such-program" in status["error_message"]


def test_older_clients_log_routes_answer(boxes: Sandboxes) -> None:
    sandbox_id = boxes.create(command=["sh", "-c", "echo out; echo err >&2"])
    boxes.wait(sandbox_id)
    merged = boxes.logs(sandbox_id)
    assert merged.split() == ["out", "err"]
    for name in ("stdout", "combined"):
        response = boxes.api.get(f"{boxes.base}/{sandbox_id}/{name}")
        assert (response.status_code, response.text) == (200, merged)
    stderr = boxes.api.get(f"{boxes.base}/{sandbox_id}/stderr")
    assert (stderr.status_code, stderr.text) == (200, "")


# --- images ------------------------------------------------------------------------------------


def _minimal_rootfs(tarball: Path) -> None:
    """A root file system with a shell and cat only (what `docker export` of a tiny image
    gives): the programs, the libraries they load, and merged-/usr links."""
    programs = ["/usr/bin/dash", "/usr/bin/cat"]
    libraries = set()
    for program in programs:
        for line in subprocess.run(["ldd", program], capture_output=True, text=True).stdout.split(
            "\n"
        ):
            for word in line.split():
                if word.startswith("/"):
                    libraries.add(os.path.realpath(word))
    with tarfile.open(tarball, "w") as archive:
        for path in [*programs, *sorted(libraries)]:
            real = os.path.realpath(path)
            archive.add(real, arcname=real.lstrip("/"))
        for name, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            archive.addfile(link)
        shell = tarfile.TarInfo("usr/bin/sh")
        shell.type, shell.linkname = tarfile.SYMTYPE, "dash"
        archive.addfile(shell)
        loader = tarfile.TarInfo("usr/lib64/ld-linux-x86-64.so.2")
        loader.type, loader.linkname = (
            tarfile.SYMTYPE,
            "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        )
        archive.addfile(loader)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the rootfs is assembled for x86_64")
def test_a_registered_image_is_all_a_sandbox_sees(
    boxes: Sandboxes, local_server: LocalServer, tmp_path: Path
) -> None:
    tarball = tmp_path / "mini.tar"
    _minimal_rootfs(tarball)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lamina_server",
            "image",
            "add",
            "mini:1",
            str(tarball),
            *data_args(local_server),
            "--replace",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    sandbox_id = boxes.create(
        image="mini:1",
        command=["sh", "-c", "echo / /*; cat /usr/bin/python3 || echo no-python > /sandbox/m.txt"],
    )
    status = boxes.wait(sandbox_id)
    assert status["status_reason"] == "committed", status
    assert boxes.repo.read("m.txt") == b"no-python\n"
    shown = set(boxes.logs(sandbox_id).split("\n")[0].split())
    assert {"/usr", "/bin", "/sandbox", "/tmp"} <= shown
    assert not {"/home", "/root", "/work", "/etc"} & shown, shown
