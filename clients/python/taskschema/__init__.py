"""taskschema: typed, validated Celery task contracts shared across languages."""

from ._client import PublishResult, RegistryClient
from ._compat import check_compatibility
from ._contract import TaskContract, TaskOptions, meta_schema
from ._exceptions import (
    CallValidationError,
    ContractError,
    ContractViolation,
    InvalidJSONError,
    RegistryError,
    TaskSchemaError,
    Violation,
)
from ._json import canonical_json, loads_strict
from ._models import (
    CompatibilityConfig,
    CompatibilityMode,
    CompatibilityReport,
    DeletedVersion,
    Direction,
    EffectiveConfig,
    ErrorBody,
    Health,
    Incompatibility,
    RegisteredVersion,
    SchemaReference,
    TaskPage,
    TaskSummary,
    VersionDetail,
    VersionInfo,
)
from ._sources import ChainedSources, ContractSource, RegistryContracts, StaticContracts
from ._typed import (
    NOT_GIVEN,
    ImplementationMismatchError,
    NotGiven,
    SendOptions,
    TaskStub,
    TypedResult,
    TypedTask,
)

__version__ = "0.1.0"

__all__ = [
    "NOT_GIVEN",
    "CallValidationError",
    "ChainedSources",
    "CompatibilityConfig",
    "CompatibilityMode",
    "CompatibilityReport",
    "ContractError",
    "ContractSource",
    "ContractViolation",
    "DeletedVersion",
    "Direction",
    "EffectiveConfig",
    "ErrorBody",
    "Health",
    "ImplementationMismatchError",
    "Incompatibility",
    "InvalidJSONError",
    "NotGiven",
    "PublishResult",
    "RegisteredVersion",
    "RegistryClient",
    "RegistryContracts",
    "RegistryError",
    "SchemaReference",
    "SendOptions",
    "StaticContracts",
    "TaskContract",
    "TaskOptions",
    "TaskPage",
    "TaskSchemaError",
    "TaskStub",
    "TaskSummary",
    "TypedResult",
    "TypedTask",
    "VersionDetail",
    "VersionInfo",
    "Violation",
    "__version__",
    "canonical_json",
    "check_compatibility",
    "loads_strict",
    "meta_schema",
]
