"""HTTP routes of the task gateway: `POST /tasks/{name}/send` and `GET /results/{task_id}`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from taskschema import ErrorBody, InvalidJSONError, loads_strict

from ._auth import bearer, read_access
from ._errors import InvalidJSON, UnsupportedMediaType
from ._gateway import (
    BrokerNotConfigured,
    Gateway,
    Publisher,
    ResultBackendNotConfigured,
    ResultReader,
    check_call,
    send_options,
)
from ._gateway_models import TASK_ID_PATTERN, SendRequest, TaskAccepted, TaskResult
from ._routes import TaskName
from ._store import TokenInfo


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            try:
                self._strict_json = loads_strict(await self.body())
            except InvalidJSONError as exc:
                raise InvalidJSON(str(exc)) from None
        return self._strict_json


class StrictJSONRoute(APIRoute):
    """A route whose body, if any, must be JSON parsed as strictly as contracts are: no
    NaN or Infinity, no duplicate keys, no lone surrogates. Anything looser would reach
    the broker as JSON the worker's decoder refuses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict_json_handler(request: Request) -> Response:
            strict = _StrictJSONRequest(request.scope, request.receive)
            if await strict.body():
                media_type = strict.headers.get("content-type", "").split(";")[0].strip()
                if media_type.lower() != "application/json" and not media_type.endswith("+json"):
                    raise UnsupportedMediaType(
                        "send the body as JSON with 'Content-Type: application/json', "
                        f"not {media_type or 'no content type'!r}"
                    )
                # Parsed before FastAPI reads the body, so bad JSON is answered as
                # everywhere else in the registry (400 invalid_json).
                await strict.json()
            return await handler(strict)

        return strict_json_handler


# The dependencies below do no I/O, so they are async: FastAPI would run plain functions
# in a worker thread, one thread hop each, on every send.


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_publisher(gateway: GatewayDep) -> Publisher:
    """The broker's publisher; 503 when the registry has no broker configured."""
    if gateway.publisher is None:
        raise BrokerNotConfigured(
            "the task gateway is off: this registry has no broker configured "
            "(start it with --broker-url or TASKSCHEMA_BROKER_URL)"
        )
    return gateway.publisher


async def get_results(gateway: GatewayDep) -> ResultReader:
    """The result backend's reader; 503 when the registry has none configured."""
    if gateway.results is None:
        raise ResultBackendNotConfigured(
            "results cannot be read: this registry has no result backend configured "
            "(start it with --result-backend or TASKSCHEMA_RESULT_BACKEND)"
        )
    return gateway.results


async def send_access(
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TokenInfo:
    """A live token with the `send` scope (admin holds every scope)."""
    return await gateway.tokens.authorize(credentials, "send")


PublisherDep = Annotated[Publisher, Depends(get_publisher)]
ResultsDep = Annotated[ResultReader, Depends(get_results)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 415, 422)
}
_ERRORS[503] = {"model": ErrorBody, "description": "No broker or result backend, or unreachable."}
router = APIRouter(route_class=StrictJSONRoute, tags=["gateway"], responses=_ERRORS)


@router.post(
    "/tasks/{name}/send",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(send_access)],
)
async def send_task(
    name: TaskName,
    gateway: GatewayDep,
    publisher: PublisherDep,
    response: Response,
    call: Annotated[SendRequest, Body()] = SendRequest(),  # noqa: B008 (an immutable model)
    version: Annotated[
        int | None, Query(ge=1, description="Validate against this version, not the latest.")
    ] = None,
) -> TaskAccepted:
    """Validate a call against the task's contract and publish it as a Celery task message.

    Positional `args` bind to the contract's parameters in order; the call is sent as
    keyword arguments, with the contract's queue, priority, time limits and expiry unless
    `options` override them. A call that breaks the contract is refused with every
    violation (422) and nothing is published. Needs a token with the `send` scope.
    """
    resolved = await gateway.contracts.resolve(name, version)
    params = check_call(resolved.contract, call)
    options = send_options(resolved.contract, call.options)
    task_id = await publisher.publish(resolved.contract.task, params, options)
    response.headers["Location"] = f"/results/{task_id}"
    return TaskAccepted(task_id=task_id, task=name, version=resolved.version)


@router.get(
    "/results/{task_id}",
    dependencies=[Depends(read_access)],
    response_model_exclude_unset=True,
    responses={502: {"model": ErrorBody, "description": "The stored result is not JSON."}},
)
async def get_result(
    task_id: Annotated[str, Path(pattern=TASK_ID_PATTERN, description="The id a send returned.")],
    results: ResultsDep,
    response: Response,
) -> TaskResult:
    """A task's state from the result backend: `result` on SUCCESS; on FAILURE `error`,
    which for a call the worker refused is its structured error listing every violation.
    An unknown id is PENDING, as in Celery."""
    result = await results.fetch(task_id)
    response.headers["Cache-Control"] = "no-store"
    return result
