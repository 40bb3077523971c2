"""Codegen cost on 200 contracts, against datamodel-code-generator alone on the same models.

Run with `make bench`. The 200 contracts are the example shop's nine, renamed into 20
namespaces of 10 tasks. Measured in one process, after one warm-up run of each:

- codegen, cold: contracts -> models and typed stubs, no cache (what a first run does);
- the baseline: datamodel-code-generator's `generate()` alone on each namespace's models
  (its definitions plus each task's parameters and return value), the part of the work
  any Pydantic codegen has to do;
- regenerating after one contract of the 200 changed: read the folder, generate with the
  on-disk model cache, compare, write what changed (what `taskschema codegen` does).
"""

from __future__ import annotations

import copy
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codegen import apply, from_folders, generate, plan
from codegen._pydantic import _options, generator_input
from codegen._schema import plan as plan_namespaces

ROOT = Path(__file__).resolve().parents[2]
COUNT = 200
PER_NAMESPACE = 10
TARGET_RATIO = 1.2
TARGET_INCREMENTAL_S = 1.0


def write_contracts(folder: Path) -> None:
    examples = [
        json.loads(path.read_text()) for path in sorted((ROOT / "schemas" / "shop").rglob("*.json"))
    ]
    for index in range(COUNT):
        document = copy.deepcopy(examples[index % len(examples)])
        namespace = f"ns{index // PER_NAMESPACE:02d}"
        document["task"] = f"{namespace}.{document['task'].split('.')[-1]}_{index % PER_NAMESPACE}"
        target = folder / namespace / f"{document['task'].split('.')[-1]}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, indent=2))


def timed(function: Callable[[], Any], repeat: int) -> float:
    function()  # warm-up: imports and the generator's first-call set-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    from datamodel_code_generator import generate as dcg_generate

    with tempfile.TemporaryDirectory() as tmp:
        folder, out, cache = Path(tmp) / "contracts", Path(tmp) / "out", Path(tmp) / "cache"
        write_contracts(folder)
        sources = from_folders([folder])
        namespaces = plan_namespaces(sources)
        inputs = [generator_input(namespace) for namespace in namespaces]

        def baseline() -> None:
            for schema in inputs:
                dcg_generate(copy.deepcopy(schema), **_options())

        def cold() -> None:
            generate(sources)

        base = timed(baseline, repeat=3)
        full = timed(cold, repeat=3)

        apply(plan(out, generate(sources, cache=cache).files))
        changed = sorted((folder / "ns07").glob("*.json"))[3]
        original = changed.read_text()

        def regenerate(step: list[int] = [0]) -> tuple[int, float]:  # noqa: B006
            step[0] += 1
            document = json.loads(original)
            document["description"] = f"Changed {step[0]} times."
            changed.write_text(json.dumps(document))
            start = time.perf_counter()
            result = plan(out, generate(from_folders([folder]), cache=cache).files)
            apply(result)
            return len(result.stale), time.perf_counter() - start

        regenerate()  # warm
        runs = [regenerate() for _ in range(5)]
        rewritten = runs[-1][0]
        incremental = statistics.median(seconds for _, seconds in runs)
        shutil.rmtree(out)

    ratio = full / base
    print(f"codegen, {COUNT} contracts in {len(namespaces)} namespaces (median of 3)")
    print(f"  baseline: datamodel-code-generator alone  {base:8.2f} s")
    print(f"  codegen: models + typed stubs, no cache    {full:8.2f} s  x{ratio:.2f} of baseline")
    print(f"  target: x{TARGET_RATIO} or less -> {'met' if ratio <= TARGET_RATIO else 'MISSED'}")
    print(
        f"  regenerate after 1 of {COUNT} changed     {incremental:8.2f} s  "
        f"({rewritten} files rewritten)"
    )
    verdict = "met" if incremental <= TARGET_INCREMENTAL_S else "MISSED"
    print(f"  target: {TARGET_INCREMENTAL_S:.0f} s or less -> {verdict}")


if __name__ == "__main__":
    main()
