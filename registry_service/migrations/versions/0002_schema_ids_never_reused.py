"""schema ids are never reused

`schemas.id` is the global id served as immutable by GET /schemas/{id}. On SQLite an
INTEGER PRIMARY KEY without AUTOINCREMENT hands out max(id) + 1, so permanently deleting
the newest schema gave its id to the next contract. The table is rebuilt with
AUTOINCREMENT (ids kept; SQLite then records the highest id in sqlite_sequence and never
goes below it). PostgreSQL needs nothing: its SERIAL sequence does not cycle and never
returns a value twice, deleted or rolled back.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:12:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _schemas_table() -> sa.Table:
    """The table as 0001 created it, so the copy does not depend on reflection."""
    return sa.Table(
        "schemas",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schemas"),
        sa.UniqueConstraint("fingerprint", name="uq_schemas_fingerprint"),
    )


def _rebuild_schemas(*, autoincrement: bool) -> None:
    # `versions` references `schemas`: registry_service._db.migrate runs SQLite
    # migrations with foreign-key enforcement off (SQLite's documented procedure for
    # rebuilding a table) and checks every reference before it commits.
    with op.batch_alter_table(
        "schemas",
        recreate="always",
        copy_from=_schemas_table(),
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ):
        pass


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_schemas(autoincrement=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_schemas(autoincrement=False)
