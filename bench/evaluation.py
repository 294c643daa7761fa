"""Program evaluation under Pulumi's mocks at 1, 20, 100 and 500 machines: `__main__.py` against
the yardstick (bench/yardstick.py, a plain Pulumi program registering the same resources).

Each run is a process of its own (fresh imports, heap and garbage collector), the two programs
interleaved size by size, the order flipped every round. Figures:
- the time of one evaluation at each size (the program's imports included);
- the cost per machine: (time at N - time at 1) / (N - 1), within each round; the goal is the
  one at 500 machines, at most 1.2x the yardstick's;
- linearity: the cost per machine from 100 to 500 machines against the one from 1 to 100 (a
  cyclic garbage collector scanning the growing heap shows as a ratio well above 1); goal at
  most 1.25;
- memory per machine: the run's peak resident memory above the process's, per machine the
  same way; goal at most 1.2x the yardstick's.

    .venv/bin/python -m bench.evaluation [--quick] [--runs N]
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.fleet import Evaluation, FleetInputs, evaluate_in_process, live_policy
from bench.measure import Ratio, Sample, command_line, interleaved, per_round, ratio_table

SIZES = (1, 20, 100, 500)
QUICK_SIZES = (1, 3)
RUNS = 3
PROGRAMS = ("ours", "yardstick")
PER_MACHINE_GOAL = 1.2
MEMORY_GOAL = 1.2
LINEARITY_GOAL = 1.25


def measure(sizes: tuple[int, ...], runs: int) -> dict[tuple[str, int], list[Evaluation]]:
    """Every (program, size) evaluated `runs` times, interleaved."""
    found: dict[tuple[str, int], list[Evaluation]] = {(p, n): [] for p in PROGRAMS for n in sizes}
    with tempfile.TemporaryDirectory(prefix="coral-bench-") as directory:
        policy = live_policy()
        inputs = {n: FleetInputs.write(Path(directory), n, policy) for n in sizes}

        def subject(program: str, size: int) -> Callable[[], float]:
            def once() -> float:
                result = evaluate_in_process(program, size, inputs[size])
                found[(program, size)].append(result)
                return result.seconds

            return once

        interleaved({f"{p} {n}": subject(p, n) for n in sizes for p in PROGRAMS}, runs=runs)
    return found


def _sample(runs: list[Evaluation], field: str) -> Sample:
    return Sample(tuple(float(getattr(run, field)) for run in runs))


def _per_machine(
    found: dict[tuple[str, int], list[Evaluation]], program: str, low: int, high: int, field: str
) -> Sample:
    return per_round(
        [_sample(found[(program, high)], field), _sample(found[(program, low)], field)],
        lambda at_high, at_low: (at_high - at_low) / (high - low),
    )


def figures(found: dict[tuple[str, int], list[Evaluation]], sizes: tuple[int, ...]) -> list[Ratio]:
    smallest, largest = sizes[0], sizes[-1]
    ratios = [
        Ratio(
            f"evaluation, {n} machine(s)",
            _sample(found[("ours", n)], "seconds"),
            _sample(found[("yardstick", n)], "seconds"),
        )
        for n in sizes
    ]
    per_machine = (
        ("time", "seconds", PER_MACHINE_GOAL, "ms"),
        ("memory", "peak_bytes", MEMORY_GOAL, "KiB"),
    )
    for what, field, goal, unit in per_machine:
        ratios += [
            Ratio(
                f"{what} per machine, {smallest} -> {n}",
                _per_machine(found, "ours", smallest, n, field),
                _per_machine(found, "yardstick", smallest, n, field),
                goal=goal if n == largest else None,
                unit=unit,
            )
            for n in sizes[1:]
        ]
    if len(sizes) >= 4:
        early, late = (sizes[0], sizes[-2]), (sizes[-2], sizes[-1])
        for program in PROGRAMS:
            ratios.append(
                Ratio(
                    f"linearity ({program}): per machine {late[0]} -> {late[1]} / "
                    f"{early[0]} -> {early[1]}",
                    _per_machine(found, program, *late, "seconds"),
                    _per_machine(found, program, *early, "seconds"),
                    goal=LINEARITY_GOAL if program == "ours" else None,
                    unit="ms",
                )
            )
    return ratios


def registrations(found: dict[tuple[str, int], list[Evaluation]], size: int) -> str:
    """What each program registered and invoked at `size` machines (the mirror, checked)."""
    lines = []
    for program in PROGRAMS:
        run = found[(program, size)][0]
        invokes = ", ".join(f"{t.split(':')[-1]} {c}" for t, c in sorted(run.invokes.items()))
        lines.append(f"  {program}: {sum(run.registered.values())} resources; invokes: {invokes}")
    return f"registered at {size} machine(s):\n" + "\n".join(lines)


def run(*, quick: bool, runs: int | None = None) -> str:
    sizes = QUICK_SIZES if quick else SIZES
    found = measure(sizes, runs or (1 if quick else RUNS))
    title = (
        "Program evaluation under mocks (`__main__.py` vs the plain-Pulumi yardstick, "
        "bench/yardstick.py; one process per run)"
    )
    report = ratio_table(title, "ours", "yardstick", figures(found, sizes))
    return f"{report}\n{registrations(found, sizes[-1])}"


def main() -> None:
    command_line(run, __doc__ or "", RUNS)


if __name__ == "__main__":
    main()
