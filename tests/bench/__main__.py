"""`make bench`: every benchmark, each comparing against a baseline measured in the same run."""

from __future__ import annotations

from . import bench_codegen, bench_compat, bench_decoder, bench_gateway

for benchmark in (bench_codegen, bench_compat, bench_decoder, bench_gateway):
    benchmark.main()
    print()
