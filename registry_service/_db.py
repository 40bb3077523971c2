"""Engine creation and schema migration for SQLite and PostgreSQL."""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

# An arbitrary constant: every registry process migrating one PostgreSQL takes this lock,
# so replicas that start together do not race to create the same tables.
_MIGRATION_LOCK_ID = 0x7A5C_5C3A
# Execution option naming how a SQLite transaction begins ("IMMEDIATE": take the write lock).
_SQLITE_BEGIN = "taskschema_sqlite_begin"


def create_db_engine(database_url: str) -> Engine:
    """An engine for `database_url`, with SQLite set up for concurrent use (WAL, busy wait)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", _configure_sqlite)
    # pysqlite delays BEGIN until the first write; take control so a transaction
    # covers its reads too (SQLAlchemy's documented recipe).
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _begin_sqlite(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (the newest one by default)."""
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files(__package__).joinpath("migrations"))
    )
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Rebuilding a table others reference needs foreign keys off (SQLite's own
            # procedure for schema changes), and SQLite ignores that pragma inside a
            # transaction, so it is set before BEGIN. BEGIN IMMEDIATE takes the write lock
            # first: migrations read before they write, and a reader that another process
            # wrote under could not upgrade its lock and would fail instead of waiting.
            _sqlite_pragma(connection, "foreign_keys=OFF")
            connection.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    _check_foreign_keys(connection)
        finally:
            if sqlite:
                _sqlite_pragma(connection, "foreign_keys=ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    """Run a PRAGMA on the driver connection itself, outside any transaction."""
    connection.connection.driver_connection.execute(f"PRAGMA {pragma}")  # type: ignore[union-attr]


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"migration would leave broken references, rolled back: {broken}")
