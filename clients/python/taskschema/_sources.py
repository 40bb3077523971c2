"""Where a worker gets each task's contract: fixed ones, or the registry's behind caches.

A worker asks a `ContractSource` for the contract of every message it decodes, so an
answer must be cheap: `StaticContracts` holds contracts given to it (pinned by generated
code or passed to `install`), and `RegistryContracts` serves the registry's contracts
from memory, refreshing them in the background and keeping a copy on disk so a worker
starts and validates while the registry is down. `ChainedSources` puts them in order.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import queue
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._client import RegistryClient, Version
from ._contract import TaskContract, meta_schema
from ._exceptions import RegistryError, TaskSchemaError
from ._models import VersionDetail

__all__ = ["ChainedSources", "ContractSource", "RegistryContracts", "StaticContracts"]

logger = logging.getLogger("taskschema.sources")

# Answers the registry gives for a task that has no contract (as opposed to a wrong URL).
_NO_CONTRACT_ERRORS: Final = frozenset({"task_not_found", "version_not_found"})
_STOP: Final = object()


@runtime_checkable
class ContractSource(Protocol):
    """Answers which contract a task's messages must follow."""

    def contract_for(self, task: str) -> TaskContract | None:
        """The contract for `task`, or None when this source has none for it.

        Called for every message: answers come from memory without network I/O once
        the source has seen the task.
        """
        ...


class StaticContracts:
    """Fixed contracts, by task name: those pinned by generated code or given to `install`."""

    def __init__(self, contracts: Iterable[TaskContract]) -> None:
        """Raises ValueError when two contracts are for the same task."""
        self._contracts: dict[str, TaskContract] = {}
        for contract in contracts:
            if contract.task in self._contracts:
                raise ValueError(f"two contracts given for task {contract.task!r}")
            self._contracts[contract.task] = contract

    @property
    def tasks(self) -> frozenset[str]:
        """The names of the tasks this source has a contract for."""
        return frozenset(self._contracts)

    def contract_for(self, task: str) -> TaskContract | None:
        """The contract given for `task`, or None."""
        return self._contracts.get(task)

    def __repr__(self) -> str:
        return f"StaticContracts({sorted(self._contracts)!r})"


class ChainedSources:
    """Several sources asked in order; the first that has a contract for a task answers."""

    def __init__(self, *sources: ContractSource) -> None:
        self.sources: tuple[ContractSource, ...] = sources

    def contract_for(self, task: str) -> TaskContract | None:
        """The first contract any source has for `task`, or None when none has one.

        An error from a source (e.g. an unreachable registry with nothing cached) propagates.
        """
        for source in self.sources:
            contract = source.contract_for(task)
            if contract is not None:
                return contract
        return None

    def __repr__(self) -> str:
        return f"ChainedSources{self.sources!r}"


# -- the registry, cached ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """What is known about one task: a contract, the registry's "none", or a failure."""

    contract: TaskContract | None
    expires_at: float  # time.monotonic(); math.inf for a pinned version once found
    failure: RegistryError | None = None  # the registry could not answer; nothing cached

    def usable(self, now: float) -> bool:
        return self.failure is None or now < self.expires_at


class _Pointer(BaseModel):
    """The on-disk record of which contract document a task resolved to, and when."""

    model_config = ConfigDict(extra="ignore")

    task: str
    version: int = Field(ge=1)
    id: int = Field(ge=1)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    fetched_at: float


