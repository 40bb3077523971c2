"""`make bench`: every benchmark, each comparing against a baseline measured in the same run."""

from __future__ import annotations

from . import bench_compat

for benchmark in (bench_compat,):
    benchmark.main()
    print()
