"""`taskschema serve` and `taskschema token`, plugged into the CLI by entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from kombu.utils.url import maybe_sanitize_url
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from taskschema import ContractError, InvalidJSONError, TaskContract
from taskschema._cli import echo_violations, fail
from taskschema._files import contract_files

from ._app import create_app
from ._db import create_db_engine, migrate
from ._errors import ApiError
from ._settings import RegistrySettings
from ._store import SCOPES, Store

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="TASKSCHEMA_DATABASE_URL",
        help="SQLAlchemy URL; default: sqlite:///./taskschema.db.",
        show_default=False,
    ),
]


def _settings(database_url: str | None) -> RegistrySettings:
    return RegistrySettings(database_url=database_url) if database_url else RegistrySettings()


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    database_url: DatabaseOption = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            envvar="TASKSCHEMA_BROKER_URL",
            help="Celery broker the task gateway publishes to, e.g. redis://host:6379/0.",
            show_default=False,
        ),
    ] = None,
    result_backend: Annotated[
        str | None,
        typer.Option(
            envvar="TASKSCHEMA_RESULT_BACKEND",
            help="Celery result backend GET /results reads, e.g. redis://host:6379/1.",
            show_default=False,
        ),
    ] = None,
    publish: Annotated[
        list[Path] | None,
        typer.Option(help="Contract files or folders to publish on start (repeatable)."),
    ] = None,
) -> None:
    """Run the registry (embedded SQLite unless a database URL is given)."""
    seed: list[tuple[Path, TaskContract]] = []
    try:
        for file in contract_files(publish or []):
            seed.append((file, TaskContract.from_json(file.read_bytes())))
    except FileNotFoundError as exc:
        fail(str(exc))
    except InvalidJSONError as exc:
        fail(f"{file}: {exc}")
    except ContractError as exc:
        typer.echo(f"error: {file}: {exc.message}", err=True)
        echo_violations(str(file), exc.violations)
        raise typer.Exit(2) from None
    given: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": broker_url,
        "result_backend": result_backend,
    }
    try:
        settings = RegistrySettings(**{key: value for key, value in given.items() if value})
    except ValidationError as exc:
        fail("; ".join(_option_error(error) for error in exc.errors()))
    store = _store(settings.database_url)
    _publish_seed(store, seed)
    store.engine.dispose()
    base = f"http://{host}:{port}"
    typer.echo(
        f"taskschema registry: {base}  (web UI: {base}/ui, API docs: {base}/docs, "
        f"database: {settings.database_url})"
    )
    if settings.broker_url:
        broker = maybe_sanitize_url(settings.broker_url)
        typer.echo(f"task gateway: POST {base}/tasks/{{name}}/send -> {broker}")
    if settings.result_backend:
        backend = maybe_sanitize_url(settings.result_backend)
        typer.echo(f"task results: GET {base}/results/{{task_id}} <- {backend}")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _publish_seed(store: Store, seed: list[tuple[Path, TaskContract]]) -> None:
    """Publish each contract, reporting as `taskschema publish` does. A refused one (say,
    incompatible with what a database kept from an earlier run holds) is reported and
    skipped: the registry still starts, with what it has."""
    refused = 0
    for file, contract in seed:
        try:
            outcome = store.publish(contract)
        except ApiError as exc:
            refused += 1
            typer.echo(f"{file}: refused ({exc.error}): {exc.message}")
            echo_violations(str(file), exc.violations)
        else:
            state = "created" if outcome.created else "unchanged"
            registered = outcome.registered
            typer.echo(f"{registered.task}: {state} v{registered.version} (id {registered.id})")
    if refused:
        typer.echo(f"{refused} of {len(seed)} refused; serving without them", err=True)


def _option_error(error: ErrorDetails) -> str:
    option = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "settings"
    return f"{option}: {error['msg']}"


token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


def _store(database_url: str | None) -> Store:
    engine = create_db_engine(_settings(database_url).database_url)
    migrate(engine)
    return Store(engine)


@token_app.command("create")
def create_token(
    scope: Annotated[
        list[str], typer.Option(help=f"Scope to grant (repeatable): {', '.join(SCOPES)}.")
    ],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli",
    database_url: DatabaseOption = None,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    unknown = sorted(set(scope) - set(SCOPES))
    if unknown:
        fail(f"unknown scope {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    typer.echo(_store(database_url).create_token(name, scope))


@token_app.command("list")
def list_tokens(database_url: DatabaseOption = None) -> None:
    """List tokens (never their values)."""
    for token in _store(database_url).list_tokens():
        state = "revoked" if token.revoked else "active"
        scopes = ",".join(sorted(token.scopes))
        typer.echo(f"{token.id}\t{token.name}\t{scopes}\t{state}\t{token.created_at:%Y-%m-%d}")


@token_app.command("revoke")
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="The id shown by `token list`.")],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a token; requests carrying it are refused from now on."""
    if not _store(database_url).revoke_token(token_id):
        fail(f"no active token with id {token_id}", 1)
    typer.echo(f"revoked token {token_id}")
