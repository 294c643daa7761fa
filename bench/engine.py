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

    .venv/bin/python -m bench.engine [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Ratio, interleaved, ratio_table, timed
from standins.sandbox import Sandbox, ensure_tools, start_sandbox
from standins.tailnet_testbed import REPO_ROOT, Testbed

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


def measure(sandbox: Sandbox, empty: EmptyProject, runs: int) -> list[Ratio]:
    ratios = []
    for figure, args, goal in COMMANDS:

        def ours(args: Sequence[str] = args) -> float:
            return timed(lambda: sandbox.pulumi(*args))

        def floor(args: Sequence[str] = args) -> float:
            return timed(lambda: empty.pulumi(*args))

        subjects: dict[str, Callable[[], float]] = {"ours": ours, "empty": floor}
        samples = interleaved(subjects, runs=runs, warmup=1)
        ratios.append(Ratio(figure, samples["ours"], samples["empty"], goal=goal))
    return ratios


def run(*, quick: bool, runs: int | None = None) -> str:
    bin_dir = ensure_tools()
    testbed = Testbed.create()
    sandbox = start_sandbox(testbed, bin_dir, stack=STACK)
    try:
        sandbox.up()
        empty = EmptyProject.create(sandbox)
        empty.pulumi("up", "--yes")
        ratios = measure(sandbox, empty, runs or (1 if quick else RUNS))
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
    return ratio_table(title, "ours", "empty program", ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of each command")
    parser.add_argument("--runs", type=int, help=f"runs per command (default {RUNS})")
    args = parser.parse_args()
    print(run(quick=args.quick, runs=args.runs))


if __name__ == "__main__":
    main()
