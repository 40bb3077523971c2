"""The taskschema registry: a FastAPI service that versions task contracts."""

from ._app import create_app
from ._settings import RegistrySettings

__all__ = ["RegistrySettings", "create_app"]
