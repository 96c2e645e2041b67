"""An index to list a repository's open sessions without reading its closed ones.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_repo_sessions_state", "repo_sessions", ["repository_id", "state", "id"])


def downgrade() -> None:
    op.drop_index("ix_repo_sessions_state", table_name="repo_sessions")
