"""Shared fixtures: real services (PostgreSQL), live registry servers over real HTTP."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from registry_service import RegistrySettings, create_app
from registry_service._db import create_db_engine, migrate
from registry_service._store import SCOPES, Store

pytest_plugins = ["broker_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "schemas" / "shop"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get(
    "TASKSCHEMA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def service_missing(what: str, error: Exception) -> None:
    """Skip a test whose service is absent, except under CI=true where that is a failure."""
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires every service", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _hypothesis_jsonschema_constants() -> Iterator[None]:
    """Undo hypothesis-jsonschema 0.23.1 corrupting its shared `false` schema.

    Drawing from some schemas makes it empty its module-level FALSEY (`{"not": {}}`) in
    place, after which every later `from_schema` in the process mistakes `{}` for
    `false` and fails. Restored in place (other modules hold the same object) after each
    test, so one module's draws cannot break another's.
    """
    yield
    canonicalise = sys.modules.get("hypothesis_jsonschema._canonicalise")
    if canonicalise is not None:
        for constant, intact in ((canonicalise.FALSEY, {"not": {}}), (canonicalise.TRUTHY, {})):
            if constant != intact:
                constant.clear()
                constant.update(intact)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"taskschema_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database for this test session."""
    with fresh_postgres_database() as url:
        yield url


class LiveServer:
    """A registry app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the registry did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@dataclass
class Registry:
    """A running registry and clients holding tokens of each scope."""

    url: str
    backend: str
    store: Store
    anonymous: httpx.Client
    reader: httpx.Client
    publisher: httpx.Client
    admin: httpx.Client


def _client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def start_registry(settings: RegistrySettings, backend: str) -> Iterator[Registry]:
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    tokens = {scope: store.create_token(f"test-{scope}", [scope]) for scope in SCOPES}
    with LiveServer(settings) as server:
        clients = {scope: _client(server.url, token) for scope, token in tokens.items()}
        yield Registry(
            url=server.url,
            backend=backend,
            store=store,
            anonymous=_client(server.url),
            reader=clients["read"],
            publisher=clients["publish"],
            admin=clients["admin"],
        )
        for client in clients.values():
            client.close()
    engine.dispose()


live_registry = contextmanager(start_registry)


@pytest.fixture(scope="session")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    url = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'registry.db'}"
    yield from start_registry(RegistrySettings(database_url=url), "sqlite")


@pytest.fixture(scope="session")
def postgresql_registry(postgres_url: str) -> Iterator[Registry]:
    yield from start_registry(RegistrySettings(database_url=postgres_url), "postgresql")


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest) -> Registry:
    """The registry over real HTTP, once on SQLite and once on PostgreSQL."""
    live: Registry = request.getfixturevalue(f"{request.param}_registry")
    return live


@pytest.fixture
def task_name() -> str:
    """A task name no other test uses, so tests can share one registry."""
    return f"t{uuid.uuid4().hex[:10]}.job"


@pytest.fixture(scope="session")
def node_client() -> Path:
    """clients/node, installed and built once per session (see tests/nodejs.py)."""
    from nodejs import build_node_client  # nodejs imports workers, which imports conftest

    return build_node_client()
