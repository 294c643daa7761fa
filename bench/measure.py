"""What every benchmark shares: interleaved runs, their statistics, and figures printed next to
their baseline as ratios, in plain-text tables.

Why interleaved: on a shared machine the load drifts; running ours and the baseline one after
the other, in an order that flips every round (AB, BA, AB, ...), exposes both to the same
drift, so their ratio means something even when the absolute figures wander. Each figure shows
its minimum (the least disturbed run) and its median (the typical one), and how many runs.

    samples = interleaved({"ours": run_ours, "empty": run_empty}, runs=5)
    figure = Ratio("preview", samples["ours"], samples["empty"], goal=1.3)
    print(ratio_table("pulumi preview, 1 machine", "empty program", [figure]))

A benchmark module exposes `run(*, quick: bool) -> str` (its report) and `main()`; the suite
(`python -m bench`, `make bench`) runs every module in `bench.BENCHMARKS`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """The values of one figure over interleaved runs (seconds, bytes, calls ...)."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a sample needs at least one value")

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def runs(self) -> int:
        return len(self.values)

    def map(self, function: Callable[[float], float]) -> Sample:
        return Sample(tuple(map(function, self.values)))


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` took (wall clock)."""
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def interleaved(
    subjects: Mapping[str, Callable[[], float]], runs: int, *, warmup: int = 0
) -> dict[str, Sample]:
    """Run each subject `runs` times, round by round, the order reversed every other round.

    A subject returns its own measurement (e.g. `lambda: timed(preview)`), so it can time just
    the part that matters. `warmup` rounds run first and are not counted (caches, first
    imports)."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    names = list(subjects)
    values: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(warmup + runs):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            value = subjects[name]()
            if round_no >= warmup:
                values[name].append(value)
    return {name: Sample(tuple(found)) for name, found in values.items()}


def per_round(samples: Sequence[Sample], combine: Callable[..., float]) -> Sample:
    """A derived figure computed within each round from figures measured in that round (e.g.
    the cost per machine from the times at two fleet sizes), so the rounds stay paired."""
    counts = {sample.runs for sample in samples}
    if len(counts) != 1:
        raise ValueError("the samples must have the same number of runs")
    return Sample(
        tuple(combine(*values) for values in zip(*(s.values for s in samples), strict=True))
    )


@dataclass(frozen=True)
class Ratio:
    """One figure of ours beside its baseline; the ratio is ours / baseline."""

    figure: str
    ours: Sample
    baseline: Sample
    goal: float | None = None
    """The ratio (of medians) that must not be exceeded; None: shown for information."""
    unit: str = "s"
    """How values print: "s" (seconds), "ms", "MiB", "KiB" (values in bytes), or "" (counts)."""

    @property
    def ratio_min(self) -> float:
        return _ratio(self.ours.min, self.baseline.min)

    @property
    def ratio_median(self) -> float:
        return _ratio(self.ours.median, self.baseline.median)

    @property
    def holds(self) -> bool | None:
        """Whether the median ratio is within the goal (None without a goal)."""
        return None if self.goal is None else self.ratio_median <= self.goal

    def verdict(self) -> str:
        if self.goal is None:
            return ""
        return f"<= {self.goal:g}: {'holds' if self.holds else 'MISSED'}"


def _ratio(ours: float, baseline: float) -> float:
    if baseline == 0:
        return float("inf") if ours else 1.0
    return ours / baseline


def show(value: float, unit: str) -> str:
    """A value in its unit, with as many digits as a reader needs."""
    if unit == "s":
        return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"
    if unit == "ms":
        return f"{value * 1000:.2f} ms"
    if unit == "MiB":
        return f"{value / 2**20:.1f} MiB"
    if unit == "KiB":
        return f"{value / 2**10:.0f} KiB"
    return f"{value:g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def ratio_table(title: str, ours: str, baseline: str, ratios: Sequence[Ratio]) -> str:
    """Each figure: ours and the baseline (min, median), their ratios, runs and the goal."""
    headers = [
        "figure",
        f"{ours} min",
        f"{ours} median",
        f"{baseline} min",
        f"{baseline} median",
        "ratio min",
        "ratio median",
        "runs",
        "goal",
    ]
    rows = [
        [
            r.figure,
            show(r.ours.min, r.unit),
            show(r.ours.median, r.unit),
            show(r.baseline.min, r.unit),
            show(r.baseline.median, r.unit),
            f"{r.ratio_min:.2f}",
            f"{r.ratio_median:.2f}",
            str(min(r.ours.runs, r.baseline.runs)),
            r.verdict(),
        ]
        for r in ratios
    ]
    return f"{title}\n{table(headers, rows)}"


def missed(ratios: Sequence[Ratio]) -> list[Ratio]:
    """The figures whose goal did not hold."""
    return [r for r in ratios if r.holds is False]


def command_line(run: Callable[..., str], doc: str, default_runs: int | None = None) -> None:
    """A benchmark module's own `main()`: `--quick`, `--runs N` when it takes a number of runs
    (`default_runs`), and its report on stdout."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny size, one run")
    if default_runs is not None:
        parser.add_argument("--runs", type=int, help=f"runs per figure (default {default_runs})")
    args = parser.parse_args()
    options: dict[str, Any] = {"runs": args.runs} if default_runs is not None else {}
    print(run(quick=args.quick, **options))
