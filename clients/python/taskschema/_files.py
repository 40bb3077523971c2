"""Finding and reading contract files on disk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# JSON Schema documents (the meta-schema, shared schemas) are not contracts.
_NOT_CONTRACTS = "*.schema.json"


def contract_files(paths: Iterable[Path]) -> list[Path]:
    """Each file given, plus every `*.json` under each folder given (not `*.schema.json`),
    sorted within a folder. Raises FileNotFoundError for a path that does not exist."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    file
                    for file in path.rglob("*.json")
                    if file.is_file() and not file.match(_NOT_CONTRACTS)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found
