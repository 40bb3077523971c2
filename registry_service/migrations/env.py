"""Alembic environment: migrations run on a connection handed over by `registry_service._db`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from registry_service._tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` run by hand: TASKSCHEMA_DATABASE_URL or the default
    from registry_service._settings import RegistrySettings

    engine = create_engine(RegistrySettings().database_url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
