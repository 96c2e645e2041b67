"""``lamina cp -r`` and large copies as whole processes: the progress bar is drawn (the
terminal forced, so rich renders it into the captured stderr) and the bytes round-trip
exactly; copies between repositories.

The module has a server of its own, removed with its data at the end, so that the gigabyte
it stores does not weigh on the tests that read the session server's whole data folder."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lamina.testing import LocalServer
from tests.cli.conftest import Invoke

Process = Callable[..., subprocess.CompletedProcess[bytes]]
TERMINAL = {"TTY_COMPATIBLE": "1", "TERM": "xterm", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def bulk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    data_dir = tmp_path_factory.mktemp("cli-transfers")
    server = LocalServer(data_dir=data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def cli_server(bulk_server: LocalServer) -> LocalServer:
    return bulk_server


@pytest.fixture
def repository(bulk_server: LocalServer, unique_name: Callable[..., str]) -> str:
    name = unique_name("repo")
    response = httpx.post(
        f"{bulk_server.endpoint_url}/api/v1/organizations/{bulk_server.org}/repositories",
        headers={"Authorization": f"Bearer {bulk_server.api_key}"},
        json={"name": name},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return f"{bulk_server.org}/{name}"


def make_tree(root: Path, files: int, size: int) -> dict[str, bytes]:
    """``files`` files of ``size`` random bytes in nested folders; returns path -> bytes."""
    rng = random.Random(files)
    tree: dict[str, bytes] = {}
    for index in range(files):
        relative = f"d{index % 7}/e{index % 13}/f{index:05d}.bin"
        data = rng.randbytes(size)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        tree[relative] = data
    return tree


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize(
    "files", [500, pytest.param(5000, marks=pytest.mark.slow)], ids=["500", "5000"]
)
def test_cp_recursive_round_trip_with_progress_bar(
    lamina_process: Process, repository: str, tmp_path: Path, files: int
) -> None:
    tree = make_tree(tmp_path / "up", files, 16 * 1024)
    up = lamina_process(
        "cp",
        "-r",
        str(tmp_path / "up"),
        f"{repository}/data/",
        "-m",
        "bulk",
        "-j",
        "16",
        env=TERMINAL,
    )
    assert up.returncode == 0, up.stderr.decode()
    assert up.stdout.decode().startswith("Committed ")
    stderr = up.stderr.decode()
    assert "\x1b[" in stderr  # drawn as a terminal's bar, redrawn in place
    assert "━" in stderr and f"{files}/{files} files" in stderr
    assert "Uploading" in stderr and f"Uploading: {files} files" in stderr

    down = lamina_process(
        "cp", "-r", f"{repository}/data", str(tmp_path / "down"), "-j", "16", env=TERMINAL
    )
    assert down.returncode == 0, down.stderr.decode()
    assert f"{files}/{files} files" in down.stderr.decode()
    assert read_tree(tmp_path / "down") == tree


def test_no_progress_bar_unless_a_terminal_or_asked(
    lamina_process: Process, repository: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "up", 5, 100)
    plain = lamina_process("cp", "-r", str(tmp_path / "up"), f"{repository}/a/", "-m", "a")
    assert (
        plain.returncode == 0 and b"\x1b[" not in plain.stderr and "━".encode() not in plain.stderr
    )
    assert b"Uploading: 5 files, 500 B" in plain.stderr
    off = lamina_process(
        "cp",
        "-r",
        str(tmp_path / "up"),
        f"{repository}/b/",
        "-m",
        "b",
        "--no-progress",
        env=TERMINAL,
    )
    assert off.returncode == 0 and "━".encode() not in off.stderr


@pytest.mark.slow
def test_cp_of_a_1_gib_file_round_trips_with_progress(
    lamina_process: Process, repository: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(64):
            chunk = os.urandom(16 * 1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    up = lamina_process("cp", str(source), f"{repository}/big.bin", "-m", "1 GiB", env=TERMINAL)
    assert up.returncode == 0, up.stderr.decode()
    assert "1/1 files" in up.stderr.decode() and "1.0/1.0 GiB" in up.stderr.decode()
    source.unlink()
    down = lamina_process("cp", f"{repository}/big.bin", str(tmp_path / "back.bin"), env=TERMINAL)
    assert down.returncode == 0, down.stderr.decode()
    assert "1.0/1.0 GiB" in down.stderr.decode()
    copied = hashlib.sha256()
    with (tmp_path / "back.bin").open("rb") as back:
        while chunk := back.read(16 * 1024 * 1024):
            copied.update(chunk)
    assert copied.hexdigest() == digest.hexdigest()


def test_cp_between_repositories_and_within_one(
    lamina: Invoke, repository: str, new_repository: str, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "up", 12, 1000)
    assert (
        lamina("cp", "-r", str(tmp_path / "up"), f"{repository}/src/", "-m", "src").exit_code == 0
    )
    first = lamina("log", repository, "-n", "1").stdout.split()[0]

    within = lamina("cp", "-r", f"{repository}/src/", f"{repository}/copy/", "-m", "copy")
    assert within.exit_code == 0, within.output
    across = lamina("cp", "-r", f"{repository}@{first}/src", f"{new_repository}/in/", "-m", "x")
    assert across.exit_code == 0, across.output
    one = lamina("cp", f"{repository}/src/d0/e0/f00000.bin", f"{new_repository}/one/")
    assert one.exit_code == 0, one.output  # staged, not committed
    for location in (f"{repository}/copy", f"{new_repository}/in"):
        down = tmp_path / location.replace("/", "_")
        assert lamina("cp", "-r", location, str(down)).exit_code == 0
        assert read_tree(down) == tree
    assert lamina("ls", new_repository).stdout.splitlines() == ["in/"]

    no_r = lamina("cp", f"{repository}/src/", str(tmp_path / "x"))
    assert no_r.exit_code == 1 and "use -r" in no_r.stderr
    local = lamina("cp", str(tmp_path / "up"), str(tmp_path / "x"))
    assert local.exit_code == 1 and "repository path on at least one side" in local.stderr
    empty = lamina("cp", "-r", f"{repository}/nothing/", str(tmp_path / "y"))
    assert empty.exit_code == 1 and "no objects under" in empty.stderr
