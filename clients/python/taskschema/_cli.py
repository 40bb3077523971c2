"""The `taskschema` command line.

Commands whose code needs an extra (`serve`, `token` from the registry) are plugged in
through the `taskschema.cli` entry-point group, so this module never imports them by name.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ._contract import TaskContract
from ._exceptions import ContractError, InvalidJSONError, RegistryError, Violation
from ._files import contract_files

# Exit codes, scriptable in CI (as `buf` does): 1 = refused / incompatible, 2 = usage or input.
EXIT_REFUSED = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="taskschema",
    help="Cross-language schema registry and code generator for Celery tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RegistryOption = Annotated[
    str,
    typer.Option(
        "--registry", envvar="TASKSCHEMA_REGISTRY_URL", help="Registry base URL.", show_default=True
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="TASKSCHEMA_TOKEN", help="Bearer token.", show_default=False),
]
DEFAULT_REGISTRY = "http://127.0.0.1:8000"


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def echo_violations(source: str, violations: list[Violation]) -> None:
    """One line per violation, `file:path: message`, as linters print."""
    for violation in violations:
        typer.echo(f"  {source}:{violation.path or '/'}: {violation.message}")


@app.command("publish")
def publish(
    paths: Annotated[list[Path], typer.Argument(help="Contract files or folders of them.")],
    registry: RegistryOption = DEFAULT_REGISTRY,
    token: TokenOption = None,
) -> None:
    """Publish contracts; prints created / unchanged / refused per file. Exit 1 if any
    was refused."""
    from ._client import RegistryClient

    try:
        files = contract_files(paths)
    except FileNotFoundError as exc:
        fail(str(exc))
    if not files:
        fail("no contract files (*.json) found in " + ", ".join(map(str, paths)))
    refused = 0
    with RegistryClient(registry, token=token) as client:
        for file in files:
            try:
                contract = TaskContract.from_json(file.read_bytes())
                result = client.publish(contract)
            except InvalidJSONError as exc:
                refused += 1
                typer.echo(f"{file}: refused: {exc}")
            except ContractError as exc:
                refused += 1
                typer.echo(f"{file}: refused: {exc.message}")
                echo_violations(str(file), exc.violations)
            except RegistryError as exc:
                if exc.status_code is None:  # unreachable: nothing else will work either
                    fail(exc.message)
                refused += 1
                typer.echo(f"{file}: refused ({exc.error}): {exc.message}")
                echo_violations(str(file), exc.violations)
            else:
                state = "created" if result.created else "unchanged"
                typer.echo(f"{result.task}: {state} v{result.version} (id {result.id})")
    if refused:
        typer.echo(f"{refused} of {len(files)} refused", err=True)
        raise typer.Exit(EXIT_REFUSED)


@app.command("get")
def get(
    name: Annotated[str, typer.Argument(help="Task name, e.g. orders.process_order.")],
    version: Annotated[str, typer.Option(help="Version number or 'latest'.")] = "latest",
    registry: RegistryOption = DEFAULT_REGISTRY,
    token: TokenOption = None,
) -> None:
    """Print a task's contract as JSON."""
    from ._client import RegistryClient

    if version != "latest" and not version.isdigit():
        fail(f"--version must be a number or 'latest', not {version!r}")
    with RegistryClient(registry, token=token) as client:
        try:
            detail = client.get_version(name, "latest" if version == "latest" else int(version))
        except RegistryError as exc:
            fail(exc.message, EXIT_REFUSED if exc.status_code == 404 else EXIT_USAGE)
    typer.echo(json.dumps(detail.contract, indent=2, ensure_ascii=False))


def _missing_extra(name: str, error: ImportError) -> Any:
    def command() -> None:
        fail(
            f"`taskschema {name}` needs an optional extra that is not installed ({error}); "
            "install 'taskschema[all]'"
        )

    command.__doc__ = f"(unavailable: {error})"
    return command


def _plug_in_commands(argv: list[str]) -> None:
    # Load only the plug-in being run (all of them for --help): importing the registry
    # would add a second to every `publish` or `get`.
    core = {command.name for command in app.registered_commands}
    invoked = next((arg for arg in argv if not arg.startswith("-")), None)
    for entry_point in entry_points(group="taskschema.cli"):
        if invoked in core or (invoked is not None and invoked != entry_point.name):
            continue
        try:
            command = entry_point.load()
        except ImportError as exc:
            command = _missing_extra(entry_point.name, exc)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=entry_point.name)
        else:
            app.command(entry_point.name)(command)


def main() -> None:
    _plug_in_commands(sys.argv[1:])
    app()
