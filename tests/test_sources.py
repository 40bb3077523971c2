"""Contract sources of a worker: fixed contracts, and the registry's behind memory and disk."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_service import RegistrySettings
from taskschema import (
    ChainedSources,
    ContractSource,
    RegistryContracts,
    RegistryError,
    StaticContracts,
    TaskContract,
)

from conftest import Registry, start_registry
from helpers import free_port, make_contract


class CountingTransport(httpx.BaseTransport):
    """Real HTTP, counted; requests can be held at a gate to make the registry slow."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.paths: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.paths)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.paths.append(request.url.path)
        self.gate.wait(timeout=10)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def publish(registry: Registry, document: dict[str, Any]) -> dict[str, Any]:
    response = registry.publisher.post(f"/tasks/{document['task']}/versions", json=document)
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll `condition` until it holds; the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail("condition not met in time")
        time.sleep(0.01)
    return time.monotonic() - start


def dead_url() -> str:
    """The URL of a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def transport() -> Iterator[CountingTransport]:
    counting = CountingTransport()
    yield counting
    counting.gate.set()


@pytest.fixture
def make_source(
    sqlite_registry: Registry, tmp_path: Path, transport: CountingTransport
) -> Iterator[Callable[..., RegistryContracts]]:
    """RegistryContracts on the shared registry, caching under tmp_path, closed afterwards."""
    sources: list[RegistryContracts] = []

    def make(**options: Any) -> RegistryContracts:
        options.setdefault("cache_dir", tmp_path / "cache")
        options.setdefault("transport", transport)
        source = RegistryContracts(options.pop("url", sqlite_registry.url), **options)
        sources.append(source)
        return source

    yield make
    transport.gate.set()
    for source in sources:
        source.close()


# -- fixed contracts and chains ------------------------------------------------------


def test_static_contracts_answer_by_task_name(task_name: str) -> None:
    first = TaskContract(make_contract(task_name))
    second = TaskContract(make_contract(task_name + "2"))
    source = StaticContracts([first, second])
    assert isinstance(source, ContractSource)
    assert source.contract_for(task_name) is first
    assert source.contract_for(task_name + "2") is second
    assert source.contract_for("other.task") is None
    assert source.tasks == {task_name, task_name + "2"}


def test_static_contracts_refuse_two_contracts_for_one_task(task_name: str) -> None:
    one = TaskContract(make_contract(task_name))
    other = TaskContract(make_contract(task_name, description="Another."))
    with pytest.raises(ValueError, match=task_name):
        StaticContracts([one, other])


def test_chained_sources_answer_with_the_first_that_has_a_contract(
    sqlite_registry: Registry, make_source: Callable[..., RegistryContracts], task_name: str
) -> None:
    shared, registry_only = task_name, task_name + "_registry"
    publish(sqlite_registry, make_contract(shared, description="From the registry."))
    publish(sqlite_registry, make_contract(registry_only))
    pinned = TaskContract(make_contract(shared, description="Pinned by generated code."))
    chain = ChainedSources(StaticContracts([pinned]), make_source())
    assert isinstance(chain, ContractSource)
    assert chain.contract_for(shared) is pinned
    registry_contract = chain.contract_for(registry_only)
    assert registry_contract is not None
    assert registry_contract.task == registry_only
    assert chain.contract_for(task_name + "_nowhere") is None
    reversed_chain = ChainedSources(make_source(), StaticContracts([pinned]))
    from_registry = reversed_chain.contract_for(shared)
    assert from_registry is not None
    assert from_registry.description == "From the registry."


# -- the registry ----------------------------------------------------------------------


def test_registry_contracts_answer_the_latest_version(
    sqlite_registry: Registry, make_source: Callable[..., RegistryContracts], task_name: str
) -> None:
    publish(sqlite_registry, make_contract(task_name))
    latest = make_contract(task_name, description="Version two.")
    publish(sqlite_registry, latest)
    contract = make_source().contract_for(task_name)
    assert contract == TaskContract(latest)


def test_a_pinned_version_is_answered_and_kept_for_good(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    transport: CountingTransport,
    task_name: str,
) -> None:
    first = make_contract(task_name)
    publish(sqlite_registry, first)
    publish(sqlite_registry, make_contract(task_name, description="Version two."))
    source = make_source(pinned={task_name: 1}, ttl=0.05)
    assert source.contract_for(task_name) == TaskContract(first)
    assert transport.paths == [f"/tasks/{task_name}/versions/1"]
    time.sleep(0.15)  # well past the ttl: a pinned version is never refreshed
    assert source.contract_for(task_name) == TaskContract(first)
    time.sleep(0.05)
    assert transport.count == 1


def test_latest_is_refreshed_in_the_background_after_the_ttl(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    transport: CountingTransport,
    task_name: str,
) -> None:
    ttl = 0.2
    old = make_contract(task_name)
    publish(sqlite_registry, old)
    source = make_source(ttl=ttl)
    assert source.contract_for(task_name) == TaskContract(old)
    fetched = time.monotonic()  # the cached answer expires no later than fetched + ttl
    new = make_contract(task_name, description="Version two.")
    publish(sqlite_registry, new)
    # Within the ttl the cached version is answered, without asking the registry.
    assert source.contract_for(task_name) == TaskContract(old)
    assert transport.count == 1
    # Past the ttl, hold the registry's answer: the stale contract is answered at once.
    transport.gate.clear()
    time.sleep(ttl - (time.monotonic() - fetched) + 0.02)
    for _ in range(3):
        started = time.monotonic()
        assert source.contract_for(task_name) == TaskContract(old)
        assert time.monotonic() - started < 0.05
    wait_until(lambda: transport.count == 2)
    assert source.contract_for(task_name) == TaskContract(old)
    transport.gate.set()
    wait_until(lambda: source.contract_for(task_name) == TaskContract(new))
    assert time.monotonic() - fetched >= ttl
    assert transport.count == 2  # one refresh, however many lookups


def refreshed_in_child(source: RegistryContracts, task: str, want: TaskContract) -> bool:
    """In a forked child: whether `task`'s contract is refreshed to `want` within 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if source.contract_for(task) == want:
            return True
        time.sleep(0.02)
    return False


