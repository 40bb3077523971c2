"""schema references

A contract may `$ref` a definition of another registered schema
(`/schemas/{id}#/$defs/Name`); the registry bundles the definition into the contract on
publish. `schema_references` records, per stored schema, each reference it was published
with and the schema it resolved to, so GET of a version shows where definitions came from.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 11:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("referenced_schema_id", sa.Integer(), nullable=False),
        sa.Column("bundled_as", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_id"], ["schemas.id"], name=op.f("fk_schema_references_schema_id_schemas")
        ),
        sa.ForeignKeyConstraint(
            ["referenced_schema_id"],
            ["schemas.id"],
            name=op.f("fk_schema_references_referenced_schema_id_schemas"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_references")),
        sa.UniqueConstraint("schema_id", "position", name=op.f("uq_schema_references_schema_id")),
    )
    with op.batch_alter_table("schema_references", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schema_references_schema_id"), ["schema_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_schema_references_referenced_schema_id"),
            ["referenced_schema_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("schema_references", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schema_references_referenced_schema_id"))
        batch_op.drop_index(batch_op.f("ix_schema_references_schema_id"))
    op.drop_table("schema_references")
