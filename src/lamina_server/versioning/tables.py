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
    # a repository's open sessions, listed without reading the closed ones
    sa.Index("ix_repo_sessions_state", "repository_id", "state", "id"),
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

# --- the garbage collector's books (:mod:`lamina_server.versioning.books`) ---------------------

_Address = sa.Text()

# The nodes of each repository's HEAD tree (a node is in a tree at most once).
gc_head_nodes = sa.Table(
    "gc_head_nodes",
    metadata,
    sa.Column("repository_id", sa.String(36), primary_key=True),
    sa.Column("node_id", _Id, primary_key=True),
    sa.Index("ix_gc_head_nodes_node", "node_id"),
)

# How many entries of each repository's HEAD tree hold each blob address.
gc_head_blobs = sa.Table(
    "gc_head_blobs",
    metadata,
    sa.Column("repository_id", sa.String(36), primary_key=True),
    sa.Column("address", _Address, primary_key=True),
    sa.Column("refs", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Index("ix_gc_head_blobs_address", "address"),
)

# What a repository let go of: a node ("n") or blob ("b") that left its HEAD tree, or a blob
# of a rolled-back session, at ``released_at``. ``retained``: a commit of the repository held
# it, so it is kept for the repository's retention window; otherwise only for the grace period.
gc_candidates = sa.Table(
    "gc_candidates",
    metadata,
    sa.Column("kind", sa.String(1), primary_key=True),
    sa.Column("item", _Address, primary_key=True),
    sa.Column("repository_id", sa.String(36), primary_key=True),
    sa.Column("released_at", sa.BigInteger, nullable=False),
    sa.Column("retained", sa.Boolean, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Index("ix_gc_candidates_released", "released_at"),
    sa.Index("ix_gc_candidates_repository", "repository_id", "released_at"),
)

# Repositories whose HEAD is in the books (all those created since the books were kept).
gc_indexed = sa.Table(
    "gc_indexed",
    metadata,
    sa.Column("repository_id", sa.String(36), primary_key=True),
)

# Blobs found to be garbage whose bytes are still to be deleted from the blob store.
gc_condemned = sa.Table(
    "gc_condemned",
    metadata,
    sa.Column("address", _Address, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
)

# Who collects: one holder at a time, until ``expires_at`` (microseconds).
gc_lease = sa.Table(
    "gc_lease",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)
