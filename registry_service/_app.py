"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from taskschema import __version__

from ._db import create_db_engine, migrate
from ._errors import install_error_handlers
from ._gateway import Gateway
from ._gateway_routes import router as gateway_router
from ._limits import BodySizeLimit
from ._metrics import RegistryMetrics, RequestMetrics, metrics_router
from ._routes import health_router, router
from ._settings import RegistrySettings
from ._store import Store
from ._ui import router as ui_router


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """The registry app; it migrates the database on start."""
    settings = settings or RegistrySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_db_engine(settings.database_url)
        migrate(engine)
        app.state.store = Store(engine)
        app.state.settings = settings
        app.state.gateway = Gateway.from_settings(settings, app.state.store)
        yield
        app.state.gateway.close()
        engine.dispose()

    app = FastAPI(
        title="taskschema registry",
        version=__version__,
        summary="Versioned, compatibility-checked contracts for Celery tasks.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(gateway_router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(ui_router)
    app.state.metrics = RegistryMetrics()
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so it is outermost and also counts what BodySizeLimit refuses.
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app
