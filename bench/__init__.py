"""Benchmarks: each figure printed next to its baseline as a ratio, measured in one run
(`make bench`, i.e. `python -m bench`). Not part of `make test`; tests/test_bench.py runs each
one on a tiny size.

Every module listed in BENCHMARKS exposes `run(*, quick: bool) -> str` (its report: tables of
figures, baselines and ratios, built with bench/measure.py) and a `main()` of its own.
"""

BENCHMARKS = (
    "bench.evaluation",
    "bench.engine",
    "bench.api_calls",
    "bench.bootstrap_vs_containerboot",
)
