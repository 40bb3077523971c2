"""Where contracts come from: a folder of contract files or a registry, narrowed by --select."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskschema import (
    ContractError,
    InvalidJSONError,
    RegistryClient,
    RegistryError,
    TaskContract,
)
from taskschema._files import contract_files

from ._errors import CodegenError

LOCAL = "local"


@dataclass(frozen=True)
class Source:
    """One contract to generate code for, and where it came from.

    `version` and `schema_id` are the registry's; both are None for a contract read
    from a file, which has neither.
    """

    contract: TaskContract
    origin: str
    version: int | None = None
    schema_id: int | None = None

    @property
    def task(self) -> str:
        return self.contract.task

    @property
    def version_label(self) -> str:
        """`3` for a registry version, `local` for a file."""
        return LOCAL if self.version is None else str(self.version)

    @property
    def registry_id_label(self) -> str:
        return f"{LOCAL} (no registry id)" if self.schema_id is None else str(self.schema_id)


def selected(task: str, select: Sequence[str]) -> bool:
    """Whether `task` matches one of the `select` globs (all tasks when there are none)."""
    return not select or any(fnmatch.fnmatchcase(task, pattern) for pattern in select)


def from_folders(paths: Iterable[Path], select: Sequence[str] = ()) -> list[Source]:
    """The contracts in contract files under `paths` whose task matches `select`.

    Raises CodegenError naming the file for one that is unreadable or not a valid
    contract, and for two files declaring the same task.
    """
    try:
        files = contract_files(paths)
    except FileNotFoundError as exc:
        raise CodegenError(str(exc)) from None
    found: dict[str, Source] = {}
    for file in files:
        try:
            contract = TaskContract.from_json(file.read_bytes())
        except OSError as exc:
            raise CodegenError(f"{file}: {exc.strerror}") from None
        except (InvalidJSONError, ContractError) as exc:
            raise CodegenError(f"{file}: {exc}") from None
        if not selected(contract.task, select):
            continue
        if contract.task in found:
            raise CodegenError(
                f"{file}: task {contract.task!r} is also declared in {found[contract.task].origin}"
            )
        found[contract.task] = Source(contract, origin=str(file))
    return _sorted(found.values())


def from_registry(
    url: str, select: Sequence[str] = (), *, token: str | None = None
) -> list[Source]:
    """The latest live version of every task in the registry matching `select`.

    Raises CodegenError when the registry cannot be reached or answers with an error.
    """
    sources: list[Source] = []
    try:
        with RegistryClient(url, token=token) as client:
            names: list[str] = []
            offset = 0
            while True:
                page = client.list_tasks(offset=offset, limit=100)
                names.extend(summary.task for summary in page.tasks)
                offset += len(page.tasks)
                if not page.tasks or offset >= page.total:
                    break
            for name in sorted(name for name in names if selected(name, select)):
                detail = client.get_version(name, "latest")
                contract = TaskContract(detail.contract)
                sources.append(
                    Source(
                        contract,
                        origin=f"{client.url}/schemas/{detail.id}",
                        version=detail.version,
                        schema_id=detail.id,
                    )
                )
    except RegistryError as exc:
        raise CodegenError(f"registry {url}: {exc.message}") from None
    except ContractError as exc:
        raise CodegenError(f"registry {url} served an invalid contract: {exc}") from None
    return sources


def _sorted(sources: Iterable[Source]) -> list[Source]:
    return sorted(sources, key=lambda source: source.task)
