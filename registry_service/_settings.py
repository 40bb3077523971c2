"""Registry settings, read from arguments or `TASKSCHEMA_*` environment variables."""

from __future__ import annotations

from pydantic import Field
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
