"""taskschema: typed, validated Celery task contracts shared across languages."""

from ._client import PublishResult, RegistryClient
from ._contract import TaskContract, TaskOptions, meta_schema
from ._exceptions import (
    CallValidationError,
    ContractError,
    InvalidJSONError,
    RegistryError,
    TaskSchemaError,
    Violation,
)
from ._json import canonical_json, loads_strict
from ._models import (
    CompatibilityConfig,
    CompatibilityMode,
    DeletedVersion,
    EffectiveConfig,
    ErrorBody,
    Health,
    RegisteredVersion,
    TaskPage,
    TaskSummary,
    VersionDetail,
    VersionInfo,
)

__version__ = "0.1.0"

__all__ = [
    "CallValidationError",
    "CompatibilityConfig",
    "CompatibilityMode",
    "ContractError",
    "DeletedVersion",
    "EffectiveConfig",
    "ErrorBody",
    "Health",
    "InvalidJSONError",
    "PublishResult",
    "RegisteredVersion",
    "RegistryClient",
    "RegistryError",
    "TaskContract",
    "TaskOptions",
    "TaskPage",
    "TaskSchemaError",
    "TaskSummary",
    "VersionDetail",
    "VersionInfo",
    "Violation",
    "__version__",
    "canonical_json",
    "loads_strict",
    "meta_schema",
]
