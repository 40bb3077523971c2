"""A synchronous HTTP client for the registry."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from ._contract import TaskContract
from ._exceptions import ContractError, RegistryError, Violation
from ._models import (
    CompatibilityMode,
    CompatibilityReport,
    ErrorBody,
    RegisteredVersion,
    TaskPage,
    VersionDetail,
)

Version = int | Literal["latest"]
# A contract, or a document the registry is to bundle first (one holding registry
# references such as `/schemas/3#/$defs/Order`, which `TaskContract` refuses).
Document = TaskContract | Mapping[str, Any]


class PublishResult(RegisteredVersion):
    """What a publish did: `created` is False when the contract was already registered."""

    created: bool


class RegistryClient:
    """Talks to a taskschema registry. Use as a context manager or call `close()`."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get("TASKSCHEMA_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def publish(self, contract: Document) -> PublishResult:
        """Register `contract` as the next version of its task (idempotent)."""
        task, body = _body(contract)
        response = self._request(
            "POST",
            f"/tasks/{task}/versions",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        registered = RegisteredVersion.model_validate_json(response.content)
        return PublishResult(**registered.model_dump(), created=response.status_code == 201)

    def check(
        self,
        contract: Document,
        *,
        version: int | None = None,
        mode: CompatibilityMode | None = None,
    ) -> CompatibilityReport:
        """Whether `contract` could be published now (nothing is stored)."""
        params = {key: value for key, value in (("version", version), ("mode", mode)) if value}
        task, body = _body(contract)
        response = self._request(
            "POST",
            f"/tasks/{task}/compatibility",
            params=params,
            content=body,
            headers={"Content-Type": "application/json"},
        )
        return CompatibilityReport.model_validate_json(response.content)

    def get_version(self, task: str, version: Version = "latest") -> VersionDetail:
        """One version of a task's contract, with the document."""
        response = self._request("GET", f"/tasks/{task}/versions/{version}")
        return VersionDetail.model_validate_json(response.content)

    def get_contract(self, task: str, version: Version = "latest") -> TaskContract:
        """A task's contract, parsed and validated."""
        return TaskContract(self.get_version(task, version).contract)

    def get_schema(self, schema_id: int) -> TaskContract:
        """The contract document with global id `schema_id`."""
        return TaskContract.from_json(self._request("GET", f"/schemas/{schema_id}").content)

    def list_tasks(self, *, prefix: str = "", limit: int = 100, offset: int = 0) -> TaskPage:
        response = self._request(
            "GET", "/tasks", params={"prefix": prefix, "limit": limit, "offset": offset}
        )
        return TaskPage.model_validate_json(response.content)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach the registry at {self.url}: {exc}") from exc
        if response.is_success:
            return response
        raise _error_from(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _body(contract: Document) -> tuple[str, bytes]:
    """The task a contract is for, and the request body carrying it."""
    if isinstance(contract, TaskContract):
        return contract.task, contract.canonical_json()
    task = contract.get("task")
    if not isinstance(task, str):
        raise ContractError(
            "contract is invalid", [Violation(path="/task", message="a contract names its task")]
        )
    # Quoted, as the document is not validated yet (a valid task name is left as is);
    # plain JSON in the author's key order: `params.properties` order is the signature.
    return quote(task, safe=""), json.dumps(contract, ensure_ascii=False, allow_nan=False).encode()


def _error_from(response: httpx.Response) -> RegistryError:
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:
        text = response.text.strip()[:200] or response.reason_phrase
        return RegistryError(
            f"registry answered {response.status_code}: {text}",
            status_code=response.status_code,
            error="http_error",
        )
    return RegistryError(
        body.message,
        status_code=response.status_code,
        error=body.error,
        violations=body.violations,
    )
