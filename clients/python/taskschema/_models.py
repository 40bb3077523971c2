"""The registry's HTTP API as Pydantic models, shared by the service and its clients."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._exceptions import Violation


class CompatibilityMode(StrEnum):
    """Which earlier versions a new contract version must stay compatible with, and how."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


Side = Literal["params", "returns"]


class Direction(StrEnum):
    """BACKWARD: documents of the older version stay valid; FORWARD: the reverse."""

    BACKWARD = "backward"
    FORWARD = "forward"


class Incompatibility(Violation):
    """One reason a contract change is refused (or, as a warning, worth a look)."""

    side: Side
    direction: Direction | None = Field(
        default=None, description="Which check failed; None for warnings, which hold both ways."
    )
    rule: str = Field(description="Stable id of the rule, e.g. property-made-required.")
    version: int | None = Field(default=None, description="The earlier version compared with.")


class CompatibilityReport(BaseModel):
    compatible: bool
    mode: CompatibilityMode
    violations: list[Incompatibility]
    warnings: list[Incompatibility]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class RegisteredVersion(_Model):
    """Identifies one version of a task's contract."""

    task: str
    version: int = Field(ge=1)
    id: int = Field(description="Global, immutable id of the contract document.")
    fingerprint: str = Field(description="sha-256 of the canonical contract JSON, hex.")


class VersionInfo(RegisteredVersion):
    """A version as listed: identity plus lifecycle."""

    deleted: bool
    created_at: datetime


class SchemaReference(_Model):
    """A registry reference a contract was published with, and the copy it became."""

    ref: str = Field(description="The `$ref` as published, e.g. /schemas/3#/$defs/Order.")
    schema_id: int = Field(description="The schema it resolved to.")
    bundled_as: str = Field(description="The local `$ref` it was rewritten to.")


class VersionDetail(VersionInfo):
    """A version with its contract document."""

    contract: dict[str, Any]
    references: list[SchemaReference] = Field(
        default_factory=list,
        description="Registry references bundled into the contract when it was published.",
    )


class TaskSummary(_Model):
    task: str
    latest_version: int | None = Field(description="Highest version not deleted, if any.")
    versions: list[int] = Field(description="Versions not deleted, ascending.")
    description: str = ""


class TaskPage(_Model):
    tasks: list[TaskSummary]
    total: int
    limit: int
    offset: int


class CompatibilityConfig(_Model):
    compatibility: CompatibilityMode


class EffectiveConfig(CompatibilityConfig):
    source: Literal["task", "global"] = Field(
        description="Whether the mode is the task's own or the global default."
    )


class DeletedVersion(_Model):
    task: str
    version: int
    permanent: bool


class ErrorBody(_Model):
    """Every error response: a stable code, a sentence, and where applicable each violation."""

    error: str = Field(description="Stable machine-readable code, e.g. contract_invalid.")
    message: str
    violations: list[Incompatibility | Violation] = Field(default_factory=list)


class Health(_Model):
    status: Literal["ok"]
    database: Literal["ok"]
