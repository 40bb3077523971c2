"""Small builders shared by the tests."""

from __future__ import annotations

import socket
from typing import Any


def free_port() -> int:
    """A loopback port nothing listens on now: free to serve on, refused to connect to."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def make_contract(
    task: str,
    *,
    properties: dict[str, Any] | None = None,
    required: list[str] | None = None,
    returns: Any = None,
    description: str = "A test task.",
    **extra: Any,
) -> dict[str, Any]:
    """A minimal valid contract document for `task`."""
    properties = {"x": {"type": "integer"}} if properties is None else properties
    return {
        "task": task,
        "description": description,
        "params": {
            "type": "object",
            "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False,
        },
        "returns": {"type": "null"} if returns is None else returns,
        **extra,
    }
