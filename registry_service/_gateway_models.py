"""The task gateway's HTTP API as Pydantic models: what a send takes, what comes back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from taskschema import Violation

# Task ids travel in URLs (`/results/{task_id}`), so they are limited to URL-safe
# characters; Celery's own ids (UUID4 strings) fit.
TASK_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"

TaskId = Annotated[
    str,
    Field(
        pattern=TASK_ID_PATTERN,
        description="A task id: letters, digits and `._:-`, at most 200 characters.",
        examples=["9c3e8e2e-5a55-4a3b-9b1f-0c0e3b7d1f6a"],
    ),
]


def _expiry(value: Any) -> float | datetime:
    # One validator instead of a float | datetime union: a union would read a negative
    # number as a Unix timestamp, and report each branch's error separately.
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("expires must be a positive number of seconds")
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expires {value!r} is not an RFC 3339 time") from None
        if moment.utcoffset() is None:
            raise ValueError("expires needs a UTC offset (e.g. Z or +02:00)")
        return moment
    raise ValueError("expires is a number of seconds or an RFC 3339 time with a UTC offset")


Expiry = Annotated[
    float | datetime,
    PlainValidator(_expiry),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]


class SendOptions(BaseModel):
    """How to send: each option set here overrides the contract's `options` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str | None = Field(default=None, min_length=1, max_length=255)
    routing_key: str | None = Field(default=None, max_length=255)
    priority: int | None = Field(default=None, ge=0, le=255)
    countdown: float | None = Field(
        default=None, ge=0, description="Run no earlier than this many seconds from now."
    )
    eta: AwareDatetime | None = Field(
        default=None, description="Run no earlier than this time (RFC 3339, with a UTC offset)."
    )
    expires: Expiry | None = Field(
        default=None,
        description="Discard the task if it has not started this many seconds from now, "
        "or by this time.",
    )
    time_limit: float | None = Field(
        default=None, gt=0, description="Hard time limit in seconds (the worker kills the task)."
    )
    soft_time_limit: float | None = Field(
        default=None, gt=0, description="Soft time limit in seconds (the task gets an exception)."
    )
    task_id: TaskId | None = Field(
        default=None,
        description="Use this id instead of a new UUID, e.g. to retry a send idempotently.",
    )

    @model_validator(mode="after")
    def _one_start_time(self) -> SendOptions:
        if self.countdown is not None and self.eta is not None:
            raise ValueError("give countdown or eta, not both")
        return self


class SendRequest(BaseModel):
    """A task call: positional and keyword arguments, bound onto the contract's params in
    declaration order and validated as one object, plus options."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "args": [{"name": "Ada", "born": "1990-01-01T00:00:00Z"}],
                    "kwargs": {"times": 2},
                    "options": {"countdown": 5},
                }
            ]
        },
    )

    args: list[Any] = Field(default_factory=list, description="Positional arguments.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")
    options: SendOptions = Field(default_factory=SendOptions)


class TaskAccepted(BaseModel):
    """A published task: where its result will be."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    task: str
    version: int = Field(description="The contract version the call was validated against.")


class ContractFailure(BaseModel):
    """A task refused for breaking its contract: the worker's structured error, as stored."""

    model_config = ConfigDict(frozen=True)

    error: str = Field(description="Why, e.g. contract-violation or signature.")
    message: str
    task: str | None = None
    violations: list[Violation]


class ExceptionFailure(BaseModel):
    """A task that raised: the exception's type and message."""

    model_config = ConfigDict(frozen=True)

    exc_type: str
    message: str


class TaskResult(BaseModel):
    """A task's state in the result backend. `result` is there on SUCCESS, `error` when
    the task failed (or is being retried, or was revoked). An id the backend does not
    know is PENDING, as Celery reports it."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    state: str = Field(
        description="PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, or a "
        "custom state the task set.",
        examples=["SUCCESS"],
    )
    result: Any = None
    error: ContractFailure | ExceptionFailure | None = None
    date_done: datetime | None = None
