"""The Node tools codegen uses (json-schema-to-typescript; typescript and pyright for the
tests), pinned in codegen/package.json and package-lock.json and installed with `npm ci`
into codegen's own node_modules on first use."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from ._errors import CodegenError

HERE: Final = Path(__file__).resolve().parent
_LOCK: Final = "package-lock.json"


def node_dir() -> Path:
    """Where node_modules lives: codegen's own folder when it is writable (a checkout or
    an editable install), else a copy of package.json and the lock file in the cache."""
    override = os.environ.get("TASKSCHEMA_CODEGEN_NODE_DIR")
    if override:
        return Path(override)
    if os.access(HERE, os.W_OK):
        return HERE
    root = os.environ.get("TASKSCHEMA_CACHE_DIR") or Path.home() / ".cache" / "taskschema"
    return Path(root) / "codegen-node"


def executable(name: str) -> str:
    """Find `node` or `npm`, or raise CodegenError saying what to install."""
    found = shutil.which(name)
    if found is None:
        raise CodegenError(
            f"`{name}` is not on PATH: codegen needs Node.js 20+ and npm for this "
            "(install them, e.g. `apt-get install nodejs npm`)"
        )
    return found


def ensure_installed() -> Path:
    """The node_modules folder, after `npm ci` if it is missing or older than the lock
    file. Raises CodegenError when node or npm is missing or `npm ci` fails."""
    folder = node_dir()
    modules = folder / "node_modules"
    stamp = modules / ".package-lock.json"  # npm writes it on every install
    lock = HERE / _LOCK
    if stamp.is_file() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return modules
    executable("node")
    npm = executable("npm")
    if folder != HERE:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", _LOCK):
            shutil.copyfile(HERE / name, folder / name)
    with tempfile.TemporaryFile() as log:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=600,
        )
        if done.returncode != 0:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace")[-2000:]
            raise CodegenError(f"`npm ci` in {folder} failed ({done.returncode}):\n{tail}")
    return modules


def tool(name: str) -> Path:
    """The path of an installed tool's launcher (`node_modules/.bin/NAME`)."""
    path = ensure_installed() / ".bin" / name
    if not path.exists():
        raise CodegenError(f"{name} is not installed in {path.parent}; check codegen/package.json")
    return path
