"""Start-, restart- and stale-socket-restart-to-online of coral-machine: our bootstrap
(coral_infra/bootstrap/start.sh) against Tailscale's containerboot, on the same loopback
headscale, interleaved round by round.

A benchmark, not a test: it prints figures and ratios and asserts nothing about them. From the
repo root (the binaries are built on first use, see tools/build-binaries.sh):

    .venv/bin/python -m bench.bootstrap_vs_containerboot --rounds 7

`--before FILE` adds another version of start.sh as a third side (e.g. `git show
main:coral_infra/bootstrap/start.sh > /tmp/start-main.sh`): before/after in one run.

Each round runs, for each side in turn (the side going first rotates):
- start: a new device, first boot with a tagged reusable auth key;
- restart: the same state dir after a clean stop (SIGTERM: tailscaled removes its socket),
  with no key, as a pod restart is;
- stale restart: the same after SIGKILL of everything (a crash, an OOM kill): tailscaled's
  socket file survives in its directory, as /var/run/tailscale does when the container's disk
  is kept. Nothing answers on it, and the boot must not wait for that to become clear.

"Online" = tailscaled's LocalAPI says Running with tailnet IPs and Tailscale SSH is on (both
sides are asked for SSH: containerboot through `--ssh` in TS_EXTRA_ARGS). The report also
says where the time goes: when the LocalAPI first answered and when the backend was Running.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Ratio, Sample, ratio_table
from coral_infra.bootstrap import SCRIPT_PATH
from standins.binaries import ensure_binaries
from standins.tailnet_testbed import Tailnet, load_tailnet_plan, start_tailnet
from standins.tailscale_node import (
    TailscaleNode,
    start_bootstrap,
    start_containerboot,
)
from standins.testbed import Testbed

ONLINE_TIMEOUT_S = 60.0
# Fine polling while a restart may come online (tens of milliseconds), coarse afterwards so
# the LocalAPI calls do not load the daemons being timed.
POLL_FINE_S, POLL_COARSE_S, FINE_FOR_S = 0.002, 0.02, 0.25
DEFAULT_ROUNDS = 7
QUICK_ROUNDS = 1
PHASES = ("start", "restart", "stale restart")
# A restarted pod is online no later than containerboot would have it (issue 14's goal).
GOALS = {"restart": 1.0, "stale restart": 1.0}

Starter = Callable[[Testbed, Path, Tailnet, Path, str, str | None], TailscaleNode]


def boot_bootstrap(
    bed: Testbed,
    bin_dir: Path,
    net: Tailnet,
    state: Path,
    name: str,
    key: str | None,
    script: Path = SCRIPT_PATH,
) -> TailscaleNode:
    env = {"TS_HOSTNAME": name}
    if key is not None:
        env["TS_AUTHKEY"] = key
    return start_bootstrap(
        bed, bin_dir, net.headscale, state, name, env, script=script, own_var_run=True
    )


def boot_containerboot(
    bed: Testbed, bin_dir: Path, net: Tailnet, state: Path, name: str, key: str | None
) -> TailscaleNode:
    return start_containerboot(
        bed, bin_dir, net.headscale, state, name, key, extra_up_args=("--ssh", f"--hostname={name}")
    )


REFERENCE = "containerboot"
SIDES: dict[str, Starter] = {"bootstrap": boot_bootstrap, REFERENCE: boot_containerboot}


@dataclass(frozen=True)
class Boot:
    """Seconds from spawning the boot process to each milestone."""

    answered_s: float
    """tailscaled's LocalAPI first answered on the socket."""
    running_s: float
    """BackendState Running with tailnet IPs."""
    online_s: float
    """Running and Tailscale SSH on: the figure compared."""


def watch_boot(node: TailscaleNode, began: float, what: str) -> Boot:
    """Polls the node's LocalAPI (never the CLI, which waits seconds on a dead socket) until
    it is online; raises with the boot's log if that takes longer than ONLINE_TIMEOUT_S.

    Each milestone is timed at the status answer that first shows it; "online" is the first
    answer showing Running with IPs for which the prefs asked right after have SSH on (the
    prefs call itself can take tens of ms while tailscaled starts, on both sides alike)."""
    answered = running = None
    while (now := time.monotonic()) - began < ONLINE_TIMEOUT_S:
        status = node.status()
        seen = time.monotonic() - began
        if status is not None:
            answered = answered if answered is not None else seen
            up = status.get("BackendState") == "Running"
            if up and (status.get("Self") or {}).get("TailscaleIPs"):
                running = running if running is not None else seen
                prefs = node.local_api("/localapi/v0/prefs") or {}
                if prefs.get("RunSSH"):
                    return Boot(answered, running, seen)
        time.sleep(POLL_FINE_S if now - began < FINE_FOR_S else POLL_COARSE_S)
    raise TimeoutError(
        f"{what}: not online after {ONLINE_TIMEOUT_S:.0f}s:\n{node.daemon.log()[-4000:]}"
    )


