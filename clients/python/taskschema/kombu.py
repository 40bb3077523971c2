"""Validating decoder for Celery task messages, at the kombu level.

`MessageDecoder.decode` turns any `kombu.Message` into either a `TaskCall` (envelope
sound, arguments valid under the task's contract) or a `Rejection` naming every reason,
and never raises. It works on the raw message, before Celery builds a request and before
anything is acknowledged, so any kombu consumer can use it; `taskschema.celery` plugs it
into the worker.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from kombu import serialization
from kombu.message import Message

from ._contract import TaskContract
from ._exceptions import CallValidationError, InvalidJSONError, RegistryError, Violation
from ._json import loads_strict, strict_decoder
from ._sources import ContractSource
from ._validation import json_pointer

PICKLE: Final = "application/x-python-serialize"
JSON: Final = "application/json"
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 64

RejectionReason = Literal[
    "malformed-envelope",
    "content-type",
    "too-large",
    "too-deep",
    "undecodable",
    "type-marker",
    "no-contract",
    "contract-unavailable",
    "signature",
    "contract-violation",
    "return-violation",  # raised by taskschema.celery.ContractTask, in the pool
]


@dataclass(frozen=True)
class TaskCall:
    """A message whose envelope is sound and whose arguments fit the contract (if any)."""

    task: str
    id: str
    args: list[Any]
    kwargs: dict[str, Any]
    protocol: Literal[1, 2]
    contract: TaskContract | None
    params: dict[str, Any] | None = None  # args and kwargs bound onto the contract's params


@dataclass(frozen=True)
class Rejection:
    """A message that must not run: why, where, and what is known of it."""

    reason: RejectionReason
    message: str
    violations: list[Violation] = field(default_factory=list)
    task: str | None = None
    id: str | None = None
    contract: TaskContract | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for result backends and dead-letter headers, readable in any language."""
        return {
            "error": self.reason,
            "message": self.message,
            "task": self.task,
            "violations": [v.model_dump() for v in self.violations],
        }


Verdict = TaskCall | Rejection


@dataclass
class MessageDecoder:
    """Checks task messages against their contracts.

    `contracts` answers which contract a task has; `unknown_tasks` says what to do with
    a task it has none for (`allow` runs it unchecked, `reject` refuses it).
    """

    contracts: ContractSource
    accept: Collection[str] = (JSON,)
    unknown_tasks: Literal["allow", "reject"] = "allow"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH

    def decode(self, message: Message) -> Verdict:
        """The verdict on one message. Never raises."""
        try:
            return self._decode(message)
        except Exception as exc:  # a decoder bug must not crash a worker either
            return Rejection("undecodable", f"the decoder failed: {type(exc).__name__}: {exc}")

    def _decode(self, message: Message) -> Verdict:
        headers = message.headers
        if type(headers) is not dict and not isinstance(headers, Mapping):
            return Rejection("malformed-envelope", "message headers are not a mapping")
        task, task_id = headers.get("task"), headers.get("id")
        refusal = self._check_transport(message)
        if refusal is not None:
            return _known(refusal, task, task_id)
        try:
            body, may_carry_markers = self._load(message)
        except InvalidJSONError as exc:
            return Rejection("undecodable", str(exc), task=_str(task), id=_str(task_id))
        protocol: Literal[1, 2] = 2
        if task is None:  # protocol 1 keeps everything in the body
            if not isinstance(body, Mapping) or "task" not in body:
                return Rejection(
                    "malformed-envelope",
                    "no 'task' header and the body is not a protocol 1 task message",
                )
            protocol, task, task_id = 1, body.get("task"), body.get("id")
            args, kwargs = body.get("args", []), body.get("kwargs", {})
            problems: list[Violation] = []
            parts: list[tuple[Any, tuple[str | int, ...]]] = [(body, ())]
        else:
            args, kwargs, problems = _unpack_v2(body)
            parts = list(zip(body, _V2_PATHS, strict=True)) if not problems else []
        for name, value in (("task", task), ("id", task_id)):
            if not isinstance(value, str) or not value:
                where = "header" if protocol == 2 else "body field"
                problems.append(
                    Violation(
                        path=f"/headers/{name}" if protocol == 2 else f"/{name}",
                        message=f"the {name!r} {where} must be a non-empty string, got "
                        f"{_kind(value)}",
                    )
                )
        if not isinstance(args, list):
            problems.append(
                Violation(path="/args", message=f"args must be an array, got {_kind(args)}")
            )
        if not isinstance(kwargs, Mapping):
            problems.append(
                Violation(path="/kwargs", message=f"kwargs must be an object, got {_kind(kwargs)}")
            )
        if problems:
            return Rejection(
                "malformed-envelope",
                "the message is not a well-formed Celery task message",
                problems,
                task=_str(task),
                id=_str(task_id),
            )
        assert isinstance(task, str)
        assert isinstance(task_id, str)
        # kombu's JSON decoder, in the consumer and again in the pool, turns every marker
        # anywhere in the body (embed included) into an object, so all of it is checked.
        markers = (
            [found for part, path in parts for found in _type_markers(part, path)]
            if may_carry_markers
            else []
        )
        if markers:
            return Rejection(
                "type-marker",
                "arguments carry kombu '__type__' markers; taskschema messages are plain "
                "JSON (send dates as ISO 8601 strings, UUIDs and decimals as strings)",
                markers,
                task=task,
                id=task_id,
            )
        return self._check_contract(
            TaskCall(task, task_id, list(args), dict(kwargs), protocol, None)
        )

    def _check_transport(self, message: Message) -> Rejection | None:
        content_type = message.content_type
        if not content_type:
            return Rejection("content-type", "the message has no content type")
        if content_type == PICKLE or content_type not in self.accept:
            return Rejection(
                "content-type",
                f"content type {content_type!r} is not accepted "
                f"(accepted: {', '.join(sorted(self.accept))}; pickle never)",
            )
        size = len(message.body or b"")
        if size > self.max_body_bytes:
            return Rejection(
                "too-large", f"the body has {size} bytes, over the limit of {self.max_body_bytes}"
            )
        return None

    def _load(self, message: Message) -> tuple[Any, bool]:
        """The decoded body, and whether it may hold kombu `__type__` markers."""
        body: Any = message.body
        if isinstance(body, memoryview | bytearray):
            body = bytes(body)
        may_carry_markers = True  # other serializers get the walk: rare, and no hook to ask
        if message.content_type == JSON:
            try:
                data, may_carry_markers = loads_strict(body, decoder=_MARKER_WATCH), False
            except _MarkerKeySeen:
                data = loads_strict(body)
        else:
            try:
                data = serialization.loads(
                    body,
                    str(message.content_type),
                    message.content_encoding or "binary",
                    accept=self.accept,
                )
            except Exception as exc:
                raise InvalidJSONError(f"cannot decode {message.content_type}: {exc}") from None
        # Counting brackets in C first spares most bodies the walk in Python.
        raw = body.encode() if isinstance(body, str) else body
        if isinstance(raw, bytes) and raw.count(b"[") + raw.count(b"{") <= self.max_depth:
            return data, may_carry_markers
        if _depth(data, self.max_depth) > self.max_depth:
            raise InvalidJSONError(f"the body nests deeper than {self.max_depth} levels")
        return data, may_carry_markers

    def _check_contract(self, call: TaskCall) -> Verdict:
        try:
            contract = self.contracts.contract_for(call.task)
        except RegistryError as exc:
            # Not the message's fault: it must wait for the registry, not be dead-lettered.
            return Rejection(
                "contract-unavailable",
                f"the contract of {call.task!r} cannot be fetched: {exc.message}",
                task=call.task,
                id=call.id,
            )
        if contract is None:
            if self.unknown_tasks == "allow":
                return call
            return Rejection(
                "no-contract",
                f"task {call.task!r} has no contract and unknown tasks are refused",
                task=call.task,
                id=call.id,
            )
        try:
            # Validated with defaults filled, as the task will run: a parameter made
            # required with a default (a compatible change) still accepts calls without it.
            params = contract.with_defaults(contract.bind(call.args, call.kwargs))
        except CallValidationError as exc:
            return Rejection("signature", exc.message, exc.violations, call.task, call.id, contract)
        problems = contract.params_violations(params)
        if problems:
            return Rejection(
                "contract-violation",
                f"arguments of {call.task} break its contract",
                problems,
                call.task,
                call.id,
                contract,
            )
        return TaskCall(call.task, call.id, call.args, call.kwargs, call.protocol, contract, params)


