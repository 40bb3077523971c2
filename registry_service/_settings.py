"""Registry settings, read from arguments or `TASKSCHEMA_*` environment variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./taskschema.db"


class RegistrySettings(BaseSettings):
    """How the registry stores data and guards access."""

    model_config = SettingsConfigDict(env_prefix="TASKSCHEMA_", frozen=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user@host/db.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest request body.")
    require_auth_for_reads: bool = Field(
        default=False, description="Require a valid token (any scope) for GET requests too."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker the task gateway publishes to (redis://..., amqp://...); "
        "without one, POST /tasks/{name}/send answers 503.",
    )
    result_backend: str | None = Field(
        default=None,
        description="Celery result backend GET /results/{task_id} reads (redis://..., "
        "db+postgresql://...); without one, it answers 503.",
    )
    gateway_timeout: float = Field(
        default=2.0,
        gt=0,
        description="Seconds the gateway waits to connect to the broker or result backend "
        "(per attempt; a publish is tried twice) before answering 503.",
    )
    gateway_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long the gateway reuses a verified `send` token and a task's "
        "resolved contract version before asking the database again; a revoked token or a "
        "newly published version takes effect on sends within this time. 0 turns it off.",
    )

    @field_validator("result_backend")
    @classmethod
    def _readable_by_task_id(cls, url: str | None) -> str | None:
        if url is not None and url.split(":", 1)[0] == "rpc":
            raise ValueError(
                "the rpc:// result backend sends each result only to the process that sent "
                "the task; the gateway needs one it can read by task id (redis://, db+...)"
            )
        return url
