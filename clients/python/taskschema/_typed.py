"""The producer side for Python: contract-checked sends whose results come back typed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Generic, TypeVar

from celery import Celery
from celery.canvas import Signature
from celery.result import AsyncResult
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from ._contract import TaskContract

R = TypeVar("R")

# Contract options a producer puts on the message; the rest are the worker's to apply.
PRODUCER_OPTIONS: Final = (
    "queue", "routing_key", "priority", "soft_time_limit", "time_limit", "expires"
)  # fmt: skip


class TypedResult(Generic[R]):
    """An `AsyncResult` whose `get()` returns the task's declared return type."""

    def __init__(self, result: AsyncResult[Any], adapter: TypeAdapter[R]) -> None:
        self.async_result = result
        self._adapter = adapter

    @property
    def id(self) -> str:
        return str(self.async_result.id)

    @property
    def state(self) -> str:
        return str(self.async_result.state)

    def ready(self) -> bool:
        return bool(self.async_result.ready())

    def get(self, timeout: float | None = None, **options: Any) -> R:
        """Wait for the value and validate it into the return type.

        A refused call raises `ContractViolation` listing every violation.
        """
        return self._adapter.validate_python(self.async_result.get(timeout=timeout, **options))


class TypedTask(Generic[R]):
    """Sends one contracted task: arguments are dumped to plain JSON and checked against
    the contract before publishing, and the contract's options are applied."""

    def __init__(self, app: Celery, contract: TaskContract, returns: Any = Any) -> None:
        self.app = app
        self.contract = contract
        self._adapter: TypeAdapter[R] = TypeAdapter(returns)
        options = contract.options.model_dump(exclude_none=True)
        self.options: dict[str, Any] = {
            key: value for key, value in options.items() if key in PRODUCER_OPTIONS
        }

    @property
    def name(self) -> str:
        return self.contract.task

    def bind(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The call as one validated, plain-JSON params object (models dumped, dates as ISO
        strings). Raises `CallValidationError` naming every problem."""
        params = self.contract.bind(
            to_jsonable_python(list(args)), to_jsonable_python(kwargs or {})
        )
        self.contract.validate_params(params)
        return params

    def delay(self, *args: Any, **kwargs: Any) -> TypedResult[R]:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TypedResult[R]:
        """Publish after validating; `options` override the contract's."""
        result = self.app.send_task(
            self.name, kwargs=self.bind(args, kwargs), **{**self.options, **options}
        )
        return TypedResult(result, self._adapter)

    def s(self, *args: Any, **kwargs: Any) -> Signature[Any]:
        """A signature for canvas use, with the call already validated."""
        return self.app.signature(
            self.name, kwargs=self.bind(args, kwargs), options=dict(self.options)
        )
