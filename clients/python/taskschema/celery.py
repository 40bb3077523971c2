"""Celery integration: a validating consumer, dead-lettering, and contract-typed tasks.

One call in the app module turns it on::

    app = Celery("shop", broker=..., backend=...)
    taskschema.celery.install(app, registry_url="http://registry:8000")

    @app.task(base=ContractTask)
    def process_order(order: Order, priority: int = 0) -> Receipt: ...

Every message is checked in the worker's consumer, before Celery builds a request and
before any acknowledgement (`ValidatingConsumer`, set as `worker_consumer`). A refused
message never runs: a copy of the raw message goes to a dead-letter queue with the
reason, a FAILURE result lists every violation in plain JSON, and the original is
acknowledged. In the pool, `ContractTask` hands model-typed parameters over as Pydantic
instances and checks the return value against the contract's `returns`; a message it
refuses there is dead-lettered by its request (`ContractRequest`) in the main process.

Modes: `enforce` refuses; `warn` lets calls that only break the contract run, logged,
and still refuses messages that are not sound task messages; `off` checks no contract
but keeps those envelope checks, so no malformed message can crash the worker.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import typing
import weakref
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Final, Literal

from billiard.einfo import ExceptionInfo
from celery import Celery, Task, signals
from celery.backends.base import DisabledBackend
from celery.utils.objects import Bunch
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from kombu import Queue
from kombu.message import Message
from prometheus_client import Counter, start_http_server
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from ._contract import TaskContract
from ._exceptions import CallValidationError, ContractViolation, Violation
from ._sources import ChainedSources, ContractSource, RegistryContracts, StaticContracts
from ._validation import json_pointer
from .kombu import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DEPTH,
    JSON,
    PICKLE,
    MessageDecoder,
    Rejection,
    RejectionReason,
    TaskCall,
    Verdict,
)

logger = logging.getLogger("taskschema.celery")

Mode = Literal["enforce", "warn", "off"]
DEFAULT_DEAD_LETTER_QUEUE: Final = "taskschema.dead_letter"
CONTRACT_RETRY_DELAY: Final = 5.0  # seconds a message waits when its contract is unavailable

# Refusals that only say a call does not fit its contract: warn mode logs them and lets
# the task run. Every other refusal is of a message that is not a sound task message.
CONTRACT_REFUSALS: Final[frozenset[RejectionReason]] = frozenset(
    {"contract-violation", "signature", "no-contract"}
)
# What ContractTask refuses in the pool, after the consumer let the message through.
POOL_REFUSALS: Final[frozenset[RejectionReason]] = frozenset({"return-violation", "signature"})
# The task label of messages for tasks the worker neither registers nor has a contract for:
# their names come from the producer, and each name would be a series of its own.
UNKNOWN_TASK_LABEL: Final = "<unknown>"

MESSAGES = Counter(
    "taskschema_messages",
    "Task messages seen by the validating consumer, by task and outcome: accepted; "
    "rejected (dead-lettered, or waiting for its contract); warned (warn mode: would be "
    "rejected, runs); failed (accepted, then refused in the pool: also counted accepted).",
    ["task", "outcome", "reason"],
)

_GATES: weakref.WeakKeyDictionary[Celery, Gate] = weakref.WeakKeyDictionary()


@dataclass
class Gate:
    """What `install` set up for one app: the decoder and what to do with refusals."""

    decoder: MessageDecoder
    mode: Mode
    dead_letter_queue: str

    def contract_for(self, task: str) -> TaskContract | None:
        return self.decoder.contracts.contract_for(task)

    def consumer_decoder(self, registered: Container[str]) -> MessageDecoder:
        """The decoder of a worker whose registered tasks are `registered`.

        Contracts are looked up for registered tasks only: any other name is refused
        anyway, and a producer inventing names must not cause a registry call each. In
        mode off no contract is looked up at all; the envelope checks stay.
        """
        if self.mode == "off":
            return replace(self.decoder, contracts=StaticContracts(()), unknown_tasks="allow")
        return replace(self.decoder, contracts=_RegisteredOnly(self, registered))


@dataclass(frozen=True)
class _RegisteredOnly:
    """The gate's contracts (as they are now: generated code pins more at import), for
    the registered tasks only."""

    gate: Gate
    registered: Container[str]

    def contract_for(self, task: str) -> TaskContract | None:
        return self.gate.contract_for(task) if task in self.registered else None


def install(
    app: Celery,
    *,
    registry_url: str | None = None,
    contracts: Iterable[TaskContract] = (),
    mode: Mode | None = None,
    unknown_tasks: Literal["allow", "reject"] = "allow",
    dead_letter_queue: str = DEFAULT_DEAD_LETTER_QUEUE,
    token: str | None = None,
    pinned: dict[str, int] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    metrics_port: int | None = None,
) -> Gate:
    """Validate every task message `app`'s workers receive against its contract.

    Contracts given here (or pinned by generated code) win; other tasks use the
    registry's latest (or `pinned`) version. Settings fall back to the app's config
    (`taskschema_registry_url`, `taskschema_mode`) and then to the environment
    (`TASKSCHEMA_REGISTRY_URL`, `TASKSCHEMA_TOKEN`, `TASKSCHEMA_MODE`). Bodies over
    `max_body_bytes` or nested deeper than `max_depth` are refused. With `metrics_port`,
    the worker serves its counters for Prometheus on that port.
    """
    conf = app.conf
    registry_url = (
        registry_url
        or conf.get("taskschema_registry_url")
        or os.environ.get("TASKSCHEMA_REGISTRY_URL")
    )
    chosen = mode or conf.get("taskschema_mode") or os.environ.get("TASKSCHEMA_MODE", "enforce")
    if chosen not in ("enforce", "warn", "off"):
        raise ValueError(f"mode must be enforce, warn or off, not {chosen!r}")
    sources: list[ContractSource] = [StaticContracts(contracts)]
    if registry_url:
        sources.append(
            RegistryContracts(
                registry_url, token=token or os.environ.get("TASKSCHEMA_TOKEN"), pinned=pinned
            )
        )
    accept = {_content_type(name) for name in conf.accept_content or ("json",)}
    decoder = MessageDecoder(
        ChainedSources(*sources),
        accept=accept - {PICKLE},
        unknown_tasks=unknown_tasks,
        max_body_bytes=max_body_bytes,
        max_depth=max_depth,
    )
    gate = Gate(decoder, typing.cast(Mode, chosen), dead_letter_queue)
    _GATES[app] = gate
    # In every mode: in mode off it still keeps malformed messages from crashing the worker.
    conf.worker_consumer = f"{__name__}:ValidatingConsumer"
    signals.worker_init.connect(
        lambda sender, **_: prepare_tasks(app) if sender.app is app else None,
        weak=False,
    )
    if metrics_port is not None:
        # The consumer runs in the worker's main process, so its counters live there.
        signals.worker_init.connect(
            lambda **_: start_http_server(metrics_port), weak=False, sender=None
        )
    return gate


# Contract options that are properties of the task in the worker (the producer applies
# queue, priority, time limits and expiry on each message).
WORKER_OPTIONS: Final = (
    "acks_late", "reject_on_worker_lost", "max_retries", "default_retry_delay",
    "rate_limit", "soft_time_limit", "time_limit",
)  # fmt: skip


def prepare_tasks(app: Celery) -> None:
    """At worker start, before the pool forks: set each registered task's worker-side
    options from its contract (the contract wins over the decorator, so every worker
    honours the same options) and compile its validators, so no message pays for that
    and the pool children inherit them."""
    gate = gate_for(app)
    if gate is None:
        return
    for name, task in app.tasks.items():
        try:
            contract = gate.contract_for(name)
        except Exception:
            logger.warning("no contract options for %s: the contract is unavailable", name)
            continue
        if contract is None:
            continue
        for key, value in contract.options.model_dump(exclude_none=True).items():
            if key in WORKER_OPTIONS:
                setattr(task, key, value)
        contract.compile()


def gate_for(app: Celery) -> Gate | None:
    """The gate `install` set up for `app`, if any."""
    return _GATES.get(app)


def _content_type(name: str) -> str:
    return {"json": JSON, "msgpack": "application/x-msgpack", "yaml": "application/x-yaml"}.get(
        name, name
    )


class ValidatingConsumer(Consumer):
    """Celery's consumer, with every task message checked before it is handled."""

    strategies: dict[str, Any]
    connection_errors: tuple[type[BaseException], ...]

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Message], Any]:
        handle: Callable[[Message], Any] = super().create_task_handler(*args, **kwargs)
        gate = gate_for(self.app)
        if gate is None:
            return handle
        decoder = gate.consumer_decoder(self.strategies)

        def on_task_received(message: Message) -> Any:
            verdict = self.judge(decoder, message)
            label = self.task_label(verdict)
            if isinstance(verdict, TaskCall):
                MESSAGES.labels(label, "accepted", "").inc()
                return handle(message)
            if gate.mode == "warn" and self.only_breaks_the_contract(verdict):
                MESSAGES.labels(label, "warned", verdict.reason).inc()
                logger.warning(
                    "taskschema (warn mode) lets %s[%s] run, though it would refuse it: %s %s",
                    verdict.task,
                    verdict.id,
                    verdict.message,
                    "; ".join(str(v) for v in verdict.violations),
                )
                return handle(message)
            MESSAGES.labels(label, "rejected", verdict.reason).inc()
            return self.refuse(message, verdict, gate)

        return on_task_received

    def judge(self, decoder: MessageDecoder, message: Message) -> Verdict:
        """The decoder's verdict, where a task this worker does not register never runs."""
        verdict = decoder.decode(message)
        unregistered = verdict.task is not None and verdict.task not in self.strategies
        if unregistered and (isinstance(verdict, TaskCall) or verdict.reason == "no-contract"):
            return Rejection(
                "no-contract",
                f"task {verdict.task!r} is not registered in this worker",
                task=verdict.task,
                id=verdict.id,
            )
        return verdict

    def only_breaks_the_contract(self, rejection: Rejection) -> bool:
        """Whether the message is a sound call of a registered task that its contract
        refuses (what warn mode lets run), rather than a message Celery cannot handle."""
        return rejection.reason in CONTRACT_REFUSALS and rejection.task in self.strategies

    def task_label(self, verdict: Verdict) -> str:
        """The task's name as a metrics label, when it is one the worker knows.

        Contracts are looked up for registered tasks only, so every task with a
        contract is a registered one.
        """
        task = verdict.task
        return task if task is not None and task in self.strategies else UNKNOWN_TASK_LABEL

    def refuse(self, message: Message, rejection: Rejection, gate: Gate) -> None:
        """Dead-letter a copy, record a FAILURE result, then acknowledge the original.

        A message whose contract cannot be fetched yet goes back to the queue instead.
        """
        if rejection.reason == "contract-unavailable":
            # Hold it (unacknowledged) for a while before handing it back, so a registry
            # outage does not spin the message between broker and consumer.
            logger.warning(
                "%s[%s] waits %.0f s for its contract: %s",
                rejection.task,
                rejection.id,
                CONTRACT_RETRY_DELAY,
                rejection.message,
            )
            self.timer.call_after(
                CONTRACT_RETRY_DELAY,
                message.reject_log_error,
                (logger, self.connection_errors),
                {"requeue": True},
            )
            return
        _log_refusal(rejection)
        try:
            publish_dead_letter(self.app, message, rejection, gate.dead_letter_queue)
        except Exception:
            # Not copied, so not acknowledged: the broker keeps the message.
            logger.exception("could not dead-letter a refused message; leaving it on the queue")
            message.reject_log_error(logger, self.connection_errors, requeue=True)
            return
        if rejection.id and not isinstance(self.app.backend, DisabledBackend):
            self._store_failure(message, rejection.id, rejection)
        message.ack_log_error(logger, self.connection_errors)
        signals.task_rejected.send(
            sender=self, message=message, exc=ContractViolation(rejection.to_dict())
        )

    def _store_failure(self, message: Message, task_id: str, rejection: Rejection) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        properties = message.properties or {}
        request = Bunch(
            id=task_id,
            name=rejection.task,
            root_id=headers.get("root_id"),
            correlation_id=properties.get("correlation_id"),
            reply_to=properties.get("reply_to"),
            chord=None,
            errbacks=None,
            group=None,
            parent_id=headers.get("parent_id"),
            ignore_result=False,
        )
        try:
            self.app.backend.mark_as_failure(
                task_id, ContractViolation(rejection.to_dict()), request=request
            )
        except Exception:
            logger.exception("could not store the FAILURE result of %s", task_id)


