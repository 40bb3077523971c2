"""taskschema codegen: task contracts -> Pydantic models and typed task stubs (Python), or
types and typed send helpers for the Node producer (TypeScript).

    sources = from_folders([Path("schemas")], select=["orders.*"])
    output = generate(sources, lang="python")
    apply(plan(Path("shop_tasks"), output.files))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ._errors import CodegenError
from ._pydantic import cache_dir
from ._python import GeneratedTask, Output, Progress
from ._schema import plan as plan_namespaces
from ._sources import Source, from_folders, from_registry
from ._writer import Plan, apply, plan

Lang = Literal["python", "typescript"]

__all__ = [
    "CodegenError",
    "GeneratedTask",
    "Lang",
    "Output",
    "Plan",
    "Progress",
    "Source",
    "apply",
    "cache_dir",
    "from_folders",
    "from_registry",
    "generate",
    "plan",
]


def generate(
    sources: Sequence[Source],
    *,
    lang: Lang = "python",
    cache: Path | None = None,
    progress: Progress | None = None,
) -> Output:
    """Every file generated for `sources`, by path relative to the output folder.

    `cache` is a folder where generated models are kept by the hash of their input
    (`cache_dir()` is the usual one); None generates everything afresh. `progress` is
    called after each namespace with (done, total, namespace).
    Raises CodegenError for input that cannot become code.
    """
    namespaces = plan_namespaces(sources)
    if lang == "python":
        from ._python import generate_python

        return generate_python(namespaces, cache=cache, progress=progress)
    if lang == "typescript":
        from ._typescript import generate_typescript

        return generate_typescript(namespaces, progress=progress)
    raise CodegenError(f"unknown language {lang!r}: choose python or typescript")
