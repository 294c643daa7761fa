"""A deployed stack's machines from the user's computer: `coral start`, `coral stop` and
`coral status` (coral_infra/cli.py runs them).

Where each thing comes from (what a user has; the state file is never read directly):
- the stack's machines and their pods: the stack's outputs (`pulumi stack output --json`,
  `machines.<hostname>.podId`). A pod gone from there (migrated to a new id) is found by its
  unique name `<hostname>-<stack>`, as `pulumi up` finds it;
- the RunPod API key: `RUNPOD_API_KEY`, else the stack's secret `coral:runpodApiKey` (from
  `pulumi config --json --show-secrets`, decrypted by Pulumi, never printed); the wire format
  from `coral:runpod` and the host from `RUNPOD_API_BASE_URL`, as the providers read them;
- a machine's tailnet state: this computer's `tailscale status --json`, i.e. whether you can
  reach it from here.
Starting and stopping run `coral_infra.runpod.lifecycle`, the code `pulumi up` runs, so the
waits and the messages (no free GPU on the host, not back online) are the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from coral_infra.runpod import api, lifecycle

Progress = Callable[[str], None]


class FleetError(Exception):
    """A failure the user can act on; the message says how."""


def parse_target(text: str) -> tuple[str, str]:
    """`STACK/HOST` -> (stack, hostname)."""
    stack, _, host = text.partition("/")
    if not stack or not host or "/" in host:
        raise FleetError(f"got {text!r}; name a machine as STACK/HOSTNAME, e.g. dev/coral-dev")
    return stack, host


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """A value of `pulumi config --json` (each key maps to {"value": ..., "secret": ...})."""
    entry = config.get(key)
    return entry.get("value") if isinstance(entry, Mapping) else entry


def configure_runpod(stack: str, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """Point the adapter at RunPod with the user's key and the stack's wire format."""
    key = env.get(api.API_KEY_ENV) or config_value(config, api.API_KEY_CONFIG)
    if not key:
        raise FleetError(
            f"no RunPod API key: export {api.API_KEY_ENV}, or set it on the stack with "
            f"`pulumi config set --stack {stack} --secret {api.API_KEY_CONFIG} <key>`"
        )
    try:
        api.configure(key, api.api_choice(config_value(config, api.API_CONFIG)))
    except api.RunPodError as exc:
        raise FleetError(str(exc)) from None


def machine_pods(stack: str, outputs: Mapping[str, Any]) -> dict[str, str | None]:
    """Hostname -> the pod id `up` recorded, from the stack's `machines` output."""
    machines = outputs.get("machines")
    if not isinstance(machines, Mapping) or not machines:
        raise FleetError(
            f"stack {stack!r} has no machines in its outputs (not deployed yet?); run "
            f"`pulumi up --stack {stack}` first"
        )
    return {
        str(host): (str(m["podId"]) if isinstance(m, Mapping) and m.get("podId") else None)
        for host, m in machines.items()
    }


def find_pod(stack: str, host: str, outputs: Mapping[str, Any]) -> api.PodInfo:
    """The machine's live pod: by the id in the outputs, else by its unique name."""
    pods = machine_pods(stack, outputs)
    if host not in pods:
        raise FleetError(
            f"stack {stack!r} has no machine {host!r}; its machines: {', '.join(sorted(pods))}"
        )
    pod_id, name = pods[host], lifecycle.unique_name(stack, host)
    pod = api.get_pod(pod_id) if pod_id else None
    pod = pod or api.find_pod_by_name(name)
    if pod is None:
        looked = pod_id or "no id in the outputs"
        raise FleetError(
            f"{host} of stack {stack!r} has no pod at RunPod ({looked}, and no pod named "
            f"{name!r}): it was terminated; `pulumi up --stack {stack}` creates it again"
        )
    return pod


