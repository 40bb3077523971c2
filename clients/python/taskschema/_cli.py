"""The `taskschema` command line.

Commands whose code needs an extra (`serve`, `token` from the registry) are plugged in
through the `taskschema.cli` entry-point group, so this module never imports them by name.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ._compat import check_compatibility, who_breaks
from ._contract import TaskContract
from ._exceptions import ContractError, InvalidJSONError, RegistryError, Violation
from ._files import contract_files
from ._json import loads_strict
from ._models import CompatibilityMode, CompatibilityReport, Incompatibility
from ._references import Fetch, FetchedSchema, SchemaAddress, bundle_references, registry_refs

if TYPE_CHECKING:
    from ._client import RegistryClient

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


def violation_line(source: str, violation: Violation) -> str:
    """`file:path: message` as linters print, with the rule and who breaks when known."""
    where = f"{source}:{violation.path or '/'}"
    if not isinstance(violation, Incompatibility):
        return f"{where}: {violation.message}"
    context: list[str] = [violation.side]
    if violation.direction is not None:
        context.append(violation.direction.value)
    if violation.version is not None:
        context.append(f"vs v{violation.version}")
    kind = "" if violation.direction is not None else "warning "
    return f"{where}: {kind}{violation.rule}: {violation.message} ({' '.join(context)})"


def echo_violations(source: str, violations: Sequence[Violation]) -> None:
    for violation in violations:
        typer.echo(f"  {violation_line(source, violation)}")
    for sentence in who_breaks(violations):
        typer.echo(f"  {sentence}")


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
                result = client.publish(_publishable(file))
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


def _publishable(file: Path) -> TaskContract | dict[str, Any]:
    """A contract file, validated here unless it holds registry references: those only
    the registry can resolve, so it validates the bundled document itself."""
    document = loads_strict(file.read_bytes())
    if isinstance(document, dict) and registry_refs(document):
        return document
    return TaskContract(document)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


@app.command("check")
def check(
    paths: Annotated[
        list[Path],
        typer.Argument(help="OLD.json NEW.json offline, or contracts to check with --registry."),
    ],
    registry: Annotated[
        str | None,
        typer.Option(
            help="Check each contract against what this registry holds.", show_default=False
        ),
    ] = None,
    resolve: Annotated[
        str | None,
        typer.Option(
            help="Offline: resolve registry references ($ref /schemas/{id}#/$defs/Name) "
            "through this registry; the comparison stays local.",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        CompatibilityMode | None,
        typer.Option(
            help="Default: BACKWARD offline, the task's mode on the registry.", show_default=False
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(help="With --registry: compare with this version only.", show_default=False),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.text,
    token: TokenOption = None,
) -> None:
    """Check compatibility. Exit 0 compatible, 1 incompatible, 2 usage or input error."""
    results: list[tuple[str, CompatibilityReport]] = []
    if registry is None:
        if len(paths) != 2 or version is not None:
            fail("offline, give exactly OLD.json NEW.json; or check contracts with --registry URL")
        old, new = _load_pair(paths[0], paths[1], resolve, token)
        if old.task != new.task:
            fail(f"{paths[0]} is for {old.task!r} but {paths[1]} is for {new.task!r}")
        results.append(
            (
                str(paths[1]),
                check_compatibility(new, [(None, old)], mode or CompatibilityMode.BACKWARD),
            )
        )
    else:
        from ._client import RegistryClient

        if resolve is not None:
            fail("--resolve is for OLD.json NEW.json offline; --registry resolves by itself")
        try:
            files = contract_files(paths)
        except FileNotFoundError as exc:
            fail(str(exc))
        if not files:
            fail("no contract files (*.json) found in " + ", ".join(map(str, paths)))
        with RegistryClient(registry, token=token) as client:
            for file in files:
                try:
                    report = client.check(_checkable(file), version=version, mode=mode)
                except RegistryError as exc:
                    _fail_with(file, exc.message, exc.violations)
                results.append((str(file), report))
    if output is OutputFormat.json:
        typer.echo(
            json.dumps(
                [{"file": source, **report.model_dump(mode="json")} for source, report in results],
                indent=2,
            )
        )
    else:
        for source, report in results:
            verdict = "compatible" if report.compatible else "incompatible"
            typer.echo(f"{source}: {verdict} ({report.mode.value})")
            echo_violations(source, [*report.violations, *report.warnings])
    if not all(report.compatible for _, report in results):
        raise typer.Exit(EXIT_REFUSED)


def _read(path: Path) -> dict[str, Any]:
    """A contract file's JSON object, or exit 2."""
    try:
        document = loads_strict(path.read_bytes())
    except OSError as exc:
        fail(f"{path}: {exc.strerror}")
    except InvalidJSONError as exc:
        fail(f"{path}: {exc}")
    if not isinstance(document, dict):
        _fail_with(path, "contract is invalid", [Violation(path="", message="not a JSON object")])
    return document


def _contract(path: Path, document: dict[str, Any], fetch: Fetch | None = None) -> TaskContract:
    """A file's contract, its registry references bundled through `fetch`; or exit 2
    naming every problem in it."""
    try:
        if fetch is not None:
            document = bundle_references(document, fetch).document
        return TaskContract(document)
    except ContractError as exc:
        _fail_with(path, exc.message, exc.violations)


def _fail_with(path: Path, message: str, violations: Sequence[Violation]) -> NoReturn:
    typer.echo(f"error: {path}: {message}", err=True)
    for violation in violations:
        typer.echo(f"  {violation_line(str(path), violation)}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _checkable(path: Path) -> TaskContract | dict[str, Any]:
    """What to send the registry for `path`: the document as is when it holds registry
    references (the registry bundles it), else the contract, validated here."""
    document = _read(path)
    return document if registry_refs(document) else _contract(path, document)


def _load_pair(
    old: Path, new: Path, resolve: str | None, token: str | None
) -> tuple[TaskContract, TaskContract]:
    """OLD and NEW as contracts; registry references need `--resolve URL`."""
    documents = {path: _read(path) for path in (old, new)}
    unresolved = [
        (path, pointer, ref)
        for path, doc in documents.items()
        for pointer, ref in registry_refs(doc)
    ]
    if not unresolved:
        return _contract(old, documents[old]), _contract(new, documents[new])
    if resolve is None:
        for path, pointer, ref in unresolved:
            typer.echo(
                f"error: {path}:{pointer}: registry reference {ref!r} cannot be resolved "
                "offline: give --resolve URL to resolve it through a registry, or check "
                "against the registry with --registry URL",
                err=True,
            )
        raise typer.Exit(EXIT_USAGE)
    from ._client import RegistryClient

    with RegistryClient(resolve, token=token) as client:
        fetch = _fetch_from(client)
        try:
            return _contract(old, documents[old], fetch), _contract(new, documents[new], fetch)
        except RegistryError as exc:
            fail(f"cannot resolve registry references through {resolve}: {exc.message}")


def _fetch_from(client: RegistryClient) -> Fetch:
    """A bundling fetch over the registry's HTTP API (404: the reference is unknown)."""

    def fetch(address: SchemaAddress) -> FetchedSchema | None:
        try:
            if address.schema_id is not None:
                document = client.get_schema(address.schema_id).to_dict()
                return FetchedSchema(address.schema_id, document)
            detail = client.get_version(str(address.task), address.version or 0)
            return FetchedSchema(detail.id, detail.contract)
        except RegistryError as exc:
            if exc.status_code == 404:
                return None
            raise

    return fetch


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
