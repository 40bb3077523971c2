"""Small builders shared by the tests."""

from __future__ import annotations

from typing import Any


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
