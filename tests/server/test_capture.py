"""capture() on real overlay mounts: each test mounts an overlay in a private mount namespace
(root only; skipped where overlays cannot be mounted), changes files through it, and reads the
upper directory back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lamina_server.sandboxes.capture import Capture, Delete, capture


def _overlay(tmp_path: Path, script: str) -> Capture:
    lower, upper, work, merged = (tmp_path / name for name in ("lower", "upper", "work", "m"))
    for folder in (upper, work, merged):
        folder.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    shell = f"mount -t overlay overlay -o {options} {merged} && cd {merged} && {script}"
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", shell],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("unshare is not installed")
    if done.returncode and b"mount" in done.stderr:
        pytest.skip(f"cannot mount an overlay here: {done.stderr.decode().strip()}")
    assert done.returncode == 0, done.stderr.decode()
    return capture(upper, lower)


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting an overlay needs root")
    root = tmp_path / "lower"
    for relative, data in {
        "keep.txt": b"unchanged\n",
        "edit.txt": b"before\n",
        "gone.txt": b"bye\n",
        "old-name.txt": b"moving\n",
        "touched.txt": b"same bytes\n",
        "dir/a.txt": b"a\n",
        "dir/sub/b.txt": b"b\n",
        "again/x.txt": b"x\n",
        "again/y.txt": b"y\n",
        "swap": b"a file that becomes a folder\n",
        "folder-to-file/f": b"f\n",
    }.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _puts(result: Capture) -> dict[str, bytes]:
    return {put.path: put.source.read_bytes() for put in result.puts}


def test_new_modified_and_unchanged_files(tmp_path: Path, lower: Path) -> None:
    result = _overlay(
        tmp_path,
        "echo new > new.txt; echo after > edit.txt; touch touched.txt; chmod 600 keep.txt;"
        " mkdir -p n1/n2/n3 && echo deep > n1/n2/n3/d.txt; mkdir empty",
    )
    assert _puts(result) == {
        "new.txt": b"new\n",
        "edit.txt": b"after\n",
        "n1/n2/n3/d.txt": b"deep\n",
    }
    assert {put.path: put.size for put in result.puts}["edit.txt"] == 6
    assert result.deletes == [] and result.skipped == [] and result.refused == []


def test_deletes_of_files_and_folders(tmp_path: Path, lower: Path) -> None:
    result = _overlay(tmp_path, "rm gone.txt; rm -rf dir; mv old-name.txt new-name.txt")
    assert sorted(result.deletes, key=lambda d: d.path) == [
        Delete("dir", True),
        Delete("gone.txt", False),
        Delete("old-name.txt", False),
    ]
    assert _puts(result) == {"new-name.txt": b"moving\n"}


def test_a_folder_removed_and_made_again_is_opaque(tmp_path: Path, lower: Path) -> None:
    result = _overlay(tmp_path, "rm -rf again && mkdir again && echo fresh > again/z.txt")
    assert result.deletes == [Delete("again", True)]
    assert _puts(result) == {"again/z.txt": b"fresh\n"}


def test_kinds_replacing_each_other(tmp_path: Path, lower: Path) -> None:
    result = _overlay(
        tmp_path,
        "rm swap && mkdir swap && echo in > swap/in.txt;"
        " rm -rf folder-to-file && echo now-a-file > folder-to-file",
    )
    assert sorted(result.deletes, key=lambda d: d.path) == [
        Delete("folder-to-file", True),
        Delete("swap", False),
    ]
    assert _puts(result) == {"swap/in.txt": b"in\n", "folder-to-file": b"now-a-file\n"}


def test_links_fifos_and_sockets_are_skipped_never_followed(tmp_path: Path, lower: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"host only\n")
    result = _overlay(
        tmp_path,
        f"ln -s {secret} leak; ln -s /etc/passwd passwd; mkfifo pipe;"
        " rm keep.txt && ln -s edit.txt keep.txt;"
        " python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"sock\")'",
    )
    assert result.puts == []
    assert {p.path: p.reason for p in result.skipped} == {
        "keep.txt": "a symbolic link (not followed, not stored)",
        "leak": "a symbolic link (not followed, not stored)",
        "passwd": "a symbolic link (not followed, not stored)",
        "pipe": "a fifo (not stored)",
        "sock": "a socket (not stored)",
    }
    assert result.deletes == [Delete("keep.txt", False)]  # the file a link replaced


def test_names_that_are_not_repository_paths_are_refused(tmp_path: Path, lower: Path) -> None:
    long = "x" * 250
    deep = "/".join([long] * 5)  # the fifth folder passes 1024 bytes
    result = _overlay(
        tmp_path,
        f"printf bad > \"$(printf 'bad\\377name')\"; mkdir -p {deep} && echo x > {deep}/f;"
        " echo fine > fine.txt",
    )
    assert _puts(result) == {"fine.txt": b"fine\n"}
    reasons = {p.path: p.reason for p in result.refused}
    assert reasons["bad\\xffname"] == "the name is not valid UTF-8"
    assert reasons[deep] == (
        "the path is 1254 bytes of UTF-8; the limit is 1024 (and everything under it)"
    )
