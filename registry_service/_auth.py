"""Bearer-token dependencies: who may read, publish, send tasks and administer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ._errors import InsufficientScope, InvalidToken, MissingToken
from ._settings import RegistrySettings
from ._store import Store, TokenInfo

bearer = HTTPBearer(auto_error=False, description="A token from `taskschema token create`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> RegistrySettings:
    settings: RegistrySettings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def authenticate(store: Store, credentials: HTTPAuthorizationCredentials | None) -> TokenInfo:
    """The live token the request carries; 401 without one, or for an unknown or revoked one."""
    if credentials is None:
        raise MissingToken("this request needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    token = store.find_token(credentials.credentials)
    if token is None or token.revoked:
        raise InvalidToken("the bearer token is unknown or revoked", headers=_CHALLENGE)
    return token


def check_scope(token: TokenInfo, scope: str) -> TokenInfo:
    """`token` if it holds `scope` (or `admin`, which holds every scope); 403 otherwise."""
    if scope not in token.scopes and "admin" not in token.scopes:
        raise InsufficientScope(
            f"token {token.name!r} lacks the {scope!r} scope "
            f"(it has: {', '.join(sorted(token.scopes))})"
        )
    return token


def require_scope(scope: str) -> Callable[[Store, Credentials], TokenInfo]:
    """A dependency admitting tokens with `scope` (or `admin`, which holds every scope)."""

    def dependency(store: StoreDep, credentials: Credentials) -> TokenInfo:
        return check_scope(authenticate(store, credentials), scope)

    return dependency


def read_access(
    store: StoreDep,
    settings: Annotated[RegistrySettings, Depends(get_settings)],
    credentials: Credentials,
) -> None:
    """Reads are open unless the registry requires a token for them; any valid token reads."""
    if settings.require_auth_for_reads:
        authenticate(store, credentials)
