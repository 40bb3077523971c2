"""The registry's relational schema (SQLAlchemy 2 declarative); Alembic migrates it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

GLOBAL_SCOPE = "*"  # the config row that holds the registry-wide default


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores no offset, so restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Highest version number ever issued; bumped under the row lock, never reused.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Schema(Base):
    """A distinct canonical contract document; its id is global and immutable."""

    __tablename__ = "schemas"
    # Never hand out an id twice, even after a permanent delete of the newest schema
    # (SQLite would otherwise reuse max(id) + 1; PostgreSQL's sequence never does).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("task_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    schema_id: Mapped[int] = mapped_column(ForeignKey("schemas.id"), index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BundledReference(Base):
    """A registry reference a schema was published with: the `$ref` as written, the
    schema it resolved to, and the local `$ref` its copy is reached by."""

    __tablename__ = "schema_references"
    __table_args__ = (UniqueConstraint("schema_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_id: Mapped[int] = mapped_column(ForeignKey("schemas.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    ref: Mapped[str] = mapped_column(Text)
    # A foreign key: a schema others were bundled from is kept on permanent delete, so
    # the provenance GET shows stays readable at /schemas/{id}.
    referenced_schema_id: Mapped[int] = mapped_column(ForeignKey("schemas.id"), index=True)
    bundled_as: Mapped[str] = mapped_column(Text)


class CompatibilitySetting(Base):
    __tablename__ = "compatibility"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # task name or "*"
    mode: Mapped[str] = mapped_column(String(32))


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
