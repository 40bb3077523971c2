"""`taskschema codegen`, plugged into the `taskschema` command through the
`taskschema.cli` entry-point group.

Settings come from options, else from `[tool.taskschema.codegen]` in `pyproject.toml`
(the current folder's, or `--config`), whose paths are relative to that file::

    [tool.taskschema.codegen]
    from = "schemas"          # or: registry = "http://registry:8000"
    select = ["orders.*"]
    out = "src/shop/tasks"
    lang = "python"
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ._errors import CodegenError
from ._pydantic import cache_dir
from ._python import Output
from ._sources import Source, from_folders, from_registry
from ._writer import Plan, apply, plan

EXIT_STALE = 1
EXIT_USAGE = 2
# A table is printed from this many contracts on; fewer get one line each.
TABLE_FROM = 2
# The width rich is given off a terminal: wider than any row, so none is cut or wrapped.
UNBOUNDED_WIDTH = 10_000


class Lang(StrEnum):
    python = "python"
    typescript = "typescript"


@dataclass(frozen=True)
class Settings:
    registry: str | None
    folders: list[Path]
    select: list[str]
    out: Path
    lang: Lang


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _config_table(config: Path | None) -> tuple[dict[str, Any], Path]:
    path = config or Path("pyproject.toml")
    if not path.is_file():
        if config is not None:
            _fail(f"--config {config}: no such file")
        return {}, Path()
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        _fail(f"{path}: {exc}")
    table = data.get("tool", {}).get("taskschema", {}).get("codegen", {})
    if not isinstance(table, dict):
        _fail(f"{path}: [tool.taskschema.codegen] must be a table")
    known = {"registry", "from", "select", "out", "lang"}
    unknown = sorted(set(table) - known)
    if unknown:
        _fail(
            f"{path}: unknown key(s) in [tool.taskschema.codegen]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    return table, path.parent


def _settings(
    registry: str | None,
    folders: Sequence[Path],
    select: Sequence[str],
    out: Path | None,
    lang: Lang | None,
    config: Path | None,
) -> Settings:
    table, base = _config_table(config)

    def strings(key: str) -> list[str]:
        value = table.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            _fail(f"[tool.taskschema.codegen] {key} must be a string or a list of strings")
        return value

    if not registry and not folders:
        registry = table.get("registry") or None
        folders = [base / folder for folder in strings("from")]
    if registry and folders:
        _fail("give either --registry URL or --from DIR, not both")
    if not registry and not folders:
        _fail("say where contracts come from: --registry URL or --from DIR")
    if out is None:
        configured = table.get("out")
        if not isinstance(configured, str):
            _fail("say where to write: --out DIR (or `out` in [tool.taskschema.codegen])")
        out = base / configured
    if lang is None:
        try:
            lang = Lang(table.get("lang", "python"))
        except ValueError:
            _fail(
                "[tool.taskschema.codegen] lang must be python or typescript, "
                f"not {table['lang']!r}"
            )
    return Settings(
        registry=registry,
        folders=list(folders),
        select=list(select) or strings("select"),
        out=out,
        lang=lang,
    )


def codegen(
    registry: Annotated[
        str | None,
        typer.Option(help="Take the latest version of each task from this registry."),
    ] = None,
    folders: Annotated[
        list[Path] | None,
        typer.Option(
            "--from", help="Take contracts from these files or folders.", show_default=False
        ),
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option(
            help="Only tasks matching this glob (repeatable), e.g. 'orders.*'.", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="The package folder to write.", show_default=False)
    ] = None,
    lang: Annotated[
        Lang | None, typer.Option(help="python (default) or typescript.", show_default=False)
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 with a diff if the output is stale."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            help="pyproject.toml holding \\[tool.taskschema.codegen] (default: ./pyproject.toml).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TASKSCHEMA_TOKEN", help="Bearer token for the registry.", show_default=False
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not reuse generated models.")
    ] = False,
) -> None:
    """Generate typed code from task contracts: Pydantic models and typed stubs (python)
    or types and send helpers for the Node producer (typescript).

    Exit 0 when done or up to date, 1 when --check finds stale files, 2 on usage or input
    errors. Settings may also live in \\[tool.taskschema.codegen] of pyproject.toml.
    """
    settings = _settings(registry, folders or [], select or [], out, lang, config)
    console = _console()
    try:
        sources = _load(settings, token)
        if not sources:
            what = ", ".join(settings.select) or "*"
            where = settings.registry or ", ".join(map(str, settings.folders))
            _fail(f"no contracts match --select {what} in {where}")
        output = _generate(sources, settings, None if no_cache else cache_dir(), console)
        result = plan(settings.out, output.files)
    except CodegenError as exc:
        _fail(str(exc))
    if check:
        _report(output, result, console, checking=True)
        if result.stale:
            sys.stdout.write(result.diff())
            typer.echo(
                f"{len(result.stale)} generated file(s) in {settings.out} are out of date; "
                "run `taskschema codegen` to regenerate them",
                err=True,
            )
            raise typer.Exit(EXIT_STALE)
        typer.echo(f"{settings.out}: up to date ({len(output.files)} files)", err=True)
        return
    apply(result)
    _report(output, result, console, checking=False)


def _console() -> Console:
    """Rich output on stderr. Off a terminal (a CI log, a pipe) rich would fit the table
    to 80 columns and cut task names short; there, lines are as long as they need."""
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = UNBOUNDED_WIDTH
    return console


def _load(settings: Settings, token: str | None) -> list[Source]:
    if settings.registry:
        return from_registry(settings.registry, settings.select, token=token)
    return from_folders(settings.folders, settings.select)


def _generate(
    sources: list[Source], settings: Settings, cache: Path | None, console: Console
) -> Output:
    from . import generate

    with console.status(
        f"generating {settings.lang.value} for {len(sources)} contract(s)"
    ) as status:

        def progress(done: int, total: int, label: str) -> None:
            status.update(f"generating {settings.lang.value}: {label} ({done}/{total} namespaces)")

        return generate(sources, lang=settings.lang.value, cache=cache, progress=progress)


def _report(output: Output, result: Plan, console: Console, *, checking: bool) -> None:
    """One row per task: its version, its files, and whether they were written (or are
    stale, with --check); then files removed and the totals."""
    changed, unchanged = ("stale", "up to date") if checking else ("written", "unchanged")
    rows = []
    for task in output.tasks:
        # A task is written when its own stub is; shared files are counted below.
        stale = result.status(task.files[0]) != "unchanged"
        shared = len(task.files) - 1
        files = f"{task.files[0]} (+{shared} shared)" if shared else task.files[0]
        rows.append(
            (task.source.task, task.source.version_label, files, changed if stale else unchanged)
        )
    if len(rows) < TABLE_FROM:
        for name, version, files, status in rows:
            typer.echo(f"{name} (version {version}): {files}: {status}", err=True)
    else:
        table = Table(title=f"taskschema codegen -> {result.out}")
        for column in ("task", "version", "files", "status"):
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    removed = [path for path, change in result.changes.items() if change == "removed"]
    for path in removed:
        console.print(
            f"{path}: {'would be removed' if checking else 'removed'} (no longer generated)"
        )
    written = sum(1 for change in result.changes.values() if change in ("added", "changed"))
    kept = len(result.changes) - written - len(removed)
    if checking:
        typer.echo(
            f"{written} file(s) stale, {kept} up to date, {len(removed)} to remove", err=True
        )
    else:
        typer.echo(f"{written} file(s) written, {kept} unchanged, {len(removed)} removed", err=True)
