"""The web UI: server-rendered pages under /ui over the registry's own store.

Pages follow the API's read rule (the same `read_access` dependency), and every failure,
a missing token or an unknown task included, is an HTML page with the API's status code.
Templates autoescape everything: contracts are user input. Pages carry no script at all,
and their Content-Security-Policy says so, so an escaping slip still could not run one.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import lru_cache
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from taskschema import TaskContract, VersionInfo, loads_strict

from ._auth import StoreDep, read_access
from ._errors import ApiError, TaskNotFound
from ._routes import TaskName, VersionRef
from ._ui_views import diff, parameters, pretty_json, show_time, type_summary, verdicts

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages may be behind a token (TASKSCHEMA_REQUIRE_AUTH_FOR_READS): no shared caches.
    "Cache-Control": "private, no-cache",
}
PAGE_SIZE = 50

IncludeDeleted = Annotated[bool, Query(description="Show soft-deleted versions too.")]


def url(path: str, **params: object) -> str:
    """A UI link: `path` (segments quoted) with the parameters that are set."""
    query = {
        key: "1" if value is True else str(value)
        for key, value in params.items()
        if value is not None and value is not False and value != ""
    }
    return quote(path, safe="/") + (f"?{urlencode(query)}" if query else "")


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("registry_service", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(url=url, show_time=show_time)
    # Not `capitalize`, which lowercases the rest, task names included.
    environment.filters["sentence"] = lambda message: message[:1].upper() + message[1:]
    return environment


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=_SECURITY_HEADERS)


def error_page(
    request: Request, status_code: int, code: str, message: str, problems: list[str] | None = None
) -> HTMLResponse:
    # A version may be missing only because it is soft-deleted: offer to look again.
    deleted_hint = None
    if code == "version_not_found" and "deleted" not in request.query_params:
        again = request.url.include_query_params(deleted="1")
        deleted_hint = f"{again.path}?{again.query}"
    return render(
        "error.html",
        status_code=status_code,
        status=HTTPStatus(status_code),
        code=code,
        message=message,
        problems=problems or [],
        deleted_hint=deleted_hint,
    )


class HtmlPageRoute(APIRoute):
    """A route whose failures are HTML pages too, with the status the API would answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                page = error_page(request, exc.status_code, exc.error, exc.message)
                page.headers.update(exc.headers or {})  # WWW-Authenticate on 401
                return page
            except RequestValidationError as exc:
                return _invalid_request(request, exc)

        return handle


def _invalid_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
    errors = list(exc.errors())
    problems = [f"{'.'.join(map(str, error['loc'][1:]))}: {error['msg']}" for error in errors]
    if all(error["loc"][0] == "path" for error in errors):
        # A malformed task name or version number in a link names no page.
        return error_page(request, 404, "not_found", "there is no such page", problems)
    return error_page(request, 422, "request_invalid", "the request is invalid", problems)


router = APIRouter(include_in_schema=False, route_class=HtmlPageRoute)
pages = APIRouter(
    prefix="/ui",
    include_in_schema=False,
    route_class=HtmlPageRoute,
    dependencies=[Depends(read_access)],
)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui")


