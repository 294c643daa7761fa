"""Start-to-online and restart-to-online of coral-machine: our bootstrap (coral_infra/bootstrap/
start.sh) against Tailscale's containerboot, on the same loopback headscale, round by round.

A benchmark, not a test: it prints numbers and ratios and asserts nothing. Run from the repo
root (the binaries are built on first use, see tools/build-binaries.sh):

    .venv/bin/python -m bench.bootstrap_vs_containerboot --rounds 5

"Online" = `tailscale status` says Running with tailnet IPs and Tailscale SSH is on (both sides
are asked for SSH: containerboot through `--ssh` in TS_EXTRA_ARGS). First boot uses a tagged
reusable auth key; the restart reuses the state dir with no key, as a pod restart does.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from standins.tailnet_testbed import (
    Tailnet,
    TailscaleNode,
    Testbed,
    ensure_binaries,
    load_tailnet_plan,
    start_bootstrap,
    start_containerboot,
    start_tailnet,
    wait_for,
)

ONLINE_TIMEOUT_S = 60


def online(node: TailscaleNode) -> bool | None:
    status = node.status()
    if not status or status.get("BackendState") != "Running":
        return None
    if not (status.get("Self") or {}).get("TailscaleIPs"):
        return None
    prefs = node.local_api("/localapi/v0/prefs") or {}
    return True if prefs.get("RunSSH") else None


Starter = Callable[[Testbed, Path, Tailnet, Path, str, str | None], TailscaleNode]


def boot_bootstrap(
    bed: Testbed, bin_dir: Path, net: Tailnet, state: Path, name: str, key: str | None
) -> TailscaleNode:
    env = {"TS_HOSTNAME": name}
    if key is not None:
        env["TS_AUTHKEY"] = key
    return start_bootstrap(bed, bin_dir, net.headscale, state, name, env)


def boot_containerboot(
    bed: Testbed, bin_dir: Path, net: Tailnet, state: Path, name: str, key: str | None
) -> TailscaleNode:
    return start_containerboot(
        bed, bin_dir, net.headscale, state, name, key, extra_up_args=("--ssh", f"--hostname={name}")
    )


SIDES: dict[str, Starter] = {"bootstrap": boot_bootstrap, "containerboot": boot_containerboot}


@dataclass
class Round:
    start_s: float
    restart_s: float


def measure(bed: Testbed, bin_dir: Path, net: Tailnet, side: str, key: str, round_no: int) -> Round:
    starter = SIDES[side]
    name = f"{side}-{round_no}"
    state = bed.path(f"{name}-state")
    began = time.monotonic()
    node = starter(bed, bin_dir, net, state, name, key)
    wait_for(f"{name} online", lambda: online(node), ONLINE_TIMEOUT_S, interval_s=0.02)
    start_s = time.monotonic() - began
    node.daemon.stop()
    if node.status() is not None:
        raise RuntimeError(f"{name}: the stopped tailscaled still answers; timings would lie")

    began = time.monotonic()
    node = starter(bed, bin_dir, net, state, f"{name}", None)
    wait_for(f"{name} online again", lambda: online(node), ONLINE_TIMEOUT_S, interval_s=0.02)
    restart_s = time.monotonic() - began
    node.daemon.stop()
    shutil.rmtree(state, ignore_errors=True)
    return Round(start_s, restart_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (default 5)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")

    bin_dir = ensure_binaries()
    plan = load_tailnet_plan()
    bed = Testbed.create()
    results: dict[str, list[Round]] = {side: [] for side in SIDES}
    try:
        net = start_tailnet(bed, bin_dir, plan)
        key = net.headscale.create_auth_key(tags=[plan.dev.tag])
        for round_no in range(args.rounds):
            # Alternate who goes first so neither side always runs on a warmer machine.
            order = list(SIDES) if round_no % 2 == 0 else list(reversed(SIDES))
            for side in order:
                results[side].append(measure(bed, bin_dir, net, side, key, round_no))
    except Exception:
        print(bed.logs()[-8000:])
        raise
    finally:
        bed.close()

    print(
        f"{'round':>5} | {'bootstrap start':>15} {'containerboot start':>19} | "
        f"{'bootstrap restart':>17} {'containerboot restart':>21}"
    )
    for i in range(args.rounds):
        ours, ref = results["bootstrap"][i], results["containerboot"][i]
        print(
            f"{i + 1:>5} | {ours.start_s:>14.2f}s {ref.start_s:>18.2f}s | "
            f"{ours.restart_s:>16.2f}s {ref.restart_s:>20.2f}s"
        )
    for phase in ("start_s", "restart_s"):
        ours_median = statistics.median(getattr(r, phase) for r in results["bootstrap"])
        ref_median = statistics.median(getattr(r, phase) for r in results["containerboot"])
        print(
            f"median {phase[:-2]:>7}: bootstrap {ours_median:.2f}s, containerboot "
            f"{ref_median:.2f}s, ratio bootstrap/containerboot {ours_median / ref_median:.2f}"
        )


if __name__ == "__main__":
    main()
