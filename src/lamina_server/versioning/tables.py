"""The engine's tables, declared on the shared :data:`~lamina_server.storage.db.metadata`.

Times are integer microseconds since the epoch (UTC); maps and lists are JSON text. Paths use
byte-wise collation (``C`` on PostgreSQL, SQLite's default ``BINARY``) so that SQL ordering is
the code-point ordering of the tree.
"""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.db import metadata

_Id = sa.String(64)
_Path = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

tree_nodes = sa.Table(
    "tree_nodes",
    metadata,
    sa.Column("id", _Id, primary_key=True),  # sha256 of body
    sa.Column("body", sa.LargeBinary, nullable=False),
)

commits = sa.Table(
    "commits",
    metadata,
    sa.Column("repository_id", sa.String(36), primary_key=True),
    sa.Column("id", _Id, primary_key=True),
    sa.Column("first_parent", _Id, nullable=True),
    sa.Column("parents", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("committer_type", sa.String(16), nullable=False),
    sa.Column("committer_id", sa.String(64), nullable=False),
    sa.Column("committer_name", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("meta_range_id", _Id, nullable=False),
    sa.Column("object_count", sa.BigInteger, nullable=False),
    sa.Column("total_size", sa.BigInteger, nullable=False),
)

refs = sa.Table(
    "refs",
    metadata,
    sa.Column("repository_id", sa.String(36), primary_key=True),
    sa.Column("head", _Id, nullable=False),
)

repo_sessions = sa.Table(
    "repo_sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("repository_id", sa.String(36), nullable=False, index=True),
    sa.Column("base_commit", _Id, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),  # open, awaiting_approval, ...
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by_id", sa.String(64), nullable=False),
    sa.Column("created_by_name", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("commit_id", _Id, nullable=True),
    # bumped by every staging write; a commit lands only if it saw the latest staged state
    sa.Column("change_seq", sa.BigInteger, nullable=False, default=0),
)

# Clustered by (session_id, path): a session's changes are one ordered range scan.
staged_changes = sa.Table(
    "staged_changes",
    metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("path", _Path, primary_key=True),
    sa.Column("entry", sa.Text, nullable=True),  # encoded entry; NULL = staged delete
    sqlite_with_rowid=False,
)