@router.get("/ui/static/ui.css")
def stylesheet() -> Response:
    # Served without a token: the 401 page needs it, and it holds no data.
    return Response(
        _stylesheet(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


@lru_cache(maxsize=1)
def _stylesheet() -> bytes:
    return resources.files("registry_service").joinpath("static/ui.css").read_bytes()


@pages.get("")
@pages.get("/")
def task_list(
    store: StoreDep,
    prefix: Annotated[str, Query(max_length=200)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
    deleted: IncludeDeleted = False,
) -> HTMLResponse:
    page = store.list_tasks(prefix=prefix, limit=limit, offset=offset, include_deleted=deleted)
    return render("tasks.html", page=page, prefix=prefix, deleted=deleted)


@pages.get("/tasks/{name}")
def task_page(name: TaskName, store: StoreDep, deleted: IncludeDeleted = False) -> HTMLResponse:
    summary = store.get_task(name, include_deleted=deleted)
    latest = (
        store.get_version(name, None, include_deleted=False)
        if summary.latest_version is not None
        else None
    )
    return render(
        "task.html",
        summary=summary,
        versions=store.list_versions(name, include_deleted=deleted),
        config=store.get_config(name),
        options=(latest.contract.get("options", {}) if latest else {}),
        deleted=deleted,
    )


@pages.get("/tasks/{name}/versions/{version}")
def version_page(
    name: TaskName, version: VersionRef, store: StoreDep, deleted: IncludeDeleted = False
) -> HTMLResponse:
    number = None if version == "latest" else int(version)
    detail = store.get_version(name, number, include_deleted=deleted)
    numbers = [info.version for info in store.list_versions(name, include_deleted=deleted)]
    contract = detail.contract
    return render(
        "version.html",
        detail=detail,
        parameters=parameters(contract),
        returns=type_summary(contract.get("returns"), contract.get("$defs", {})),
        pretty=pretty_json(contract),
        previous_version=_neighbour(numbers, detail.version, -1),
        next_version=_neighbour(numbers, detail.version, +1),
        deleted=deleted,
    )


@pages.get("/schemas/{schema_id}")
def schema_page(
    schema_id: Annotated[int, Path(ge=1)], store: StoreDep, deleted: IncludeDeleted = False
) -> HTMLResponse:
    schema = store.get_schema(schema_id)
    contract = loads_strict(schema.document)
    return render(
        "schema.html",
        schema=schema,
        task=contract["task"],
        used_by=_versions_of(store, contract["task"], schema_id, deleted),
        pretty=pretty_json(contract),
        deleted=deleted,
    )


@pages.get("/tasks/{name}/compare")
def compare_page(
    name: TaskName,
    store: StoreDep,
    old: Annotated[int | None, Query(alias="from", ge=1)] = None,
    new: Annotated[int | None, Query(alias="to", ge=1)] = None,
    view: Literal["split", "unified"] = "split",
    deleted: IncludeDeleted = False,
) -> HTMLResponse:
    """The change from -> to: both contracts' diff, and the checker's verdict per mode."""
    numbers = [info.version for info in store.list_versions(name, include_deleted=deleted)]
    after = store.get_version(name, new or numbers[-1], include_deleted=deleted)
    old = old or _neighbour(numbers, after.version, -1)
    mode = store.get_config(name)
    context: dict[str, Any] = {"name": name, "numbers": numbers, "after": after, "mode": mode}
    context.update(old=old, view=view, deleted=deleted, before=None, diff=None, verdicts=[])
    if old is None:  # the first (or only) version: nothing before it to compare with
        return render("compare.html", **context)
    before = store.get_version(name, old, include_deleted=deleted)
    context.update(
        before=before,
        diff=diff(pretty_json(before.contract), pretty_json(after.contract)),
        verdicts=verdicts(
            old, TaskContract(before.contract), TaskContract(after.contract), mode.compatibility
        ),
    )
    return render("compare.html", **context)


@pages.get("/{path:path}")
def not_found(path: str) -> HTMLResponse:
    raise PageNotFound(f"there is no page /ui/{path}")


class PageNotFound(ApiError):
    status_code = HTTPStatus.NOT_FOUND
    error = "not_found"


def _neighbour(numbers: list[int], version: int, step: int) -> int | None:
    """The version listed before (step -1) or after (+1) `version`, if any."""
    if version not in numbers:
        return None
    index = numbers.index(version) + step
    return numbers[index] if 0 <= index < len(numbers) else None


def _versions_of(store: StoreDep, task: str, schema_id: int, deleted: bool) -> list[VersionInfo]:
    try:
        versions = store.list_versions(task, include_deleted=deleted)
    except TaskNotFound:  # every version using the schema is soft-deleted (and hidden)
        return []
    return [info for info in versions if info.id == schema_id]


# Last, so the catch-all 404 page comes after every other UI route.
router.include_router(pages)
