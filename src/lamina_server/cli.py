"""Command line: ``lamina server`` / ``python -m lamina_server``.

``[serve] [options]`` runs the server; ``create-user NAME`` adds a user (and prints its API key)
to a server's data directory, which may be in use by a running server; ``image add|alias|ls|rm``
manages the sandbox images of a data directory the same way; ``audit verify`` checks the audit
log's hash chains and names the first broken entry; ``gc`` collects the garbage of a data
directory (:mod:`lamina_server.garbage`); ``migrate`` brings the metadata database's
schema to this version's (:mod:`lamina_server.storage.schema`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lamina_server.config import ServerConfig, default_config_path, default_data_dir
from lamina_server.garbage.collector import GRACE_SECONDS

if TYPE_CHECKING:
    from lamina_server.storage.db import Database

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} must match {SLUG.pattern} (lowercase letters, digits and '-')"
        )
    return value


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def _size(value: str) -> int:
    """A size in bytes, with an optional K, M or G suffix (powers of 1024)."""
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    number = text[: len(text) - len(unit)]
    if not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size such as 512M or 2G")
    return int(number) * _UNITS[unit]


def _database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="metadata database, e.g. postgresql://user@host/db (SQLite in the data dir)",
    )


def _blob_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--blob-store",
        default=None,
        metavar="URL",
        help="s3://BUCKET[/prefix]?endpoint=URL&region=R: object bytes in S3, sent and fetched "
        "by clients through presigned URLs (default: the data directory)",
    )


def _serve_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the Lamina reference server. On the first start with an empty data "
        "directory it creates an admin user, an organization and an API key, prints the key "
        "once and writes it to the SDK config file.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8710, help="port to listen on (8710)")
    parser.add_argument(
        "--s3-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also answer the S3 gateway at the root of this port (it is always under /s3)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="metadata and blobs (~/.lamina/data)"
    )
    _database_argument(parser)
    parser.add_argument(
        "--org", type=_slug, default="local", help="organization created on first start (local)"
    )
    parser.add_argument(
        "--config-path",
        type=Path,
        default=None,
        help="SDK config file written on first start (~/.lamina/config.toml)",
    )
    parser.add_argument(
        "--no-write-config", action="store_true", help="do not write the SDK config file"
    )
    parser.add_argument(
        "--public-url", default=None, help="externally visible base URL, for signed URLs"
    )
    parser.add_argument(
        "--advertise-url",
        default=None,
        metavar="URL",
        help="where the other replicas reach this one, for requests to the sandboxes it runs "
        "(default: the address it listens on)",
    )
    _blob_store_argument(parser)
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    limits = parser.add_argument_group("connection limits")
    limits.add_argument(
        "--max-header-bytes",
        type=_positive,
        default=ServerConfig.max_header_bytes,
        help="size allowed for a request's line and headers; larger ones get 431 (%(default)s)",
    )
    limits.add_argument(
        "--header-timeout",
        type=_positive,
        default=ServerConfig.header_timeout,
        metavar="SECONDS",
        help="time for a request's line and headers to arrive (%(default)s)",
    )
    limits.add_argument(
        "--keep-alive-timeout",
        type=_positive,
        default=ServerConfig.keep_alive_timeout,
        metavar="SECONDS",
        help="an idle connection is closed after this long (%(default)s)",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive,
        default=ServerConfig.max_connections,
        help="open connections; past it, new ones are answered 503 (%(default)s)",
    )
    limits.add_argument(
        "--backlog",
        type=_positive,
        default=ServerConfig.backlog,
        help="connections waiting to be accepted (%(default)s)",
    )
    sandboxes = parser.add_argument_group("sandboxes")
    sandboxes.add_argument(
        "--default-sandbox-image",
        default=ServerConfig.default_sandbox_image,
        metavar="NAME",
        help="image of a sandbox whose request names none (%(default)s)",
    )
    sandboxes.add_argument(
        "--sandbox-memory-limit",
        type=_size,
        default=ServerConfig.sandbox_memory_limit,
        metavar="BYTES",
        help="memory of one sandbox, all its processes together; K/M/G suffixes (2G)",
    )
    sandboxes.add_argument(
        "--sandbox-max-processes",
        type=_positive,
        default=ServerConfig.sandbox_max_processes,
        help="processes of one sandbox at a time (%(default)s)",
    )
    parser.add_argument(
        "--no-audit-log",
        action="store_true",
        help="record nothing in the audit log (benchmarks, throwaway servers)",
    )
    parser.add_argument(
        "--no-upload-extensions",
        action="store_true",
        help="offer no one-request puts or batched uploads (clients use the contract's uploads)",
    )
    parser.add_argument(
        "--gc-interval",
        type=float,
        default=ServerConfig.gc_interval,
        metavar="SECONDS",
        help="collect garbage this often, one server at a time (%(default)s; 0: never)",
    )
    return parser


def _create_user_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} create-user", description="Add a user and print a new API key for it."
    )
    parser.add_argument("username", type=_slug)
    parser.add_argument("--org", type=_slug, default=None, help="also join this organization")
    parser.add_argument("--full-name", default="")
    parser.add_argument("--email", default="")
    parser.add_argument("--data-dir", type=Path, default=None)
    _database_argument(parser)
    return parser


def _audit_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} audit",
        description="Check the audit log: every organization's chain of entries, each carrying "
        "the hash of the one before it. Exits 0 when every chain verifies, 1 naming the first "
        "broken entry.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="verify every chain; name the first broken entry")
    verify.add_argument("--data-dir", type=Path, default=None)
    _database_argument(verify)
    return parser


def _gc_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} gc",
        description="Remove the tree nodes and blobs no commit within its repository's "
        "retention window, open session or live repository reaches any more, and print what "
        "was removed. Safe while a server runs on the data directory.",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    _database_argument(parser)
    _blob_store_argument(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="remove nothing; print what would go"
    )
    parser.add_argument(
        "--sweep-uploads",
        action="store_true",
        help="also remove uploads begun over a week ago and never finalized (this lists the "
        "blob store: its cost follows the store's size; the server's periodic job does it daily)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=GRACE_SECONDS,
        metavar="SECONDS",
        help="keep whatever was let go of more recently than this (%(default)s)",
    )
    return parser


def _image_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} image",
        description="Manage the root filesystems sandboxes run in. Nothing is pulled from a "
        "registry: an image is a directory or a tarball (docker export, debootstrap) on this "
        "machine. The built-in image 'host' is always present.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = commands.add_parser(
        "add", help="register a directory in place, or extract a tarball into the data dir"
    )
    add.add_argument("name", help="e.g. python:3.12 or my-org/img:tag")
    add.add_argument("path", type=Path, help="a root filesystem directory or a .tar[.gz] of one")
    add.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="image environment"
    )
    add.add_argument("--replace", action="store_true", help="replace an image of that name")
    alias = commands.add_parser("alias", help="make NAME another name of the image TARGET")
    alias.add_argument("name")
    alias.add_argument("target")
    alias.add_argument("--replace", action="store_true", help="replace an image of that name")
    commands.add_parser("ls", help="list the images and aliases")
    remove = commands.add_parser("rm", help="remove an image (an extracted one is deleted)")
    remove.add_argument("name")
    for command in commands.choices.values():
        command.add_argument("--data-dir", type=Path, default=None)
        _database_argument(command)
    return parser


def _migrate_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} migrate",
        description="Bring the metadata database's schema to this version of Lamina (an empty "
        "database gets the whole schema). Safe to run again, and while servers run.",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    _database_argument(parser)
    return parser


def serve(args: argparse.Namespace) -> int:
    """Listen first, then start: a server that cannot listen, or whose first start would take
    over another server's config file, exits having created nothing."""
    from lamina_server import serving
    from lamina_server.bootstrap import first_start_conflict
    from lamina_server.storage.blobs.backend import check_blob_store
    from lamina_server.storage.blobs.s3_location import BlobStoreUrlError

    config = ServerConfig(
        data_dir=(args.data_dir or default_data_dir()).expanduser(),
        host=args.host,
        port=args.port,
        org=args.org,
        public_url=args.public_url,
        blob_store=args.blob_store,
        database_url=args.database_url,
        config_path=(args.config_path or default_config_path()).expanduser(),
        write_config=not args.no_write_config,
        access_log=args.access_log,
        max_header_bytes=args.max_header_bytes,
        header_timeout=args.header_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        max_connections=args.max_connections,
        backlog=args.backlog,
        default_sandbox_image=args.default_sandbox_image,
        sandbox_memory_limit=args.sandbox_memory_limit,
        sandbox_max_processes=args.sandbox_max_processes,
        audit_log=not args.no_audit_log,
        gc_interval=args.gc_interval,
        upload_extensions=not args.no_upload_extensions,
        advertise_url=args.advertise_url,
    )
    try:
        check_blob_store(config.blob_store, os.environ)
    except BlobStoreUrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        sock = serving.listen(config.host, config.port, config.backlog)
    except serving.CannotListen as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = dataclasses.replace(config, port=sock.getsockname()[1])  # the port of --port 0
    also = []
    if args.s3_port is not None:
        try:
            also.append(serving.listen(config.host, args.s3_port, config.backlog))
        except serving.CannotListen as exc:
            sock.close()
            print(f"error: {exc} (--s3-port)", file=sys.stderr)
            return 1
        config = dataclasses.replace(config, s3_port=also[0].getsockname()[1])
    conflict = first_start_conflict(config) or asyncio.run(_schema_conflict(config))
    if conflict is not None:
        sock.close()
        for other in also:
            other.close()
        print(f"error: {conflict}", file=sys.stderr)
        return 1

    from lamina_server.app import create_app

    return serving.run(create_app(config), config, sock, log_level=args.log_level, also=also)


