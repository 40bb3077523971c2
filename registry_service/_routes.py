"""HTTP routes: thin functions over `Store`, with auth and parsing as dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from taskschema import (
    CompatibilityConfig,
    CompatibilityMode,
    CompatibilityReport,
    ContractError,
    DeletedVersion,
    EffectiveConfig,
    ErrorBody,
    Health,
    InvalidJSONError,
    RegisteredVersion,
    SchemaReference,
    TaskContract,
    TaskPage,
    TaskSummary,
    VersionDetail,
    VersionInfo,
    Violation,
    loads_strict,
    meta_schema,
)
from taskschema._references import bundle_references

from ._auth import StoreDep, read_access, require_scope
from ._errors import (
    ContractInvalid,
    DatabaseUnavailable,
    InvalidJSON,
    TaskNameMismatch,
    UnsupportedMediaType,
)

TaskName = Annotated[
    str,
    Path(
        description="Dotted Celery task name.",
        pattern=meta_schema()["properties"]["task"]["pattern"],
        max_length=meta_schema()["properties"]["task"]["maxLength"],
    ),
]
VersionRef = Annotated[
    str, Path(description="A version number, or `latest`.", pattern=r"^([1-9][0-9]{0,8}|latest)$")
]
IncludeDeleted = Annotated[bool, Query(description="Include soft-deleted versions.")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422)
}
_IMMUTABLE = "public, max-age=31536000, immutable"

router = APIRouter(dependencies=[Depends(read_access)], responses=_ERRORS)
publish_access = Depends(require_scope("publish"))
admin_access = Depends(require_scope("admin"))


async def contract_document(request: Request) -> dict[str, Any]:
    """The request body parsed as strict JSON: a would-be contract document."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the contract as JSON with 'Content-Type: application/json', "
            f"not {media_type or 'no content type'!r}"
        )
    try:
        document = loads_strict(await request.body())
    except InvalidJSONError as exc:
        raise InvalidJSON(str(exc)) from None
    if not isinstance(document, dict):
        raise ContractInvalid(
            "contract is invalid", [Violation(path="", message="a contract is a JSON object")]
        )
    return document


@dataclass(frozen=True)
class BundledContract:
    """A validated contract, and the registry references it was bundled from."""

    contract: TaskContract
    references: tuple[SchemaReference, ...]


def bundled_contract(
    document: Annotated[dict[str, Any], Depends(contract_document)], store: StoreDep
) -> BundledContract:
    """The body's contract with its registry references (`/schemas/{id}#/$defs/Name`)
    resolved in this registry and bundled in, validated. A sync dependency, so the
    database reads run off the event loop."""
    try:
        bundle = bundle_references(document, store.fetch)
        return BundledContract(TaskContract(bundle.document), bundle.references)
    except ContractError as exc:
        raise ContractInvalid(exc.message, exc.violations) from None


def named_contract(
    name: TaskName, bundled: Annotated[BundledContract, Depends(bundled_contract)]
) -> BundledContract:
    """The body's contract, which must be for the task named in the URL."""
    contract = bundled.contract
    if contract.task != name:
        raise TaskNameMismatch(
            f"the contract is for {contract.task!r} but was sent to {name!r}",
            [Violation(path="/task", message=f"expected {name!r}, found {contract.task!r}")],
        )
    return bundled


NamedContract = Annotated[BundledContract, Depends(named_contract)]
_CONTRACT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A task contract; its meta-schema is at /task-contract.schema.json.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/tasks/{name}/versions",
    status_code=status.HTTP_201_CREATED,
    dependencies=[publish_access],
    responses={200: {"model": RegisteredVersion, "description": "Already registered."}},
    openapi_extra=_CONTRACT_BODY,
    tags=["versions"],
)
def publish(
    name: TaskName, contract: NamedContract, store: StoreDep, response: Response
) -> RegisteredVersion:
    """Register a contract as the task's next version; an identical live contract is
    answered with its existing version (200) instead. A contract that breaks the task's
    compatibility mode is refused with 409 and every violation. Registry references
    (`/schemas/{id}#/$defs/Name`) are bundled into the stored contract."""
    outcome = store.publish(contract.contract, contract.references)
    response.headers["Location"] = f"/tasks/{name}/versions/{outcome.registered.version}"
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return outcome.registered


