"""Typed API errors and the handlers that render every failure as an `ErrorBody`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskschema import ErrorBody, Violation
from taskschema._validation import json_pointer


class ApiError(Exception):
    """An error answered to the client: HTTP status, stable code, sentence, violations."""

    status_code: int = HTTPStatus.BAD_REQUEST
    error: str = "bad_request"

    def __init__(
        self,
        message: str,
        violations: Sequence[Violation] = (),
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.violations = list(violations)
        self.headers = headers

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.error, message=self.message, violations=self.violations)


def _error(status: HTTPStatus, code: str, doc: str) -> type[ApiError]:
    return type(
        "".join(part.title() for part in code.split("_")),
        (ApiError,),
        {"status_code": status, "error": code, "__doc__": doc},
    )


InvalidJSON = _error(HTTPStatus.BAD_REQUEST, "invalid_json", "The body is not strict JSON.")
ContractInvalid = _error(
    HTTPStatus.UNPROCESSABLE_ENTITY, "contract_invalid", "The contract breaks the meta-schema."
)
TaskNameMismatch = _error(
    HTTPStatus.UNPROCESSABLE_ENTITY, "task_name_mismatch", "Contract task differs from the URL."
)
UnsupportedMediaType = _error(
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body is not JSON."
)
TaskNotFound = _error(HTTPStatus.NOT_FOUND, "task_not_found", "No such task.")
VersionNotFound = _error(HTTPStatus.NOT_FOUND, "version_not_found", "No such version.")
SchemaNotFound = _error(HTTPStatus.NOT_FOUND, "schema_not_found", "No such schema id.")
Incompatible = _error(
    HTTPStatus.CONFLICT, "incompatible", "The contract breaks the task's compatibility mode."
)
NotSoftDeleted = _error(
    HTTPStatus.CONFLICT, "version_not_soft_deleted", "Permanent delete before a soft delete."
)
ConfigNotFound = _error(HTTPStatus.NOT_FOUND, "config_not_found", "No task-level config.")
MissingToken = _error(HTTPStatus.UNAUTHORIZED, "missing_token", "No bearer token was sent.")
InvalidToken = _error(HTTPStatus.UNAUTHORIZED, "invalid_token", "Unknown or revoked token.")
InsufficientScope = _error(HTTPStatus.FORBIDDEN, "insufficient_scope", "The token lacks a scope.")
DatabaseUnavailable = _error(
    HTTPStatus.SERVICE_UNAVAILABLE, "database_unavailable", "The database is unreachable."
)

_STATUS_CODES = {
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.METHOD_NOT_ALLOWED: "method_not_allowed",
}


def _render(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _render(exc.status_code, exc.body(), exc.headers)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    violations = [
        Violation(path=json_pointer(error["loc"]), message=error["msg"]) for error in exc.errors()
    ]
    body = ErrorBody(
        error="request_invalid", message="the request is invalid", violations=violations
    )
    return _render(HTTPStatus.UNPROCESSABLE_ENTITY, body)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    code = _STATUS_CODES.get(status, status.phrase.lower().replace(" ", "_"))
    body = ErrorBody(error=code, message=str(exc.detail))
    return _render(exc.status_code, body, exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
