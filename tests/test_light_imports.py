"""A worker installs plain `taskschema`: importing it (or its Celery and kombu integrations)
loads none of the registry's or codegen's dependencies (DESIGN.md, dependency direction)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "datamodel_code_generator",
    "registry_service",
    "codegen",
)


@pytest.mark.parametrize("module", ["taskschema", "taskschema.celery", "taskschema.kombu"])
def test_the_runtime_imports_nothing_of_the_registry_or_codegen(module: str) -> None:
    # A fresh interpreter: this test process has long imported all of them.
    script = (
        f"import json, sys, {module}\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert module.split(".")[0] in loaded
    assert sorted(loaded.intersection(HEAVY)) == []
