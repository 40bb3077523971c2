"""The HTTP task gateway: check a call against its contract, publish it with Celery, and
read results back from the result backend.

Messages are built and sent by Celery itself (`Celery.send_task`), so they are exactly
what a Python producer sends: protocol 2, JSON, arguments normalised to keyword
arguments. Publishing and reading results use two Celery apps on purpose: a producer
app with a result backend would subscribe to every sent task's result channel (Redis
does, for `AsyncResult.get`), which a gateway never reads that way.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from http import HTTPStatus
from typing import Any, Final, Generic, TypeVar

from celery import Celery, states
from celery.utils.saferepr import saferepr
from fastapi.security import HTTPAuthorizationCredentials
from kombu.exceptions import (  # type: ignore[attr-defined]  # the stubs predate kombu 5.7
    BatchPublishError,
    ContentDisallowed,
    DecodeError,
    OperationalError,
)
from kombu.utils.url import maybe_sanitize_url
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from taskschema import CallValidationError, ContractViolation, TaskContract, Violation
from taskschema._typed import PRODUCER_OPTIONS
from taskschema.kombu import _type_markers

from ._auth import authenticate, check_scope
from ._errors import ApiError
from ._gateway_models import (
    ContractFailure,
    ExceptionFailure,
    SendOptions,
    SendRequest,
    TaskResult,
)
from ._settings import RegistrySettings
from ._store import Store, TokenInfo, hash_token

logger = logging.getLogger("registry_service.gateway")

K = TypeVar("K")
V = TypeVar("V")
COMPILED_CONTRACTS: Final = 512  # contracts kept compiled, by fingerprint
PUBLISHER_THREADS: Final = 4  # so a slow broker round trip does not hold up every send
MAX_BATCH: Final = 256  # messages published together at most

# One retry: a pooled connection the broker dropped is re-established on the second try,
# while an unreachable broker costs at most two connect timeouts before the 503.
PUBLISH_RETRY_POLICY: Final = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}


class CallRefused(ApiError):
    """The arguments do not fit the task's contract; nothing was published."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    error = "contract_violation"


class OptionsInvalid(ApiError):
    """The send options contradict each other or the contract's options."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    error = "request_invalid"


class BrokerNotConfigured(ApiError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    error = "broker_not_configured"


class BrokerUnavailable(ApiError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    error = "broker_unavailable"


class ResultBackendNotConfigured(ApiError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    error = "result_backend_not_configured"


class ResultBackendUnavailable(ApiError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    error = "result_backend_unavailable"


class ResultUnreadable(ApiError):
    """The backend holds something for the task that is not a plain JSON result."""

    status_code = HTTPStatus.BAD_GATEWAY
    error = "result_unreadable"


# -- checking a call -------------------------------------------------------------------


def check_call(contract: TaskContract, call: SendRequest) -> dict[str, Any]:
    """The call bound onto the contract's params as one keyword-argument object.

    Validated as the worker's decoder validates it: defaults filled for the check but
    not sent (the worker fills them from its own contract), and no kombu `__type__`
    markers. Raises `CallRefused` listing every violation.
    """
    try:
        params = contract.bind(call.args, call.kwargs)
    except CallValidationError as exc:
        raise CallRefused(exc.message, exc.violations) from None
    markers = list(_type_markers(params, ()))
    if markers:
        raise CallRefused(
            "arguments carry kombu '__type__' markers, which workers refuse: send plain JSON "
            "(dates as ISO 8601 strings, UUIDs and decimals as strings)",
            markers,
        )
    problems = contract.params_violations(contract.with_defaults(params))
    if problems:
        raise CallRefused(f"arguments of {contract.task} break its contract", problems)
    return params


def send_options(contract: TaskContract, options: SendOptions) -> dict[str, Any]:
    """Celery options for one send: the contract's producer options (queue, priority,
    time limits, expiry), overridden by the request's."""
    merged: dict[str, Any] = {
        key: value
        for key, value in contract.options.model_dump(exclude_none=True).items()
        if key in PRODUCER_OPTIONS
    }
    merged.update(options.model_dump(exclude_none=True))
    soft, hard = merged.get("soft_time_limit"), merged.get("time_limit")
    if soft is not None and hard is not None and soft >= hard:
        raise OptionsInvalid(
            "the send options are invalid",
            [
                Violation(
                    path="/body/options/soft_time_limit",
                    message=f"soft_time_limit ({soft}) must be lower than time_limit ({hard}), "
                    "counting the contract's options",
                )
            ],
        )
    return merged


