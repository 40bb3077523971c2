"""HTTP routes of the task gateway: `POST /tasks/{name}/send` and `GET /results/{task_id}`.

The send route is the gateway's hot path, so it is a plain `Request -> Response`
function served by a `DirectRoute`: it checks the token, reads the body once, parses it
with the strict JSON decoder the worker uses, validates it with the same Pydantic models
the OpenAPI document is generated from, and renders its answer as bytes. FastAPI's
per-request dependency resolution and response-model machinery cost several times the
validation itself, so the route's parameters and body are described to OpenAPI
explicitly (`SEND_OPENAPI`) instead of through its signature.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from taskschema import ErrorBody, InvalidJSONError, loads_strict, meta_schema

from ._auth import bearer, read_access
from ._errors import InvalidJSON, UnsupportedMediaType
from ._gateway import Gateway, ResultReader, check_call, send_options
from ._gateway_models import TASK_ID_PATTERN, SendRequest, TaskAccepted, TaskResult

_TASK_SCHEMA: Final = meta_schema()["properties"]["task"]
_TASK_NAME: Final = TypeAdapter(
    Annotated[
        str,
        StringConstraints(pattern=_TASK_SCHEMA["pattern"], max_length=_TASK_SCHEMA["maxLength"]),
    ]
)
_VERSION: Final = TypeAdapter(Annotated[int, Field(ge=1)])
_CALL: Final = TypeAdapter(SendRequest)
_NO_CALL: Final = SendRequest()  # an empty body: no arguments, no options


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its local `$defs` references replaced by the definitions, so it
    stands alone inside an OpenAPI operation (the models have no recursive types)."""
    definitions: dict[str, Any] = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return inline({**definitions[ref.removeprefix("#/$defs/")], **rest})
        return {key: inline(value) for key, value in node.items() if key != "$defs"}

    result: dict[str, Any] = inline(schema)
    return result


# What the send route takes, for OpenAPI: generated from the validators the route uses.
SEND_OPENAPI: Final[dict[str, Any]] = {
    "parameters": [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "Dotted Celery task name.",
            "schema": _TASK_NAME.json_schema(),
        },
        {
            "name": "version",
            "in": "query",
            "required": False,
            "description": "Validate against this version, not the latest.",
            "schema": _VERSION.json_schema(),
        },
    ],
    "requestBody": {
        "description": "The call; an empty body is a call without arguments.",
        "required": False,
        "content": {"application/json": {"schema": _inline_refs(_CALL.json_schema())}},
    },
    "security": [{"HTTPBearer": []}],
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 415, 422)
}
_ERRORS[503] = {"model": ErrorBody, "description": "No broker or result backend, or unreachable."}
router = APIRouter(tags=["gateway"], responses=_ERRORS)


class DirectRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns its `Response` itself.

    FastAPI still matches, documents and guards it (exception handlers apply), but
    calls the endpoint directly: no dependency solving, no response model."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


async def send_task(request: Request) -> Response:
    """Validate a call against the task's contract and publish it as a Celery task message.

    Positional `args` bind to the contract's parameters in order; the call is sent as
    keyword arguments, with the contract's queue, priority, time limits and expiry unless
    `options` override them. A call that breaks the contract is refused with every
    violation (422) and nothing is published. Needs a token with the `send` scope.
    """
    gateway: Gateway = request.app.state.gateway
    await gateway.tokens.authorize(await bearer(request), "send")
    publisher = gateway.require_publisher()
    name, version, call = await _send_request(request)
    resolved = await gateway.contracts.resolve(name, version)
    params = check_call(resolved.contract, call)
    options = send_options(resolved.contract, call.options)
    task_id = await publisher.publish(resolved.contract.task, params, options)
    accepted = TaskAccepted(task_id=task_id, task=name, version=resolved.version)
    return Response(
        accepted.model_dump_json().encode(),
        status.HTTP_202_ACCEPTED,
        headers={"Location": f"/results/{task_id}"},
        media_type="application/json",
    )


router.add_api_route(
    "/tasks/{name}/send",
    send_task,
    methods=["POST"],
    route_class_override=DirectRoute,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        202: {
            "model": TaskAccepted,
            "description": "Published: the broker has the message.",
            "headers": {
                "Location": {
                    "description": "Where the result will be: `/results/{task_id}`.",
                    "schema": {"type": "string"},
                }
            },
        }
    },
    openapi_extra=SEND_OPENAPI,
)


async def _send_request(request: Request) -> tuple[str, int | None, SendRequest]:
    """The task name, the version asked for and the call, each validated as `SEND_OPENAPI`
    describes them. A body that is not JSON is refused first (415), then JSON the worker
    would refuse (400: NaN, duplicate keys, lone surrogates); every other problem is
    collected into one 422."""
    errors: list[Any] = []
    name: str = _validated(_TASK_NAME, request.path_params["name"], "path", errors, "name")
    version: int | None = None
    if request.scope["query_string"] and (given := request.query_params.get("version")):
        version = _validated(_VERSION, given, "query", errors, "version")
    call = _NO_CALL
    body = await request.body()
    if body:
        media_type = request.headers.get("content-type", "").split(";")[0].strip()
        if media_type.lower() != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaType(
                "send the body as JSON with 'Content-Type: application/json', "
                f"not {media_type or 'no content type'!r}"
            )
        try:
            document = loads_strict(body)
        except InvalidJSONError as exc:
            raise InvalidJSON(str(exc)) from None
        call = _validated(_CALL, document, "body", errors)
    if errors:
        raise RequestValidationError(errors)
    return name, version, call


def _validated(
    adapter: TypeAdapter[Any], value: Any, where: str, errors: list[Any], *loc: str
) -> Any:
    """`value` validated by `adapter`; on failure None, with its errors added to
    `errors` located as FastAPI locates them (`("body", "options", "eta")`)."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        errors.extend(
            {**error, "loc": (where, *loc, *error["loc"])}
            for error in exc.errors(include_url=False)
        )
        return None


async def get_results(request: Request) -> ResultReader:
    """The result backend's reader; 503 when the registry has none configured."""
    gateway: Gateway = request.app.state.gateway
    return gateway.require_results()


@router.get(
    "/results/{task_id}",
    dependencies=[Depends(read_access)],
    response_model_exclude_unset=True,
    responses={502: {"model": ErrorBody, "description": "The stored result is not JSON."}},
)
async def get_result(
    task_id: Annotated[str, Path(pattern=TASK_ID_PATTERN, description="The id a send returned.")],
    results: Annotated[ResultReader, Depends(get_results)],
    response: Response,
) -> TaskResult:
    """A task's state from the result backend: `result` on SUCCESS; on FAILURE `error`,
    which for a call the worker refused is its structured error listing every violation.
    An unknown id is PENDING, as in Celery."""
    result = await results.fetch(task_id)
    response.headers["Cache-Control"] = "no-store"
    return result
