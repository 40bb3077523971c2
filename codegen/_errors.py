"""The one exception codegen raises on purpose."""

from __future__ import annotations

from taskschema import TaskSchemaError


class CodegenError(TaskSchemaError):
    """Input codegen cannot turn into code: a contract it cannot read, a name that is not
    a Python identifier, two tasks that would write the same file, a missing tool."""
