"""`pulumi preview`, a no-op `pulumi up` and `pulumi refresh` of an unchanged 1-machine stack,
against the same commands on an empty Python program, with the real (Go-built) engine.

The stack is the sandbox's (standins/sandbox.py, what `make demo` runs): headscale, the
Tailscale and RunPod API stand-ins on loopback, one machine whose pod really runs the bootstrap
and joined the tailnet. The empty program is a project of its own whose `__main__.py` holds
nothing, on the same engine, language host, venv and backend. Ours and the empty program's
commands are interleaved, the order flipped every round; every command of ours passes
`--expect-no-changes`, so a figure can only come from a run that really changed nothing.

Goals (median ratios): preview <= 1.3x, no-op up <= 1.5x, refresh <= 2x the empty program's.
Needs root and `unshare` (pods run in their own mount namespace) and the Go-built tools.

The API stand-ins answer from this process (Python threads, the headscale CLI behind the
Tailscale one), on the same cores as the engine: the report adds how long they took to answer
each command of ours (the sum of their request times), a cost a real API pays in network
latency instead.

    .venv/bin/python -m bench.engine [--quick] [--runs N]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.measure import Ratio, command_line, interleaved, ratio_table, show, table, timed
from standins.binaries import REPO_ROOT
from standins.sandbox import Sandbox, ensure_tools, start_sandbox
from standins.testbed import Testbed

RUNS = 5
STACK = "bench"
EMPTY_STACK = "bench-empty"
# (figure, the command's arguments, goal)
COMMANDS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("preview", ("preview", "--expect-no-changes"), 1.3),
    ("no-op up", ("up", "--yes", "--expect-no-changes"), 1.5),
    ("refresh", ("refresh", "--yes", "--expect-no-changes"), 2.0),
)
EMPTY_PROGRAM = '"""Nothing: the floor of a Pulumi Python program on this engine."""\n'
# Provider plugins the engine starts, one after the other, per command of ours (the tailscale
# provider and the dynamic providers' `pulumi-python`, once per deployment: a preview is one, a
# no-op up and a refresh are two); the empty program starts none.
PLUGIN_LAUNCHES = {"preview": 2, "no-op up": 4, "refresh": 4}


@dataclass
class EmptyProject:
    """A Python project with an empty program beside the sandbox's, on the same backend."""

    sandbox: Sandbox
    directory: Path

    @classmethod
    def create(cls, sandbox: Sandbox) -> EmptyProject:
        directory = sandbox.testbed.path("empty-project")
        (directory / "Pulumi.yaml").write_text(
            "name: empty\n"
            "runtime:\n"
            "  name: python\n"
            "  options:\n"
            "    toolchain: pip\n"
            f"    virtualenv: {REPO_ROOT / '.venv'}\n"
        )
        (directory / "__main__.py").write_text(EMPTY_PROGRAM)
        project = cls(sandbox, directory)
        project.pulumi("stack", "init", EMPTY_STACK)
        return project

    def pulumi(self, *args: str) -> None:
        command = [str(self.sandbox.bin_dir / "pulumi"), *args, "--non-interactive"]
        done = subprocess.run(
            command,
            cwd=self.directory,
            env=self.sandbox.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"empty program: pulumi {' '.join(args)} failed:\n{done.stdout[-3000:]}"
                f"{done.stderr[-3000:]}"
            )


@dataclass
class StandinClock:
    """Sums the time the API stand-ins spend answering requests (their `handle`)."""

    busy: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, standin: Any) -> None:
        handle = standin.handle

        def timed_handle(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return handle(*args, **kwargs)
            finally:
                with self._lock:
                    self.busy += time.perf_counter() - began

        standin.handle = timed_handle

    def take(self) -> float:
        with self._lock:
            busy, self.busy = self.busy, 0.0
        return busy


def measure(
    sandbox: Sandbox, empty: EmptyProject, runs: int
) -> tuple[list[Ratio], dict[str, list[float]]]:
    clock = StandinClock()
    clock.watch(sandbox.runpod)
    clock.watch(sandbox.tailscale_api)
    ratios = []
    answering: dict[str, list[float]] = {}
    for figure, args, goal in COMMANDS:

        def ours(args: Sequence[str] = args, figure: str = figure) -> float:
            clock.take()
            took = timed(lambda: sandbox.pulumi(*args))
            answering.setdefault(figure, []).append(clock.take())  # the warmup run included
            return took

        def floor(args: Sequence[str] = args) -> float:
            return timed(lambda: empty.pulumi(*args))

        subjects: dict[str, Callable[[], float]] = {"ours": ours, "empty": floor}
        samples = interleaved(subjects, runs=runs, warmup=1)
        ratios.append(Ratio(figure, samples["ours"], samples["empty"], goal=goal))
    return ratios, answering


def plugin_launches(engine_log: str) -> list[float]:
    """Seconds from each provider plugin's launch to its first answer, from a `-v=9
    --logtostderr` log of the engine (JSON lines)."""
    launched: float | None = None
    found = []
    for line in engine_log.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        message = entry.get("msg", "")
        at = datetime.fromisoformat(entry["time"][:26].rstrip("Z")).timestamp()
        if "Launching plugin" in message and "(resource)" in message:
            launched = at
        elif launched is not None and "GetPluginInfo() executing" in message:
            found.append(at - launched)
            launched = None
    return found


def floor_table(sandbox: Sandbox, ratios: Sequence[Ratio]) -> str:
    """The empty program plus the plugin launches each command of ours cannot avoid."""
    args = ["preview", "--expect-no-changes", "-v=9", "--logtostderr"]
    launches = plugin_launches(sandbox.pulumi(*args).stderr)
    each = statistics.median(launches) if launches else 0.0
    rows = []
    for ratio in ratios:
        floor = ratio.baseline.median + PLUGIN_LAUNCHES[ratio.figure] * each
        rows.append(
            [
                ratio.figure,
                str(PLUGIN_LAUNCHES[ratio.figure]),
                show(floor, "s"),
                f"{floor / ratio.baseline.median:.2f}",
                f"{ratio.ours.median / floor:.2f}",
            ]
        )
    headers = [
        "command",
        "plugin launches",
        "empty program + launches",
        "that / empty",
        "ours / that",
    ]
    return (
        f"provider plugin launch, engine log: {show(each, 's')} each "
        f"({len(launches)} measured), one after the other\n{table(headers, rows)}"
    )


def run(*, quick: bool, runs: int | None = None) -> str:
    bin_dir = ensure_tools()
    testbed = Testbed.create()
    sandbox = start_sandbox(testbed, bin_dir, stack=STACK)
    try:
        sandbox.up()
        empty = EmptyProject.create(sandbox)
        empty.pulumi("up", "--yes")
        ratios, answering = measure(sandbox, empty, runs or (1 if quick else RUNS))
        floors = floor_table(sandbox, ratios)
        sandbox.destroy()
    except BaseException:
        print("\n".join(sandbox.history[-3:]))
        raise
    finally:
        sandbox.close()
    title = (
        "The engine on an unchanged 1-machine sandbox stack vs an empty Python program "
        "(Go-built pulumi, same language host, venv and backend)"
    )
    stand_ins = table(
        ["command of ours", "API stand-ins answering, median (sum of request times)"],
        [[name, show(statistics.median(times), "s")] for name, times in answering.items()],
    )
    return f"{ratio_table(title, 'ours', 'empty program', ratios)}\n{floors}\n{stand_ins}"


def main() -> None:
    command_line(run, __doc__ or "", RUNS)


if __name__ == "__main__":
    main()