def default_cache_dir() -> Path:
    """`$TASKSCHEMA_CACHE_DIR`, else `$XDG_CACHE_HOME/taskschema`, else `~/.cache/taskschema`."""
    explicit = os.environ.get("TASKSCHEMA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "taskschema"
    try:
        return Path.home() / ".cache" / "taskschema"
    except RuntimeError:  # no home directory to be found
        return Path(tempfile.gettempdir()) / "taskschema-cache"


class RegistryContracts:
    """The registry's contracts: each task's latest version, or the version pinned for it.

    Answers come from memory. A task's `latest` contract older than `ttl` seconds is
    still answered at once while a background thread asks the registry for a newer one;
    a pinned version never changes and is kept for good. A task the registry does not
    know is answered None, and that answer is kept for `ttl` seconds too. Only the
    first lookup of a task with nothing in memory or on disk waits for the registry (at
    most `timeout` seconds).

    Every contract fetched is also written under `cache_dir` (default:
    `default_cache_dir()`), in a folder of its own per registry URL (`cache_path`), so
    a worker restarted while the registry is down answers from disk. Files there that
    cannot be read, do not parse, or whose fingerprint does not match are ignored.

    Thread-safe. `close()` (or leaving a `with` block) stops contacting the registry;
    contracts already in memory are still answered.

    Fork-safe: a child forked from the process (a prefork pool child) keeps the contracts
    in memory and starts its own refresher and HTTP connections when it needs them. A
    `transport` given is shared with such children as it is.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ttl: float = 60.0,
        cache_dir: Path | None = None,
        pinned: Mapping[str, int] | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`pinned` maps task names to the version number to use instead of the latest.
        `transport` is handed to httpx (e.g. for proxies or instrumentation).

        Raises ValueError for a `ttl` that is not positive or a pinned version below 1.
        """
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        pins = dict(pinned or {})
        for task, version in pins.items():
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise ValueError(f"pinned version of {task!r} must be an integer >= 1")
        self.url = url.rstrip("/")
        self.ttl = ttl
        self.pinned: Mapping[str, int] = pins
        self.cache_path: Path = (cache_dir if cache_dir is not None else default_cache_dir()) / (
            hashlib.sha256(self.url.encode()).hexdigest()[:16]
        )
        self._token, self._timeout, self._transport = token, timeout, transport
        self._client = self._new_client()
        self._entries: dict[str, _Entry] = {}
        self._schemas: dict[int, TaskContract] = {}  # by global id; ids are immutable
        self._on_disk: set[int] = set()  # schema files known to be intact on disk
        self._closed = False
        self._reset_threads()
        _ALIVE.add(self)

    # -- public ---------------------------------------------------------------------

    def contract_for(self, task: str) -> TaskContract | None:
        """The contract for `task`, or None when the registry has none for it.

        Raises RegistryError only when nothing is cached for `task` and the registry
        cannot answer (that failure is remembered for `ttl` seconds).
        """
        if not _is_task_name(task):
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(task)
            if entry is not None and entry.usable(now):
                return self._answer(task, entry, now)
        entry = self._load_from_disk(task)
        if entry is not None:
            with self._lock:
                current = self._entries.get(task)
                if current is None or not current.usable(now):
                    self._entries[task] = current = entry
                return self._answer(task, current, now)
        return self._fetch_first(task)

    def preload(self, tasks: Iterable[str]) -> None:
        """Fetch the contracts of `tasks` now, so their first messages need not wait.

        Best effort: a task the registry cannot give is taken from disk when there,
        and once the registry proves unreachable it is not contacted again here.
        """
        reachable = True
        for task in tasks:
            if not _is_task_name(task):
                continue
            with self._task_lock(task):
                now = time.monotonic()
                with self._lock:
                    entry = self._entries.get(task)
                    if entry is not None and entry.failure is None and now < entry.expires_at:
                        continue
                if reachable and not self._closed:
                    try:
                        self._store(task, self._fetch(task))
                        continue
                    except RegistryError as exc:
                        reachable = exc.status_code is not None
                        logger.warning("could not preload the contract of %s: %s", task, exc)
                disk = self._load_from_disk(task)
                if disk is not None:
                    with self._lock:
                        current = self._entries.get(task)
                        if current is None or current.failure is not None:
                            self._entries[task] = disk

    def close(self) -> None:
        """Stop contacting the registry; cached contracts are still answered."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            refresher = self._refresher
        self._queue.put(_STOP)
        if refresher is not None:
            refresher.join(timeout=1.0)
        self._client.close()

    def __enter__(self) -> RegistryContracts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryContracts({self.url!r}, ttl={self.ttl!r})"

    # -- threads and forks -----------------------------------------------------------

    def _new_client(self) -> RegistryClient:
        return RegistryClient(
            self.url, token=self._token, timeout=self._timeout, transport=self._transport
        )

    def _reset_threads(self) -> None:
        """Locks, refresh queue and refresher as in a process no thread has touched yet."""
        self._lock = threading.Lock()
        self._task_locks: dict[str, threading.Lock] = {}
        self._queued: set[str] = set()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._refresher: threading.Thread | None = None

    def _start_over_after_fork(self) -> None:
        """In a forked child, which has only the thread that forked.

        The refresher is gone, and with it any lock it held (held for good in the
        child) and the task it had queued, which would never be queued again: `latest`
        would stop being refreshed. The client's connections are sockets shared with the
        parent, so the child gets a client of its own (the parent's is left untouched).
        """
        self._reset_threads()
        if not self._closed:
            self._client = self._new_client()

    # -- memory ---------------------------------------------------------------------

    def _answer(self, task: str, entry: _Entry, now: float) -> TaskContract | None:
        """`entry`'s answer, scheduling a refresh when it is stale. Holds self._lock."""
        if entry.failure is not None:
            failure = entry.failure
            raise RegistryError(
                f"{failure.message} (no contract cached for {task}; retried after the ttl)",
                status_code=failure.status_code,
                error=failure.error,
            )
        if now >= entry.expires_at and not self._closed and task not in self._queued:
            self._queued.add(task)
            self._queue.put(task)
            if self._refresher is None:
                self._refresher = threading.Thread(
                    target=self._refresh_loop, name="taskschema-contracts-refresh", daemon=True
                )
                self._refresher.start()
        return entry.contract

    def _task_lock(self, task: str) -> threading.Lock:
        with self._lock:
            return self._task_locks.setdefault(task, threading.Lock())

    def _store(self, task: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[task] = entry

    def _fetch_first(self, task: str) -> TaskContract | None:
        """Wait for the registry; concurrent first lookups of one task share one request."""
        with self._task_lock(task):
            now = time.monotonic()
            with self._lock:
                entry = self._entries.get(task)
                if entry is not None and entry.usable(now):
                    return self._answer(task, entry, now)
                if self._closed:
                    raise RegistryError(f"no contract cached for {task} and the source is closed")
            try:
                entry = self._fetch(task)
            except RegistryError as exc:
                entry = _Entry(None, time.monotonic() + self.ttl, failure=exc)
            self._store(task, entry)
            with self._lock:
                return self._answer(task, entry, now)

    def _refresh_loop(self) -> None:
        while True:
            task = self._queue.get()
            if task is _STOP or not isinstance(task, str):
                return
            try:
                self._refresh(task)
            except Exception:  # the refresher must outlive any surprise
                logger.exception("refreshing the contract of %s failed", task)
            finally:
                with self._lock:
                    self._queued.discard(task)

    def _refresh(self, task: str) -> None:
        with self._task_lock(task):
            if self._closed:
                return
            try:
                fresh = self._fetch(task)
            except RegistryError as exc:
                logger.warning(
                    "could not refresh the contract of %s, keeping the cached one for %ss: %s",
                    task,
                    self.ttl,
                    exc,
                )
                with self._lock:
                    stale = self._entries.get(task)
                    if stale is not None and stale.failure is None:
                        self._entries[task] = _Entry(stale.contract, time.monotonic() + self.ttl)
                return
            self._store(task, fresh)

    # -- the registry ---------------------------------------------------------------

    def _fetch(self, task: str) -> _Entry:
        """Ask the registry; a task it has no contract for is a (negative) entry, not an error.

        Raises RegistryError when the registry cannot be reached or gives no usable answer.
        """
        version: Version = self.pinned.get(task, "latest")
        try:
            detail = self._client.get_version(task, version)
        except RegistryError as exc:
            if exc.status_code == 404 and exc.error in _NO_CONTRACT_ERRORS:
                logger.info("the registry has no contract for %s (version %s)", task, version)
                self._forget_on_disk(task)
                return _Entry(None, time.monotonic() + self.ttl)
            raise
        except ValidationError as exc:
            raise RegistryError(
                f"the registry's answer for {task} is not a version: {exc}",
                status_code=200,
                error="invalid_response",
            ) from exc
        contract = self._contract_of(detail)
        self._save_to_disk(task, detail, contract)
        expires_at = math.inf if task in self.pinned else time.monotonic() + self.ttl
        logger.debug("%s resolved to version %s (schema %s)", task, detail.version, detail.id)
        return _Entry(contract, expires_at)

    def _contract_of(self, detail: VersionDetail) -> TaskContract:
        with self._lock:
            known = self._schemas.get(detail.id)
        if known is not None and known.fingerprint == detail.fingerprint:
            return known
        try:
            contract = TaskContract(detail.contract)
        except TaskSchemaError as exc:
            raise RegistryError(
                f"the registry's contract for {detail.task} version {detail.version} "
                f"is not a valid contract: {exc}",
                status_code=200,
                error="contract_invalid",
            ) from exc
        if contract.fingerprint != detail.fingerprint or contract.task != detail.task:
            raise RegistryError(
                f"the registry's contract for {detail.task} version {detail.version} does not "
                f"match its fingerprint {detail.fingerprint}",
                status_code=200,
                error="fingerprint_mismatch",
            )
        with self._lock:
            return self._schemas.setdefault(detail.id, contract)

    # -- disk -----------------------------------------------------------------------

    def _pointer_path(self, task: str) -> Path:
        version = self.pinned.get(task)
        # "@" cannot occur in a task name, so pinned and latest pointers never collide.
        name = f"{task}.json" if version is None else f"{task}@{version}.json"
        return self.cache_path / name

    def _schema_path(self, schema_id: int) -> Path:
        return self.cache_path / "schemas" / f"{schema_id}.json"

    def _load_from_disk(self, task: str) -> _Entry | None:
        """The cached entry for `task` from disk, or None when absent or not trustworthy."""
        path = self._pointer_path(task)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring unreadable contract cache file %s: %s", path, exc)
            return None
        try:
            pointer = _Pointer.model_validate_json(raw)
        except ValidationError as exc:
            logger.warning("ignoring corrupt contract cache file %s: %s", path, exc)
            return None
        pinned = self.pinned.get(task)
        if pointer.task != task or (pinned is not None and pointer.version != pinned):
            logger.warning("ignoring contract cache file %s: it is for another task", path)
            return None
        contract = self._load_schema(pointer)
        if contract is None:
            return None
        if pinned is not None:
            expires_at = math.inf
        else:
            age = time.time() - pointer.fetched_at
            fresh_for = self.ttl - age if age >= 0 else 0.0
            expires_at = time.monotonic() + max(0.0, fresh_for)
        logger.debug("%s version %s loaded from %s", task, pointer.version, path)
        return _Entry(contract, expires_at)

    def _load_schema(self, pointer: _Pointer) -> TaskContract | None:
        with self._lock:
            known = self._schemas.get(pointer.id)
        if known is not None and known.fingerprint == pointer.fingerprint:
            return known
        path = self._schema_path(pointer.id)
        try:
            contract = TaskContract.from_json(path.read_bytes())
        except FileNotFoundError:
            logger.warning("ignoring contract cache: %s is missing", path)
            return None
        except (OSError, TaskSchemaError) as exc:
            logger.warning("ignoring corrupt contract cache file %s: %s", path, exc)
            return None
        if contract.fingerprint != pointer.fingerprint or contract.task != pointer.task:
            logger.warning(
                "refusing contract cache file %s: its fingerprint %s is not the expected %s",
                path,
                contract.fingerprint,
                pointer.fingerprint,
            )
            return None
        with self._lock:
            self._on_disk.add(pointer.id)
            return self._schemas.setdefault(pointer.id, contract)

    def _save_to_disk(self, task: str, detail: VersionDetail, contract: TaskContract) -> None:
        """Best effort: a cache that cannot be written is logged, never an error."""
        pointer = _Pointer(
            task=task,
            version=detail.version,
            id=detail.id,
            fingerprint=contract.fingerprint,
            fetched_at=time.time(),
        )
        try:
            with self._lock:
                schema_saved = detail.id in self._on_disk
            if not schema_saved:
                _write_atomic(self._schema_path(detail.id), contract.canonical_json())
                with self._lock:
                    self._on_disk.add(detail.id)
            _write_atomic(self._pointer_path(task), pointer.model_dump_json().encode())
        except OSError as exc:
            logger.warning("could not write the contract cache under %s: %s", self.cache_path, exc)

    def _forget_on_disk(self, task: str) -> None:
        path = self._pointer_path(task)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not remove contract cache file %s: %s", path, exc)


# Every instance alive in this process, so a forked child can start each over.
_ALIVE: Final[weakref.WeakSet[RegistryContracts]] = weakref.WeakSet()


def _start_over_in_forked_child() -> None:
    for source in list(_ALIVE):
        source._start_over_after_fork()


# One hook for the module rather than one per instance: hooks cannot be unregistered.
if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_start_over_in_forked_child)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old file or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


_TASK_SCHEMA: Final = meta_schema()["properties"]["task"]
_TASK_NAME: Final = re.compile(_TASK_SCHEMA["pattern"])
_TASK_NAME_MAX: Final[int] = _TASK_SCHEMA["maxLength"]


def _is_task_name(task: str) -> bool:
    """Whether `task` can name a registered task (anything else is never looked up)."""
    return len(task) <= _TASK_NAME_MAX and _TASK_NAME.fullmatch(task) is not None
