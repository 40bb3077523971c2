"""Alembic migrations: an existing database upgrades in place, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from registry_service._db import create_db_engine, migrate
from registry_service._store import Store
from taskschema import TaskContract

from conftest import fresh_postgres_database
from helpers import make_contract

# The newest revision, whatever later migrations add.
HEAD = ScriptDirectory(str(resources.files("registry_service") / "migrations")).get_current_head()
RACERS = 6


@contextmanager
def engine_for(backend: str, tmp_path: Path) -> Iterator[Engine]:
    if backend == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
    else:
        with fresh_postgres_database() as url:
            engine = create_db_engine(url)
            yield engine
            engine.dispose()


def revision(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_0001_database_upgrades_keeping_its_ids_and_never_reuses_one(
    backend: str, tmp_path: Path
) -> None:
    with engine_for(backend, tmp_path) as engine:
        migrate(engine, "0001")
        store = Store(engine)
        contracts = [
            TaskContract(make_contract("old.one")),
            TaskContract(make_contract("old.one", description="Second.")),
            TaskContract(make_contract("old.two")),
        ]
        before = [store.publish(contract).registered for contract in contracts]
        assert [registered.id for registered in before] == [1, 2, 3]
        store.delete_version("old.one", 1, permanent=False)
        token = store.create_token("kept", ["publish"])

        migrate(engine)

        assert revision(engine) == HEAD
        for registered, contract in zip(before, contracts, strict=True):
            stored = store.get_schema(registered.id)
            assert (stored.fingerprint, stored.document) == (
                contract.fingerprint,
                contract.canonical_json(),
            )
        assert store.get_version("old.one", 2, include_deleted=False).id == 2
        assert store.get_version("old.one", 1, include_deleted=True).deleted
        assert store.find_token(token) is not None
        # The unique fingerprint survived the rebuild: publishing again is idempotent.
        again = store.publish(contracts[2])
        assert (again.created, again.registered.id) == (False, 3)
        # Delete the schema with the highest id: its id must not come back.
        store.delete_version("old.two", 1, permanent=False)
        store.delete_version("old.two", 1, permanent=True)
        fresh = store.publish(TaskContract(make_contract("old.two", description="New."))).registered
        assert fresh.id == 4
        with engine.connect() as connection:
            if backend == "sqlite":
                assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
                sql = connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'schemas'"
                ).scalar()
                assert "AUTOINCREMENT" in str(sql)
            else:
                # PostgreSQL's 0001 table already never reuses ids: a SERIAL sequence that
                # does not cycle.
                cycles = connection.execute(
                    text(
                        "SELECT seqcycle FROM pg_sequence WHERE seqrelid = "
                        "pg_get_serial_sequence('schemas', 'id')::regclass"
                    )
                ).scalar()
                assert cycles is False
        # Foreign keys are enforced again once the migration is over.
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO versions (task_id, version, schema_id, deleted, created_at) "
                    "VALUES (1, 99, 999, false, CURRENT_TIMESTAMP)"
                )
            )


def test_a_sqlite_upgrade_that_would_break_references_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        migrate(engine, "0001")
        with sqlite3.connect(path) as raw:  # foreign keys are off on a plain connection
            raw.execute(
                "INSERT INTO tasks (id, name, last_version, created_at) "
                "VALUES (1, 'a.b', 1, CURRENT_TIMESTAMP)"
            )
            raw.execute(
                "INSERT INTO versions (task_id, version, schema_id, deleted, created_at) "
                "VALUES (1, 1, 42, 0, CURRENT_TIMESTAMP)"
            )
        with pytest.raises(RuntimeError, match="broken references"):
            migrate(engine)
        assert revision(engine) == "0001"
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_a_migrated_sqlite_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    with sqlite3.connect(path) as plain:  # WAL is a property of the file, not the connection
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_processes_migrating_one_empty_sqlite_database_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    # Separate processes, as registry replicas are: each waits for the others' migration
    # (a transaction that read first could not take the write lock and would fail at once).
    url = f"sqlite:///{tmp_path / 'race.db'}"
    script = (
        "import sys, time\n"
        "from registry_service._db import create_db_engine, migrate\n"
        "engine = create_db_engine(sys.argv[1])\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "migrate(engine)\n"
    )
    start = time.time() + 3  # after every interpreter has imported the registry
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(RACERS)
    ]
    outputs = [process.communicate(timeout=60)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0] * RACERS, outputs
    engine = create_db_engine(url)
    try:
        assert revision(engine) == HEAD
    finally:
        engine.dispose()