def test_a_forked_child_refreshes_latest_on_its_own(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    transport: CountingTransport,
    task_name: str,
) -> None:
    """A prefork pool child forked while the parent's refresher is mid-request inherits
    neither that thread nor the locks it holds, yet still refreshes `latest`."""
    ttl = 0.2
    old = make_contract(task_name)
    publish(sqlite_registry, old)
    source = make_source(ttl=ttl)
    assert source.contract_for(task_name) == TaskContract(old)
    new = make_contract(task_name, description="Version two.")
    publish(sqlite_registry, new)
    transport.gate.clear()  # the parent's refresh request waits at the gate
    time.sleep(ttl + 0.05)
    assert source.contract_for(task_name) == TaskContract(old)
    wait_until(lambda: transport.count == 2)  # the refresher is inside its request
    pid = os.fork()
    if pid == 0:  # the child: nothing but os._exit may leave this block
        code = 3
        try:
            transport.gate.set()  # the child's copy: its own requests are answered
            code = 0 if refreshed_in_child(source, task_name, TaskContract(new)) else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung (a lock held at fork time?)")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(waited[1]) == 0, "the child never refreshed latest"
    # The parent's own refresh, held until now, completes as before.
    transport.gate.set()
    wait_until(lambda: source.contract_for(task_name) == TaskContract(new))


def test_a_task_the_registry_does_not_know_is_none_and_that_is_cached(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    transport: CountingTransport,
    task_name: str,
) -> None:
    source = make_source(ttl=0.2)
    assert source.contract_for(task_name) is None
    assert source.contract_for(task_name) is None
    assert transport.count == 1
    document = make_contract(task_name)
    publish(sqlite_registry, document)
    assert source.contract_for(task_name) is None  # the negative answer lasts the ttl
    wait_until(lambda: source.contract_for(task_name) == TaskContract(document))
    assert transport.count == 2