async def _schema_conflict(config: ServerConfig) -> str | None:
    """Why the server cannot run on its database's schema (it is older, on PostgreSQL, or
    newer than this version knows), or None once it is ready (created or migrated)."""
    from lamina_server.storage.db import Database, sqlite_url
    from lamina_server.storage.schema import SchemaError, ensure_schema

    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        db = Database(config.database_url or sqlite_url(config.data_dir))
    except ValueError as exc:
        return str(exc)
    try:
        await ensure_schema(db)
    except SchemaError as exc:
        return str(exc)
    finally:
        await db.dispose()
    return None


def _database(args: argparse.Namespace, *, create: bool = False) -> Database | None:
    """The metadata database of ``--database-url``, else of ``--data-dir`` (the default one
    unless given), or None (said on stderr) when it cannot be used: a bad URL, or a data
    directory where no server ever started (unless ``create``)."""
    from lamina_server.storage.db import Database, sqlite_url

    data_dir = (args.data_dir or default_data_dir()).expanduser()
    if args.database_url is None and not (create or (data_dir / "metadata.db").exists()):
        print(f"error: no server data in {data_dir} (start the server once first)", file=sys.stderr)
        return None
    if args.database_url is None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return Database(args.database_url or sqlite_url(data_dir))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


async def _migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from lamina_server.storage.schema import SchemaError, migrate

    db = _database(args, create=True)
    if db is None:
        return 1
    try:
        print(await migrate(db))
    except (SchemaError, SQLAlchemyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    return 0


async def _create_user(args: argparse.Namespace) -> int:
    from lamina_server.identity import Identity, IdentityError

    db = _database(args)
    if db is None:
        return 1
    try:
        created = await Identity(db).create_user(
            args.username, full_name=args.full_name, email=args.email, org_name=args.org
        )
    except IdentityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print(created.api_key)
    return 0


async def _image(args: argparse.Namespace) -> int:
    from lamina_server.sandboxes.images import (
        ImageError,
        Images,
        default_images_dir,
        sandbox_images,
    )

    db = _database(args)
    if db is None:
        return 1
    images = Images(db, default_images_dir((args.data_dir or default_data_dir()).expanduser()))
    try:
        await db.run_write(lambda conn: sandbox_images.create(conn, checkfirst=True))
        if args.command == "add":
            bad = [item for item in args.env if "=" not in item]
            if bad:
                raise ImageError(f"--env {bad[0]!r} is not NAME=VALUE")
            env = dict(item.partition("=")[::2] for item in args.env)
            image = await images.add(args.name, args.path, env=env, replace=args.replace)
            print(f"{image.name}: {image.root}")
        elif args.command == "alias":
            await images.alias(args.name, args.target, replace=args.replace)
            print(f"{args.name} -> {args.target}")
        elif args.command == "rm":
            await images.remove(args.name)
        else:
            for record in await images.list():
                shown = (
                    f"-> {record.alias_of}" if record.alias_of else f"{record.kind} {record.root}"
                )
                print(f"{record.name}\t{shown}")
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    return 0


async def _audit(args: argparse.Namespace) -> int:
    from lamina_server.governance.audit import AuditLog

    db = _database(args)
    if db is None:
        return 1
    try:
        report = await AuditLog(db).verify()
    finally:
        await db.dispose()
    if report.broken is not None:
        print(f"broken: {report.broken}", file=sys.stderr)
        print(f"({report.entries} entries verified before it)", file=sys.stderr)
        return 1
    print(f"ok: {report.entries} entries in {report.chains} chain(s) verify")
    return 0


async def _gc(args: argparse.Namespace) -> int:
    from lamina_server.garbage import Collector, collect_once, holder_name
    from lamina_server.storage.blobs.backend import open_blob_store
    from lamina_server.storage.blobs.s3_location import BlobStoreUrlError
    from lamina_server.storage.schema import SchemaError, ensure_schema

    data_dir = (args.data_dir or default_data_dir()).expanduser()
    try:
        backend = open_blob_store(args.blob_store, data_dir / "blobs", os.environ)
    except BlobStoreUrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    db = _database(args)
    if db is None:
        return 1
    try:
        await ensure_schema(db)  # a data directory from before the collector's tables
        collector = Collector(db, backend.store, grace_seconds=args.grace)
        report = await collect_once(
            collector, holder_name(), dry_run=args.dry_run, sweep_uploads=args.sweep_uploads
        )
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
        if backend.close is not None:
            await backend.close()
    if report is None:
        print("error: another garbage collection is running on this database", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    swept = f", {report.uploads} abandoned uploads" if args.sweep_uploads else ""
    print(f"{verb}: {report.nodes} tree nodes, {report.blobs} blobs, {report.bytes} bytes{swept}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "lamina-server") -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "create-user":
        return asyncio.run(_create_user(_create_user_parser(prog).parse_args(args[1:])))
    if args and args[0] == "audit":
        return asyncio.run(_audit(_audit_parser(prog).parse_args(args[1:])))
    if args and args[0] == "gc":
        return asyncio.run(_gc(_gc_parser(prog).parse_args(args[1:])))
    if args and args[0] == "image":
        return asyncio.run(_image(_image_parser(prog).parse_args(args[1:])))
    if args and args[0] == "migrate":
        return asyncio.run(_migrate(_migrate_parser(prog).parse_args(args[1:])))
    if args and args[0] == "serve":
        args = args[1:]
    return serve(_serve_parser(prog).parse_args(args))
