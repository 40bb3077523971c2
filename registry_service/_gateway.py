"""The HTTP task gateway: check a call against its contract, publish it with Celery, and
read results back from the result backend.

Messages are built and sent by Celery itself (`Celery.send_task`), so they are exactly
what a Python producer sends: protocol 2, JSON, arguments normalised to keyword
arguments. Publishing and reading results use two Celery apps on purpose: a producer
app with a result backend would subscribe to every sent task's result channel (Redis
does, for `AsyncResult.get`), which a gateway never reads that way.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final

from celery import Celery, states
from kombu.exceptions import ContentDisallowed, DecodeError, OperationalError
from kombu.utils.url import maybe_sanitize_url
from pydantic import ValidationError

from taskschema import CallValidationError, ContractViolation, TaskContract, Violation
from taskschema._typed import PRODUCER_OPTIONS
from taskschema.kombu import _type_markers

from ._errors import ApiError
from ._gateway_models import (
    ContractFailure,
    ExceptionFailure,
    SendOptions,
    SendRequest,
    TaskResult,
)
from ._settings import RegistrySettings

logger = logging.getLogger("registry_service.gateway")

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


class ContractCache:
    """Contracts by fingerprint, parsed and compiled once per process.

    Stored contract documents never change, so the meta-schema check and the validator
    compilation are paid once per contract, not once per send.
    """

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._contracts: OrderedDict[str, TaskContract] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, fingerprint: str, document: Mapping[str, Any]) -> TaskContract:
        with self._lock:
            contract = self._contracts.get(fingerprint)
            if contract is not None:
                self._contracts.move_to_end(fingerprint)
                return contract
        contract = TaskContract(document)  # outside the lock: compiling may take a while
        with self._lock:
            self._contracts[fingerprint] = contract
            while len(self._contracts) > self._size:
                self._contracts.popitem(last=False)
        return contract


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

    def send(self, task: str, params: dict[str, Any], options: dict[str, Any]) -> str:
        """Publish `task` with `params` as its keyword arguments; returns the task id.

        Raises `BrokerUnavailable` when the broker cannot be reached in time.
        """
        options = dict(options)
        task_id = options.pop("task_id", None) or str(uuid.uuid4())
        if self._confirm_timeout is not None:
            options["confirm_timeout"] = self._confirm_timeout
        try:
            self.app.send_task(task, kwargs=params, task_id=task_id, **options)
        except self._unavailable as exc:
            logger.warning("could not publish %s[%s] to %s: %r", task, task_id, self.location, exc)
            raise BrokerUnavailable(
                f"the broker at {self.location} is unavailable ({type(exc).__name__}: {exc}); "
                "nothing was published, try again later"
            ) from None
        return task_id

    def close(self) -> None:
        self.app.close()


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
    not configured) and the compiled contracts."""

    def __init__(self, publisher: Publisher | None, results: ResultReader | None) -> None:
        self.publisher = publisher
        self.results = results
        self.contracts = ContractCache()

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> Gateway:
        timeout = settings.gateway_timeout
        return cls(
            Publisher(settings.broker_url, timeout) if settings.broker_url else None,
            ResultReader(settings.result_backend, timeout) if settings.result_backend else None,
        )

    def close(self) -> None:
        for part in (self.publisher, self.results):
            if part is not None:
                part.close()
