"""`make bench`: every benchmark of bench.BENCHMARKS in one run, each report as it finishes.

    .venv/bin/python -m bench [--quick] [--only bench.engine ...]

Modules are imported one at a time, when their turn comes: one that cannot be imported (a
missing tool) or fails is reported as such and the suite goes on; the exit status is 1 then.
A goal that is missed is part of a report, not a failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback

from bench import BENCHMARKS


def machine() -> str:
    """What the figures were measured on."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                model,
            )
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {total_kib / 2**20:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
        f"load average at start {load}"
    )


def run_one(name: str, quick: bool) -> tuple[str, bool]:
    """The module's report, or why there is none; and whether it ran."""
    try:
        module = importlib.import_module(name)
    except Exception as error:
        return f"{name}: cannot be imported ({type(error).__name__}: {error}): skipped", False
    try:
        return str(module.run(quick=quick)), True
    except Exception:
        return f"{name}: failed:\n{traceback.format_exc()}", False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark on a tiny size")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, metavar="MODULE", help="these benchmarks only"
    )
    args = parser.parse_args()
    print(f"make bench on {machine()}", flush=True)
    all_ran = True
    for name in args.only or BENCHMARKS:
        began = time.monotonic()
        print(f"\n== {name} ...", flush=True)
        report, ran = run_one(name, args.quick)
        all_ran = all_ran and ran
        print(f"{report}\n({name}: {time.monotonic() - began:.0f} s)", flush=True)
    sys.exit(0 if all_ran else 1)


if __name__ == "__main__":
    main()