class LoadingCache(Generic[K, V]):
    """Values loaded in a worker thread and kept for `seconds` (with 0, loaded every time).

    Concurrent misses on one key share one load, so an expired entry under load costs
    one database query, not one per waiting request. Failed loads are not kept. Used
    from the event loop only, so it needs no lock.
    """

    def __init__(self, seconds: float, size: int = 4096) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: dict[K, tuple[V, float]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], V]) -> V:
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() < entry[1]:
            return entry[0]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(run_in_threadpool(load))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded(key, done))
        # Shielded: a waiter whose client went away must not cancel the others' load.
        return await asyncio.shield(loading)

    def _loaded(self, key: K, done: asyncio.Future[V]) -> None:
        del self._loading[key]
        if self._seconds <= 0 or done.cancelled() or done.exception() is not None:
            return
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[key] = (done.result(), time.monotonic() + self._seconds)


@dataclass(frozen=True)
class ResolvedContract:
    contract: TaskContract
    version: int


class Contracts:
    """The contract a send is validated against: the task's latest live version, or the
    one asked for.

    Compiled once per fingerprint (stored documents never change), and which version a
    name resolves to is remembered for `cache_seconds`, so sends do not wait on the
    database; a newly published version is used within that time.
    """

    def __init__(self, store: Store, cache_seconds: float) -> None:
        self._store = store
        self._resolved: LoadingCache[tuple[str, int | None], ResolvedContract] = LoadingCache(
            cache_seconds
        )
        self._compiled: dict[str, TaskContract] = {}
        self._lock = threading.Lock()  # _load runs in worker threads

    async def resolve(self, name: str, version: int | None) -> ResolvedContract:
        """Raises the store's 404s for an unknown task or version."""
        return await self._resolved.get((name, version), partial(self._load, name, version))

    def _load(self, name: str, version: int | None) -> ResolvedContract:
        detail = self._store.get_version(name, version, include_deleted=False)
        with self._lock:
            contract = self._compiled.get(detail.fingerprint)
        if contract is None:
            contract = TaskContract(detail.contract)  # validated and compiled once
            with self._lock:
                if len(self._compiled) >= COMPILED_CONTRACTS:
                    del self._compiled[next(iter(self._compiled))]
                self._compiled[detail.fingerprint] = contract
        return ResolvedContract(contract, detail.version)


class Tokens:
    """Bearer tokens of senders, checked against the database at most once per
    `cache_seconds` each: a revoked token is refused within that time."""

    def __init__(self, store: Store, cache_seconds: float) -> None:
        self._store = store
        self._verified: LoadingCache[str, TokenInfo] = LoadingCache(cache_seconds)

    async def authorize(
        self, credentials: HTTPAuthorizationCredentials | None, scope: str
    ) -> TokenInfo:
        """The token if it is live and holds `scope` (or admin); 401 or 403 otherwise.
        Only tokens that passed are remembered."""
        if credentials is None:
            return authenticate(self._store, None)  # raises: no token
        token = await self._verified.get(
            hash_token(credentials.credentials), partial(authenticate, self._store, credentials)
        )
        return check_scope(token, scope)


# -- publishing ------------------------------------------------------------------------


