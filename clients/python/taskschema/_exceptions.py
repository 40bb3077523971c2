"""The exception hierarchy of taskschema: everything raised on purpose is a `TaskSchemaError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict


class Violation(BaseModel):
    """One reason a document was refused: where (a JSON pointer) and why."""

    model_config = ConfigDict(frozen=True)

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


class TaskSchemaError(Exception):
    """Base class of every error taskschema raises on purpose."""


class InvalidJSONError(TaskSchemaError):
    """Bytes that are not one strict JSON document (syntax, duplicate keys, NaN)."""


class _ViolationsError(TaskSchemaError):
    def __init__(self, message: str, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        detail = "\n".join(f"  {v}" for v in self.violations)
        super().__init__(f"{message}\n{detail}" if detail else message)
        self.message = message


class ContractError(_ViolationsError):
    """A task contract that breaks the meta-schema or the contract rules."""


class CallValidationError(_ViolationsError):
    """Task arguments or a return value that break their contract."""


class RegistryError(TaskSchemaError):
    """The registry answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str = "registry_unavailable",
        violations: Sequence[Violation] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.violations = list(violations)


class ContractViolation(TaskSchemaError):
    """A task call or return value that broke its contract, as stored in a FAILURE result.

    Its only argument is a plain JSON object (`error`, `message`, `task`, `violations`),
    so result backends keep it readable from any language and Celery can rebuild it.
    """

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error)
        self.error = error
        self.violations = [Violation.model_validate(v) for v in error.get("violations", [])]

    def __str__(self) -> str:
        detail = "; ".join(str(v) for v in self.violations)
        message = str(self.error.get("message", "contract violation"))
        return f"{message}: {detail}" if detail else message
