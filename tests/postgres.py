"""A throwaway PostgreSQL cluster for the tests: ``initdb`` and ``pg_ctl`` in a temporary
directory, run as an unprivileged user, listening on a free loopback port.

``LAMINA_TEST_DATABASE=postgres`` makes every server the tests start use it (one fresh database
per server, :meth:`PostgresCluster.database_url`); without it the suite runs on SQLite.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa

if TYPE_CHECKING:
    from lamina.testing import LocalServer

BIN = Path(os.environ.get("LAMINA_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "lamina-test"  # the unprivileged system user the cluster runs as, when run by root


CLUSTER: PostgresCluster | None = None  # the session's cluster, on a PostgreSQL run


def enabled() -> bool:
    """Whether the suite runs against PostgreSQL (``LAMINA_TEST_DATABASE=postgres``)."""
    return os.environ.get("LAMINA_TEST_DATABASE", "sqlite").lower() in ("postgres", "postgresql")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unprivileged_user() -> pwd.struct_passwd:
    """Who runs the cluster's processes: this user, or (initdb refuses root) :data:`USER`,
    created when missing."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(USER)


class PostgresCluster:
    """One cluster for the test session: :meth:`start`, :meth:`database_url`, :meth:`stop`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lamina-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.port = _free_port()
        self._account = _unprivileged_user()
        self.user = self._account.pw_name
        self._by_data_dir: dict[Path, str] = {}

    def _run(self, *args: str) -> None:
        account = self._account
        drop: dict[str, Any] = (
            {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            if os.geteuid() == 0
            else {}
        )
        result = subprocess.run(
            list(args),
            **drop,
            capture_output=True,
            text=True,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> PostgresCluster:
        self.sockets.mkdir()
        for path in (self.root, self.sockets):
            os.chown(path, self._account.pw_uid, self._account.pw_gid)
        self._run(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.sockets} -c max_connections=300 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c shared_buffers=128MB"
        )
        self._run(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def database_url(self) -> str:
        """A fresh, empty database of its own."""
        name = f"lamina_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def database_for(self, data_dir: Path) -> str:
        """The database of the server whose data directory is ``data_dir``: fresh the first
        time, the same one for every later server (a restart, a second process) on it."""
        key = data_dir.resolve()
        if key not in self._by_data_dir:
            self._by_data_dir[key] = self.database_url()
        return self._by_data_dir[key]

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def data_args(server: LocalServer) -> list[str]:
    """``lamina server`` flags that name ``server``'s data: its directory, and its database
    when that is not the directory's SQLite file (for commands run as a subprocess)."""
    database = ["--database-url", server.database_url] if server.database_url else []
    return ["--data-dir", str(server.data_dir), *database]


def _engine(data_dir: Path) -> sa.Engine:
    """A blocking engine on the metadata of the server on ``data_dir``: its PostgreSQL
    database on a PostgreSQL run, else its SQLite file."""
    if CLUSTER is None:
        return sa.create_engine(f"sqlite:///{data_dir / 'metadata.db'}")
    return sa.create_engine(CLUSTER.database_for(data_dir))


@contextmanager
def connect(data_dir: Path) -> Iterator[sa.Connection]:
    """A transaction on the metadata of the server on ``data_dir``, committed at the end."""
    engine = _engine(data_dir)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def scalar(data_dir: Path, sql: str, **params: Any) -> Any:
    """One value read from the metadata of the server on ``data_dir`` (``:name`` parameters)."""
    engine = _engine(data_dir)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar_one()
    finally:
        engine.dispose()


def execute(data_dir: Path, sql: str, **params: Any) -> None:
    """Runs ``sql`` on the metadata of the server on ``data_dir``, behind its back."""
    engine = _engine(data_dir)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()