class Publisher:
    """Sends task messages to one broker through Celery's producer pool."""

    def __init__(self, broker_url: str, timeout: float) -> None:
        self.location = maybe_sanitize_url(broker_url)
        self.app = Celery("taskschema-gateway", broker=broker_url, set_as_current=False)
        transport = self.app.connection_for_write().transport_cls
        self._confirm_timeout: float | None = None
        transport_options: dict[str, Any] = {}
        if transport in ("amqp", "pyamqp", "amqps"):
            # A 202 promises the broker has the message: wait for its publisher confirm.
            transport_options["confirm_publish"] = True
            self._confirm_timeout = timeout
        elif transport in ("redis", "rediss", "sentinel"):
            transport_options.update(socket_connect_timeout=timeout, socket_timeout=timeout)
        self.app.conf.update(
            broker_connection_timeout=timeout,
            broker_transport_options=transport_options,
            task_publish_retry_policy=PUBLISH_RETRY_POLICY,
            task_serializer="json",
            accept_content=["json"],
        )
        connection = self.app.connection_for_write()
        # Celery re-raises connection errors as kombu's OperationalError; a publisher
        # confirm that times out or is refused comes through as the transport's own error.
        self._unavailable: tuple[type[BaseException], ...] = (
            OperationalError,
            OSError,
            *connection.connection_errors,
            *connection.channel_errors,
        )
        self._default_queue: str = self.app.conf.task_default_queue
        self._sent_event: bool = self.app.conf.task_send_sent_event
        self._repr_levels: int = self.app.conf.task_repr_maxlevels
        self._pending: queue.SimpleQueue[list[_Send] | None] = queue.SimpleQueue()
        # Sends made during the current turn of each event loop, handed over together.
        self._collecting: dict[asyncio.AbstractEventLoop, list[_Send]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def publish(self, task: str, params: dict[str, Any], options: dict[str, Any]) -> str:
        """Publish `task` with `params` as its keyword arguments; returns the task id once
        the broker has the message (with RabbitMQ, once it confirmed it).

        The sends made during one turn of the event loop are handed to a publisher
        thread together, which sends them, with any others waiting by then, through one
        producer in one kombu publish batch (one Redis pipeline): concurrent sends share
        the broker round trips and the thread hand-over. Raises `BrokerUnavailable` when
        the broker cannot be reached in time.
        """
        self._start()
        options = dict(options)
        task_id = options.pop("task_id", None) or str(uuid.uuid4())
        if self._confirm_timeout is not None:
            options["confirm_timeout"] = self._confirm_timeout
        # The queue as Celery's router resolves it (created on first use, like Celery's
        # own producers do), so `_send` can declare it once for a whole batch.
        options["queue"] = self.app.amqp.queues[options.get("queue") or self._default_queue]
        loop = asyncio.get_running_loop()
        sent: asyncio.Future[None] = loop.create_future()
        collecting = self._collecting.get(loop)
        if collecting is None:
            collecting = self._collecting[loop] = []
            loop.call_soon(self._hand_over, loop)
        collecting.append(_Send(task, task_id, params, options, loop, sent))
        await sent
        return task_id

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        # One wake-up of a publisher thread per loop turn, not one per send.
        self._pending.put(self._collecting.pop(loop))

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._threads:
                return
            for index in range(PUBLISHER_THREADS):
                thread = threading.Thread(
                    target=self._run, name=f"taskschema-publisher-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while (batch := self._pending.get()) is not None:
            while len(batch) < MAX_BATCH:
                try:
                    waiting = self._pending.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    self._pending.put(None)  # keep the stop signal for this thread's next turn
                    break
                batch = batch + waiting
            for start in range(0, len(batch), MAX_BATCH):
                self._send(batch[start : start + MAX_BATCH])

    def _send(self, batch: list[_Send]) -> None:
        outcomes: list[tuple[_Send, BaseException | None]] = []
        messages: list[tuple[_Send, Any, dict[str, Any]]] = []
        for send in batch:  # built first: a send Celery cannot build fails alone
            try:
                messages.append((send, *self._message(send)))
            except (ValueError, OverflowError) as exc:  # e.g. a countdown past year 9999
                refusal = Violation(path="/body/options", message=f"Celery cannot send it: {exc}")
                outcomes.append((send, OptionsInvalid("the send options are invalid", [refusal])))
            except Exception as exc:  # a bug: the request hears of it, the others go on
                logger.exception("building a message for %s failed", send.task)
                outcomes.append((send, exc))
        error = self._publish(messages) if messages else None
        outcomes.extend((send, error) for send, _, _ in messages)
        # One wake-up per event loop, not one per message: each call_soon_threadsafe
        # writes to the loop's wake-up pipe and costs the loop an extra turn.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Send, BaseException | None]]] = {}
        for send, outcome in outcomes:
            by_loop.setdefault(send.loop, []).append((send, outcome))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle, settled)

    def _publish(self, messages: list[tuple[_Send, Any, dict[str, Any]]]) -> BaseException | None:
        """Publish built messages in one kombu batch; what went wrong, if anything."""
        amqp = self.app.amqp
        try:
            with self.app.producer_or_acquire() as producer:
                # Each queue is declared once per batch (and by kombu once per connection)
                # rather than by Celery for every message, which binds a copy of the queue
                # each time: a fifth of what a send costs. Declared before anything is
                # written, so a failure here means nothing was published.
                for destination in {options["queue"] for _, _, options in messages}:
                    producer.maybe_declare(destination, retry=True, **PUBLISH_RETRY_POLICY)
                with producer.batch():
                    for send, message, options in messages:
                        amqp.send_task_message(producer, send.task, message, declare=[], **options)
        except BatchPublishError as exc:
            logger.warning("a publish batch to %s failed: %r", self.location, exc.__cause__)
            return BrokerUnavailable(
                f"the broker at {self.location} failed while the message was being written "
                f"({exc.__cause__!r}); it may or may not have been published"
            )
        except self._unavailable as exc:
            logger.warning("could not publish to %s: %r", self.location, exc)
            return BrokerUnavailable(
                f"the broker at {self.location} is unavailable ({type(exc).__name__}: {exc}); "
                "nothing was published, try again later"
            )
        except BaseException as exc:  # a bug: every waiting request must hear of it
            logger.exception("publishing to %s failed", self.location)
            return exc
        return None

    def _message(self, send: _Send) -> tuple[Any, dict[str, Any]]:
        """The task message and the publish options for one send: what `Celery.send_task`
        does for the options a send can carry, through the same two calls
        (`create_task_message` here, `send_task_message` in `_publish`), without what the
        gateway never needs: task registry and router lookups, parent tasks, an
        AsyncResult. That wrapper and its `saferepr` of the arguments were 45% of a send's
        cost."""
        amqp = self.app.amqp
        options = dict(send.options)
        countdown, eta = options.pop("countdown", None), options.pop("eta", None)
        time_limit = options.pop("time_limit", None)
        soft_time_limit = options.pop("soft_time_limit", None)
        expires = options.pop("expires", None)
        if expires is not None:
            # As send_task does: the message also expires in the broker (AMQP TTL).
            seconds = (
                (expires - self.app.now()).total_seconds()
                if isinstance(expires, datetime)
                else expires
            )
            options["expiration"] = max(seconds, 0)
        message = amqp.create_task_message(
            send.task_id,
            send.task,
            (),
            send.params,
            countdown=countdown,
            eta=eta,
            expires=expires,
            reply_to=self.app.thread_oid,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            create_sent_event=self._sent_event,
            ignore_result=None,  # as send_task passes it when the caller does not
            kwargsrepr=kwargs_repr(send.params, amqp.kwargsrepr_maxsize, self._repr_levels),
        )
        return message, options

    def close(self) -> None:
        for _ in self._threads:
            self._pending.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self.app.close()


@dataclass(frozen=True)
class _Send:
    """One message waiting for a publisher thread, and how to tell its request."""

    task: str
    task_id: str
    params: dict[str, Any]
    options: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    sent: asyncio.Future[None]


def _settle(settled: list[tuple[_Send, BaseException | None]]) -> None:
    for send, error in settled:
        if send.sent.done():  # the request was cancelled (its client went away)
            continue
        if error is None:
            send.sent.set_result(None)
        else:
            send.sent.set_exception(error)


def kwargs_repr(kwargs: Mapping[str, Any], maxsize: int, maxlevels: int) -> str:
    """`celery.utils.saferepr.saferepr(kwargs, maxsize, maxlevels)`, the `kwargsrepr`
    header Celery builds, rendered directly when the arguments are plain JSON and their
    repr fits in `maxsize` (a gateway call nearly always is); Celery's token stream costs
    about as much as the rest of building the message. Anything else is Celery's."""
    parts: list[str] = []
    try:
        plain = _json_repr(kwargs, parts, 0, maxlevels)
    except ValueError:  # an int too long for str()
        plain = False
    if plain:
        text = "".join(parts)
        # Shorter than the limit: saferepr cuts nothing (it cuts a token that reaches it).
        if len(text) < maxsize:
            return text
    return str(saferepr(kwargs, maxsize, maxlevels=maxlevels))


def _json_repr(value: Any, out: list[str], level: int, maxlevels: int) -> bool:
    """Append saferepr's rendering of `value` to `out`; False for anything but JSON."""
    if isinstance(value, str):
        out.append("'" + value.replace("'", "\\'") + "'")  # no other escaping, as saferepr
    elif value is None:
        out.append("None")
    elif isinstance(value, bool | int | float):
        out.append(str(value))  # saferepr renders numbers (and bools) with str()
    elif isinstance(value, dict | list):
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if maxlevels and level >= maxlevels:
            out.append(opening + "..." + closing)  # empty or not, as saferepr does
            return True
        out.append(opening)
        if isinstance(value, dict):
            for index, (key, item) in enumerate(value.items()):
                if not isinstance(key, str):
                    return False
                if index:
                    out.append(", ")
                out.append("'" + key.replace("'", "\\'") + "': ")
                if not _json_repr(item, out, level + 1, maxlevels):
                    return False
        else:
            for index, item in enumerate(value):
                if index:
                    out.append(", ")
                if not _json_repr(item, out, level + 1, maxlevels):
                    return False
        out.append(closing)
    else:
        return False
    return True


# -- reading results -------------------------------------------------------------------


class ResultReader:
    """Reads task states and results from one Celery result backend."""

    def __init__(self, backend_url: str, timeout: float) -> None:
        self.location = maybe_sanitize_url(backend_url)
        self.app = Celery("taskschema-gateway-results", backend=backend_url, set_as_current=False)
        self.app.conf.update(
            result_accept_content=["json"],
            accept_content=["json"],
            redis_socket_connect_timeout=timeout,
            redis_socket_timeout=timeout,
        )

    async def fetch(self, task_id: str) -> TaskResult:
        """`read` in a worker thread, so the event loop never waits on the backend."""
        return await run_in_threadpool(self.read, task_id)

    def read(self, task_id: str) -> TaskResult:
        """The task's state, with its result on SUCCESS and its error on failure."""
        try:
            meta = self.app.backend.get_task_meta(task_id)
        except (ContentDisallowed, DecodeError) as exc:
            raise ResultUnreadable(
                f"the result of {task_id} in {self.location} is not plain JSON: {exc}"
            ) from None
        except Exception as exc:
            # Whatever the backend's client raises, the client of the gateway can only
            # retry later; the log keeps the details.
            logger.warning("could not read %s from %s", task_id, self.location, exc_info=True)
            raise ResultBackendUnavailable(
                f"the result backend at {self.location} is unavailable "
                f"({type(exc).__name__}: {exc}); try again later"
            ) from None
        return _task_result(task_id, meta)

    def close(self) -> None:
        self.app.close()


def _task_result(task_id: str, meta: Mapping[str, Any]) -> TaskResult:
    state = str(meta.get("status", states.PENDING))
    fields: dict[str, Any] = {"task_id": task_id, "state": state}
    value = meta.get("result")
    if state == states.SUCCESS:
        fields["result"] = value
    elif isinstance(value, BaseException):
        fields["error"] = _failure(value)
    done = meta.get("date_done")
    if isinstance(done, datetime | str) and done:
        fields["date_done"] = done
    return TaskResult(**fields)


def _failure(exc: BaseException) -> ContractFailure | ExceptionFailure:
    if isinstance(exc, ContractViolation):
        try:
            return ContractFailure.model_validate(exc.error)
        except ValidationError:
            pass  # not the shape taskschema stores; report it as any other exception
    return ExceptionFailure(exc_type=type(exc).__name__, message=str(exc))


# -- the gateway -----------------------------------------------------------------------


class Gateway:
    """What the gateway routes use: the publisher and the result reader (each None when
    not configured), the contracts to validate with, and the senders' tokens."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher | None,
        results: ResultReader | None,
        cache_seconds: float,
    ) -> None:
        self.publisher = publisher
        self.results = results
        self.contracts = Contracts(store, cache_seconds)
        self.tokens = Tokens(store, cache_seconds)

    @classmethod
    def from_settings(cls, settings: RegistrySettings, store: Store) -> Gateway:
        timeout = settings.gateway_timeout
        return cls(
            store,
            Publisher(settings.broker_url, timeout) if settings.broker_url else None,
            ResultReader(settings.result_backend, timeout) if settings.result_backend else None,
            settings.gateway_cache_seconds,
        )

    def require_publisher(self) -> Publisher:
        """The broker's publisher; 503 when the registry has no broker configured."""
        if self.publisher is None:
            raise BrokerNotConfigured(
                "the task gateway is off: this registry has no broker configured "
                "(start it with --broker-url or TASKSCHEMA_BROKER_URL)"
            )
        return self.publisher

    def require_results(self) -> ResultReader:
        """The result backend's reader; 503 when the registry has none configured."""
        if self.results is None:
            raise ResultBackendNotConfigured(
                "results cannot be read: this registry has no result backend configured "
                "(start it with --result-backend or TASKSCHEMA_RESULT_BACKEND)"
            )
        return self.results

    def close(self) -> None:
        for part in (self.publisher, self.results):
            if part is not None:
                part.close()
