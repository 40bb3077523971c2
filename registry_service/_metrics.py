"""Prometheus metrics of the registry: requests by route template and status, and latency.

Each app has a registry of its own, so several apps in one process (tests, embedding)
never share or clash over counters. Publish outcomes need no counter of their own: they
are the statuses of `POST /tasks/{name}/versions` (201 created, 200 unchanged, 409
refused as incompatible, 422 invalid).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RegistryMetrics:
    """The registry's collectors, in a `CollectorRegistry` of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "taskschema_registry_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "taskschema_registry_request_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )


class RequestMetrics:
    """ASGI middleware recording every HTTP request in `metrics`.

    Routes are labelled by their template (`/tasks/{name}`), never by the raw path, so
    task names cannot blow up the label space; unmatched paths count as `unmatched`.
    """

    def __init__(self, app: ASGIApp, metrics: RegistryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app fails before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


metrics_router = APIRouter()


@metrics_router.get("/metrics", tags=["health"], response_class=Response)
def metrics(request: Request) -> Response:
    """The registry's counters in Prometheus text format; never needs a token."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