@router.post("/tasks/{name}/compatibility", openapi_extra=_CONTRACT_BODY, tags=["versions"])
def check_compatibility(
    contract: NamedContract,
    store: StoreDep,
    version: Annotated[
        int | None, Query(ge=1, description="Compare with this version only.")
    ] = None,
    mode: Annotated[
        CompatibilityMode | None, Query(description="Instead of the task's configured mode.")
    ] = None,
) -> CompatibilityReport:
    """Whether the contract could be published (every violation, and warnings); stores
    nothing. Registry references are bundled first, as on publish."""
    return store.check(contract.contract, version=version, mode=mode)


@router.get("/tasks", tags=["tasks"])
def list_tasks(
    store: StoreDep,
    prefix: Annotated[str, Query(max_length=200, description="Only names starting so.")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    include_deleted: IncludeDeleted = False,
) -> TaskPage:
    """Tasks with at least one live version, by name."""
    return store.list_tasks(
        prefix=prefix, limit=limit, offset=offset, include_deleted=include_deleted
    )


@router.get("/tasks/{name}", tags=["tasks"])
def get_task(
    name: TaskName, store: StoreDep, include_deleted: IncludeDeleted = False
) -> TaskSummary:
    return store.get_task(name, include_deleted=include_deleted)


@router.get("/tasks/{name}/versions", tags=["versions"])
def list_versions(
    name: TaskName, store: StoreDep, include_deleted: IncludeDeleted = False
) -> list[VersionInfo]:
    return store.list_versions(name, include_deleted=include_deleted)


@router.get("/tasks/{name}/versions/{version}", tags=["versions"])
def get_version(
    name: TaskName, version: VersionRef, store: StoreDep, include_deleted: IncludeDeleted = False
) -> VersionDetail:
    """One version with its contract; `latest` is the highest live version."""
    number = None if version == "latest" else int(version)
    return store.get_version(name, number, include_deleted=include_deleted)


@router.delete("/tasks/{name}/versions/{version}", dependencies=[admin_access], tags=["versions"])
def delete_version(
    name: TaskName,
    version: Annotated[int, Path(ge=1)],
    store: StoreDep,
    permanent: Annotated[
        bool, Query(description="Remove for good; only after a soft delete.")
    ] = False,
) -> DeletedVersion:
    """Soft-delete a version (hidden, number never reused), or remove a soft-deleted one."""
    store.delete_version(name, version, permanent=permanent)
    return DeletedVersion(task=name, version=version, permanent=permanent)


@router.get(
    "/schemas/{schema_id}",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "The contract."}},
    tags=["schemas"],
)
def get_schema(
    schema_id: Annotated[int, Path(ge=1)],
    store: StoreDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A contract document by global id. Immutable, so cacheable for good."""
    schema = store.get_schema(schema_id)
    etag = f'"{schema.fingerprint}"'
    headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(schema.document, media_type="application/json", headers=headers)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    # If-None-Match uses weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored.
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


@router.get("/config", tags=["config"])
def get_global_config(store: StoreDep) -> CompatibilityConfig:
    """The registry-wide default compatibility mode."""
    return CompatibilityConfig(compatibility=store.get_config(None).compatibility)


@router.put("/config", dependencies=[admin_access], tags=["config"])
def put_global_config(config: CompatibilityConfig, store: StoreDep) -> CompatibilityConfig:
    store.set_config(None, config.compatibility)
    return config


@router.get("/config/{name}", tags=["config"])
def get_task_config(name: TaskName, store: StoreDep) -> EffectiveConfig:
    """The task's compatibility mode: its own, or else the global default."""
    return store.get_config(name)


@router.put("/config/{name}", dependencies=[admin_access], tags=["config"])
def put_task_config(
    name: TaskName, config: CompatibilityConfig, store: StoreDep
) -> EffectiveConfig:
    store.set_config(name, config.compatibility)
    return EffectiveConfig(compatibility=config.compatibility, source="task")


@router.delete("/config/{name}", dependencies=[admin_access], tags=["config"])
def delete_task_config(name: TaskName, store: StoreDep) -> EffectiveConfig:
    """Drop the task's own mode; the global default applies again."""
    store.delete_config(name)
    return store.get_config(name)


@router.get("/task-contract.schema.json", tags=["schemas"])
def get_meta_schema() -> JSONResponse:
    """The meta-schema every contract must pass."""
    return JSONResponse(meta_schema(), headers={"Cache-Control": "public, max-age=3600"})


health_router = APIRouter()


@health_router.get(
    "/healthz",
    tags=["health"],
    responses={503: {"model": ErrorBody, "description": "The database is unreachable."}},
)
def healthz(store: StoreDep) -> Health:
    """Liveness and database reachability; never needs a token."""
    try:
        with store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"the database is unreachable: {type(exc).__name__}") from None
    return Health(status="ok", database="ok")