def test_names_that_cannot_be_tasks_never_reach_the_registry_or_the_disk(
    make_source: Callable[..., RegistryContracts], transport: CountingTransport
) -> None:
    source = make_source()
    for name in ("../../etc/passwd", "", "a b", "x" * 300, "celery.x@1"):
        assert source.contract_for(name) is None
    assert transport.count == 0


def test_steady_state_makes_no_requests(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    transport: CountingTransport,
    task_name: str,
) -> None:
    tasks = [f"{task_name}{n}" for n in range(3)]
    for task in tasks:
        publish(sqlite_registry, make_contract(task))
    source = make_source()
    threads = [
        threading.Thread(target=lambda: [source.contract_for(t) for t in tasks for _ in range(200)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert transport.count == len(tasks)  # one per task, shared by concurrent first lookups
    # A worker restarted within the ttl answers from disk without asking the registry.
    restarted = make_source()
    for task in tasks:
        contract = restarted.contract_for(task)
        assert contract is not None
        assert contract.task == task
    assert transport.count == len(tasks)


def test_preload_fetches_up_front_and_never_raises(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    transport: CountingTransport,
    task_name: str,
    tmp_path: Path,
) -> None:
    publish(sqlite_registry, make_contract(task_name))
    source = make_source()
    source.preload([task_name, task_name + "_unknown", "not a task"])
    assert transport.count == 2
    assert source.contract_for(task_name) is not None
    assert source.contract_for(task_name + "_unknown") is None
    assert transport.count == 2
    # With the registry unreachable, preload takes what the disk has and does not raise.
    offline = make_source(url=dead_url(), cache_dir=tmp_path / "offline", transport=None)
    offline.preload([task_name, task_name + "_other"])


# -- the disk cache ----------------------------------------------------------------------


def test_a_worker_starts_from_the_disk_cache_while_the_registry_is_down(
    tmp_path: Path, task_name: str
) -> None:
    database = f"sqlite:///{tmp_path / 'own-registry.db'}"
    server = start_registry(RegistrySettings(database_url=database), "sqlite")
    registry = next(server)
    try:
        document = make_contract(task_name)
        publish(registry, document)
        with RegistryContracts(registry.url, cache_dir=tmp_path / "cache", ttl=0.1) as source:
            assert source.contract_for(task_name) == TaskContract(document)
    finally:
        next(server, None)  # stops the server
    with pytest.raises(httpx.TransportError):
        httpx.get(registry.url, timeout=1)

    with RegistryContracts(registry.url, cache_dir=tmp_path / "cache", ttl=0.1) as restarted:
        assert restarted.contract_for(task_name) == TaskContract(document)
        # Stale on disk: the background refresh fails and the cached contract stays.
        time.sleep(0.2)
        assert restarted.contract_for(task_name) == TaskContract(document)
        # A task with nothing cached cannot be answered, and that failure is quick to repeat.
        with pytest.raises(RegistryError) as failure:
            restarted.contract_for(task_name + "_uncached")
        assert failure.value.status_code is None
        with pytest.raises(RegistryError):
            restarted.contract_for(task_name + "_uncached")


def test_the_disk_cache_layout(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    task_name: str,
    tmp_path: Path,
) -> None:
    registered = publish(sqlite_registry, make_contract(task_name))
    publish(sqlite_registry, make_contract(task_name, description="Version two."))
    latest, pinned = make_source(), make_source(pinned={task_name: 1})
    assert latest.contract_for(task_name) is not None
    assert pinned.contract_for(task_name) is not None
    assert latest.cache_path == pinned.cache_path
    assert latest.cache_path.parent == tmp_path / "cache"
    pointer = json.loads((latest.cache_path / f"{task_name}.json").read_text())
    assert pointer["version"] == 2
    assert set(pointer) >= {"id", "version", "fingerprint", "fetched_at"}
    pinned_pointer = json.loads((pinned.cache_path / f"{task_name}@1.json").read_text())
    assert pinned_pointer["id"] == registered["id"]
    schema = pinned.cache_path / "schemas" / f"{registered['id']}.json"
    assert TaskContract.from_json(schema.read_bytes()).fingerprint == registered["fingerprint"]
    assert not [path for path in latest.cache_path.rglob("*") if path.name.endswith(".tmp")]


def test_the_cache_folder_defaults_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TASKSCHEMA_CACHE_DIR", str(tmp_path / "env"))
    with RegistryContracts("http://registry.example/") as source:
        assert source.cache_path.parent == tmp_path / "env"
    with (
        RegistryContracts("http://registry.example") as same,
        RegistryContracts("http://other.example") as other,
    ):
        assert same.cache_path == source.cache_path
        assert other.cache_path != source.cache_path


@pytest.mark.parametrize("damaged", ["pointer", "schema"])
def test_a_corrupt_cache_file_is_ignored(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    transport: CountingTransport,
    task_name: str,
    damaged: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = make_contract(task_name)
    registered = publish(sqlite_registry, document)
    first = make_source()
    assert first.contract_for(task_name) is not None
    pointer = first.cache_path / f"{task_name}.json"
    schema = first.cache_path / "schemas" / f"{registered['id']}.json"
    (pointer if damaged == "pointer" else schema).write_bytes(b'{"task": "trunc')
    with caplog.at_level(logging.WARNING, logger="taskschema.sources"):
        second = make_source()
        assert second.contract_for(task_name) == TaskContract(document)
    assert transport.count == 2  # the damaged cache sent it back to the registry
    assert "corrupt contract cache file" in caplog.text
    # ... which repaired the cache.
    assert make_source().contract_for(task_name) == TaskContract(document)
    assert transport.count == 2


def test_a_disk_contract_whose_fingerprint_does_not_match_is_refused(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    task_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registered = publish(sqlite_registry, make_contract(task_name))
    live = make_source()
    assert live.contract_for(task_name) is not None
    tampered = TaskContract(make_contract(task_name, description="Tampered with."))
    (live.cache_path / "schemas" / f"{registered['id']}.json").write_bytes(
        tampered.canonical_json()
    )
    # The same cache, for a registry that is down: the tampered contract is not served.
    offline = make_source(url=dead_url(), transport=None)
    shutil.copytree(live.cache_path, offline.cache_path)
    with (
        caplog.at_level(logging.WARNING, logger="taskschema.sources"),
        pytest.raises(RegistryError),
    ):
        offline.contract_for(task_name)
    assert "fingerprint" in caplog.text
    # With the registry up, the genuine contract replaces it.
    genuine = make_source().contract_for(task_name)
    assert genuine is not None
    assert genuine.fingerprint == registered["fingerprint"]


def test_an_unwritable_cache_folder_is_not_an_error(
    sqlite_registry: Registry,
    make_source: Callable[..., RegistryContracts],
    task_name: str,
    tmp_path: Path,
) -> None:
    publish(sqlite_registry, make_contract(task_name))
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert make_source(cache_dir=blocked).contract_for(task_name) is not None


def test_after_close_cached_contracts_are_still_answered(
    sqlite_registry: Registry, make_source: Callable[..., RegistryContracts], task_name: str
) -> None:
    publish(sqlite_registry, make_contract(task_name))
    source = make_source(ttl=0.05)
    assert source.contract_for(task_name) is not None
    source.close()
    time.sleep(0.1)
    assert source.contract_for(task_name) is not None
    with pytest.raises(RegistryError, match="closed"):
        source.contract_for(task_name + "_never_seen")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"ttl": 0}, "ttl"), ({"pinned": {"a.b": 0}}, "a.b")],
)
def test_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegistryContracts("http://registry.example", **options)