def boot_three_ways(
    bed: Testbed, bin_dir: Path, net: Tailnet, side: str, starter: Starter, key: str, round_no: int
) -> dict[str, Boot]:
    """One round of one side: start, restart after a clean stop, restart after SIGKILL."""
    name = f"{side}-{round_no}"
    state = bed.path(f"{name}-state")
    boots: dict[str, Boot] = {}
    for phase in PHASES:
        began = time.monotonic()
        node = starter(bed, bin_dir, net, state, name, key if phase == "start" else None)
        boots[phase] = watch_boot(node, began, f"{name} {phase}")
        if phase == "start":
            node.daemon.stop()
            if node.socket.exists() or node.status() is not None:
                raise RuntimeError(f"{name}: the socket outlived a clean stop; timings would lie")
        elif phase == "restart":
            node.daemon.kill()
            if not node.socket.is_socket() or node.status() is not None:
                raise RuntimeError(f"{name}: no stale socket after SIGKILL; timings would lie")
        else:
            node.daemon.stop()
    shutil.rmtree(state, ignore_errors=True)
    return boots


def report(results: dict[str, list[dict[str, Boot]]], rounds: int, load: str) -> str:
    """Per side, each phase's seconds to online beside containerboot's, as ratios (below 1:
    faster than containerboot); then where the time goes."""
    title = (
        f"seconds to online on one headscale: {rounds} interleaved round(s) per side and "
        f"phase; {os.cpu_count()} CPUs, {load}"
    )
    reference = [[r[phase].online_s for r in results[REFERENCE]] for phase in PHASES]
    tables = [
        ratio_table(
            f"{side} vs {REFERENCE}, {title}",
            side,
            REFERENCE,
            [
                Ratio(
                    phase,
                    Sample(tuple(r[phase].online_s for r in rows)),
                    Sample(tuple(ref)),
                    goal=GOALS.get(phase),
                )
                for phase, ref in zip(PHASES, reference, strict=True)
            ],
        )
        for side, rows in results.items()
        if side != REFERENCE
    ]
    lines = [
        "where the time goes (medians, s from the boot process's start): "
        "LocalAPI answers -> Running -> online"
    ]
    for phase in PHASES:
        cells = []
        for side, rows in results.items():
            boots = [r[phase] for r in rows]
            answered = statistics.median(b.answered_s for b in boots)
            running = statistics.median(b.running_s for b in boots)
            online = statistics.median(b.online_s for b in boots)
            cells.append(f"{side} {answered:.3f} -> {running:.3f} -> {online:.3f}")
        lines.append(f"  {phase:<14} {';  '.join(cells)}")
    return "\n\n".join([*tables, "\n".join(lines)])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min)"


def run(*, quick: bool, rounds: int | None = None, before: Path | None = None) -> str:
    """Runs the benchmark and returns its report; `quick` = one round (a smoke run).
    `before`: another version of start.sh, measured as a third side."""
    rounds = rounds if rounds is not None else QUICK_ROUNDS if quick else DEFAULT_ROUNDS
    sides = dict(SIDES)
    if before is not None:
        sides["before"] = functools.partial(boot_bootstrap, script=before)
    bin_dir = ensure_binaries("tailscale", "tailscaled", "containerboot", "headscale")
    plan = load_tailnet_plan()
    bed = Testbed.create()
    results: dict[str, list[dict[str, Boot]]] = {side: [] for side in sides}
    load = _load()
    try:
        net = start_tailnet(bed, bin_dir, plan)
        key = net.headscale.create_auth_key(tags=[plan.dev.tag])
        for round_no in range(rounds):
            # Rotate who goes first so no side always runs on a warmer machine.
            order = list(sides)[round_no % len(sides) :] + list(sides)[: round_no % len(sides)]
            for side in order:
                boots = boot_three_ways(bed, bin_dir, net, side, sides[side], key, round_no)
                results[side].append(boots)
    except Exception as error:
        error.add_note(bed.logs()[-8000:])
        raise
    finally:
        bed.close()
    return report(results, rounds, f"{load} at the start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds (default {DEFAULT_ROUNDS})"
    )
    parser.add_argument("--quick", action="store_true", help="one round: a smoke run")
    parser.add_argument(
        "--before", type=Path, help="another version of start.sh, measured as a third side"
    )
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    if args.before is not None and not args.before.is_file():
        parser.error(f"--before {args.before}: no such file")
    rounds = None if args.quick else args.rounds
    print(run(quick=args.quick, rounds=rounds, before=args.before))


if __name__ == "__main__":
    main()