def publish_dead_letter(app: Celery, message: Message, rejection: Rejection, queue: str) -> None:
    """Publish a copy of the raw `message` (body, headers, content type as received) to
    the dead-letter `queue`, saying why in `x-taskschema-reason` and `x-taskschema-error`.

    Raises whatever the broker connection raises once kombu's retries are spent.
    """
    headers = dict(message.headers) if isinstance(message.headers, dict) else {}
    headers.update(
        {
            "x-taskschema-reason": rejection.reason,
            "x-taskschema-error": json.dumps(rejection.to_dict(), ensure_ascii=False),
            "x-taskschema-original-routing-key": str(
                (message.delivery_info or {}).get("routing_key", "")
            ),
        }
    )
    body = message.body if isinstance(message.body, bytes | str) else bytes(message.body or b"")
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange="",
            routing_key=queue,
            declare=[Queue(queue, durable=True)],
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            headers=headers,
            delivery_mode=2,
            retry=True,
        )


def _log_refusal(rejection: Rejection) -> None:
    logger.error(
        "refused task message %s[%s]: %s %s",
        rejection.task or "?",
        rejection.id or "?",
        rejection.message,
        "; ".join(str(v) for v in rejection.violations),
    )


class ContractRequest(Request):
    """The request of a `ContractTask` in the worker's main process, where the raw
    message is at hand: a message the task refused in the pool is dead-lettered as
    received, as the consumer's refusals are, then fails as Celery fails it."""

    def on_failure(
        self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        rejection = _refused_in_pool(exc_info.exception, self.task.name, self.id)
        if rejection is not None:
            self._dead_letter(rejection)
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _dead_letter(self, rejection: Rejection) -> None:
        app, gate = self.task.app, gate_for(self.task.app)
        if gate is None:
            return
        MESSAGES.labels(rejection.task, "failed", rejection.reason).inc()
        _log_refusal(rejection)
        try:
            publish_dead_letter(app, self.message, rejection, gate.dead_letter_queue)
        except Exception:
            # The pool has run it: requeueing would only refuse it again. Loudly, then.
            logger.exception(
                "could not dead-letter %s[%s], refused in the pool", self.name, self.id
            )


def _refused_in_pool(exc: BaseException | None, task: str, task_id: str) -> Rejection | None:
    """The refusal `exc` is when ContractTask raised it for `task` itself (not, say, a
    violation from another typed task the function called). The pool hands a task's
    exception back as is (only a crash of the pool's own code comes wrapped)."""
    if not isinstance(exc, ContractViolation) or exc.error.get("task") != task:
        return None
    reason = exc.error.get("error")
    if reason not in POOL_REFUSALS:
        return None
    message = str(exc.error.get("message", ""))
    return Rejection(typing.cast(RejectionReason, reason), message, exc.violations, task, task_id)


class ContractTask(Task[Any, Any]):
    """A task whose parameters arrive as the types its function declares (Pydantic models
    included) and whose return value is dumped to JSON and checked against `returns`."""

    abstract = True
    Request = f"{__name__}:ContractRequest"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        gate = gate_for(self.app)
        contract = gate.contract_for(self.name) if gate is not None else None
        if gate is None or contract is None:
            return self.run(*args, **kwargs)
        # Refusals are ContractViolations as in the consumer, so an eager or direct call
        # fails the way a worker's does and its result rebuilds from plain JSON.
        try:
            params = contract.with_defaults(contract.bind(args, kwargs))
        except CallValidationError as exc:
            raise self._violation("signature", exc.message, exc.violations) from None
        checked = gate.mode != "off"
        if checked and (self.request.called_directly or self.request.is_eager):
            self._enforce(  # the consumer has not seen this call
                gate.mode,
                "contract-violation",
                f"arguments of {self.name} break its contract",
                contract.params_violations(params),
            )
        result = self.run(**self.inflate(params))
        value = self.dump_return(result)
        if checked:
            self._enforce(
                gate.mode,
                "return-violation",
                f"the return value of {self.name} breaks its contract",
                contract.returns_violations(value),
            )
        return value

    def _enforce(
        self, mode: Mode, reason: RejectionReason, message: str, problems: list[Violation]
    ) -> None:
        """Raise a ContractViolation for `problems`; in warn mode, log them instead."""
        if not problems:
            return
        violation = self._violation(reason, message, problems)
        if mode != "warn":
            raise violation
        logger.warning(
            "taskschema (warn mode) lets %s[%s] go on: %s", self.name, self.request.id, violation
        )

    def _violation(
        self, reason: RejectionReason, message: str, problems: list[Violation]
    ) -> ContractViolation:
        rejection = Rejection(reason, message, problems, task=self.name, id=self.request.id)
        return ContractViolation(rejection.to_dict())

    def inflate(self, params: dict[str, Any]) -> dict[str, Any]:
        """The arguments as the function's annotated types: models built from plain JSON.

        Raises `ContractViolation` ("signature") when the function's types are narrower
        than the contract, naming every value they refuse.
        """
        adapters = self._parameter_adapters
        inflated: dict[str, Any] = {}
        problems: list[Violation] = []
        for name, value in params.items():
            if name not in adapters:
                inflated[name] = value
                continue
            try:
                inflated[name] = adapters[name].validate_python(value)
            except ValidationError as exc:
                problems.extend(
                    Violation(path=json_pointer([name, *error["loc"]]), message=error["msg"])
                    for error in exc.errors()
                )
        if problems:
            # The contract accepted the call but the function's types are narrower.
            raise self._violation(
                "signature",
                f"arguments of {self.name} fit its contract but not its Python types",
                problems,
            )
        return inflated

    def dump_return(self, result: Any) -> Any:
        """A return value as plain JSON, through the function's return annotation."""
        adapter = self._return_adapter
        if adapter is not None:
            return adapter.dump_python(result, mode="json")
        return to_jsonable_python(result)

    @cached_property
    def _hints(self) -> dict[str, Any]:
        return typing.get_type_hints(self.run)

    @cached_property
    def _parameter_adapters(self) -> dict[str, TypeAdapter[Any]]:
        hints = self._hints
        return {
            name: TypeAdapter(hints[name])
            for name in inspect.signature(self.run).parameters
            if name in hints
        }

    @cached_property
    def _return_adapter(self) -> TypeAdapter[Any] | None:
        hint = self._hints.get("return")
        return None if hint is None else TypeAdapter(hint)