def _unpack_v2(body: Any) -> tuple[Any, Any, list[Violation]]:
    if not isinstance(body, list) or len(body) != 3:
        shape = f"an array of {len(body)}" if isinstance(body, list) else _kind(body)
        return (
            [],
            {},
            [
                Violation(
                    path="/body", message=f"a protocol 2 body is [args, kwargs, embed], got {shape}"
                )
            ],
        )
    args, kwargs, embed = body
    problems = []
    if embed is not None and not isinstance(embed, Mapping):
        problems.append(
            Violation(path="/body/2", message=f"embed must be an object, got {_kind(embed)}")
        )
    return args, kwargs, problems


# Where each part of a protocol 2 body is reported: args and kwargs by name, as the
# envelope checks do, and embed by its place in the body.
_V2_PATHS: Final[tuple[tuple[str | int, ...], ...]] = (("args",), ("kwargs",), ("body", 2))


class _MarkerKeySeen(Exception):
    """Raised while parsing: an object has a `__type__` key, so the body needs the walk."""


def _object_watching_markers(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A strict JSON object (no key twice) that raises _MarkerKeySeen if it has `__type__`.

    Keys arrive here decoded, so a key spelled with escapes ("\\u005f_type__") is seen as
    kombu will see it, where a search of the raw bytes for b"__type__" misses it. The
    loop is _json's duplicate check written out again: one call less per object.
    """
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise InvalidJSONError(f"duplicate key {key!r} in a JSON object")
        value[key] = item
    if "__type__" in value:
        raise _MarkerKeySeen
    return value


# Looking for the key while the parser builds each object costs one dict lookup per
# object: less than searching the raw bytes, far less than walking the decoded body.
_MARKER_WATCH: Final[json.JSONDecoder] = strict_decoder(_object_watching_markers)


def _known(rejection: Rejection, task: Any, task_id: Any) -> Rejection:
    return Rejection(rejection.reason, rejection.message, task=_str(task), id=_str(task_id))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), f"a {type(value).__name__}")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded document, counting no further than limit + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if level > limit:
            return level
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


def _type_markers(value: Any, path: tuple[str | int, ...]) -> Iterator[Violation]:
    if isinstance(value, dict):
        if set(value) == {"__type__", "__value__"}:
            yield Violation(
                path=json_pointer(path),
                message=f"kombu type marker __type__={value['__type__']!r} is not plain JSON",
            )
            return
        for key, child in value.items():
            yield from _type_markers(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _type_markers(child, (*path, index))