def start(stack: str, host: str, outputs: Mapping[str, Any], progress: Progress) -> str:
    """Start the machine's pod and wait until it is online on the tailnet again."""
    pod = find_pod(stack, host, outputs)
    if lifecycle.observed(pod) == lifecycle.RUNNING:
        return f"{host} (pod {pod.id}) is already running"
    pod = lifecycle.start_machine(pod.id, hostname=host, progress=progress)
    return f"{host} (pod {pod.id}) is running again{_price(pod)}: same device, IPs and SSH config"


def stop(stack: str, host: str, outputs: Mapping[str, Any], progress: Progress) -> str:
    """Stop the machine's pod; its volume and tailnet identity stay."""
    pod = find_pod(stack, host, outputs)
    if lifecycle.observed(pod) == lifecycle.STOPPED:
        return f"{host} (pod {pod.id}) is already stopped"
    pod = lifecycle.stop_machine(pod.id, hostname=host, progress=progress)
    return (
        f"{host} (pod {pod.id}) is stopped: its GPU no longer bills; its volume, and the "
        "tailnet identity on it, stays (and bills as storage). Bring it back with "
        f"`coral start {stack}/{host}` or `pulumi up --stack {stack}`"
    )


def _price(pod: api.PodInfo) -> str:
    return f" at ${pod.cost_per_hr:.2f}/h" if pod.cost_per_hr else ""


# --- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A device as this computer's tailscaled sees it."""

    dns_name: str
    online: bool
    addresses: tuple[str, ...]
    last_seen: str


def tailnet_peers(status_json: str) -> list[Peer]:
    """The peers of `tailscale status --json`."""
    status = json.loads(status_json)
    peers = status.get("Peer") or {}
    return [
        Peer(
            dns_name=str(peer.get("DNSName") or "").rstrip("."),
            online=bool(peer.get("Online")),
            addresses=tuple(peer.get("TailscaleIPs") or ()),
            last_seen=str(peer.get("LastSeen") or ""),
        )
        for peer in peers.values()
        if isinstance(peer, Mapping)
    ]


def tailnet_state(host: str, machine: Mapping[str, Any], peers: list[Peer] | str) -> str:
    """What this computer's tailnet says of the machine (`peers`, or why they are unknown)."""
    if isinstance(peers, str):
        return peers
    wanted = str(machine.get("magicDnsName") or "")
    found = [p for p in peers if p.dns_name == wanted or p.dns_name.split(".")[0] == host]
    if not found:
        return "not a peer of this computer (not on this tailnet, or removed)"
    peer = next((p for p in found if p.dns_name == wanted), found[0])
    if peer.online:
        return f"online {' '.join(peer.addresses)}".rstrip()
    return f"offline (last seen {peer.last_seen or 'never'})"


def pod_state(pod: api.PodInfo | None) -> tuple[str, str]:
    """The pod's state and its price per hour, as RunPod reports them."""
    if pod is None:
        return "no pod (terminated? `pulumi up` recreates it)", "-"
    state = f"{pod.status or pod.desired_status} ({pod.id})"
    if lifecycle.observed(pod) == lifecycle.STOPPED:
        return state, "GPU not billed (stopped); the volume bills as storage"
    if pod.cost_per_hr is None:
        return state, "unknown"
    return state, f"${pod.cost_per_hr:.2f}/h"


def status_table(stack: str, outputs: Mapping[str, Any], peers: list[Peer] | str) -> list[str]:
    """One line per machine of the stack: pod state, price per hour, tailnet state."""
    machines = outputs.get("machines") or {}
    rows = [("MACHINE", "POD", "PRICE", "TAILNET (from this computer)")]
    for host in sorted(machine_pods(stack, outputs)):
        try:
            pod: api.PodInfo | None = find_pod(stack, host, outputs)
        except FleetError:
            pod = None
        state, price = pod_state(pod)
        rows.append((host, state, price, tailnet_state(host, machines.get(host) or {}, peers)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]])
        for row in rows
    ]
