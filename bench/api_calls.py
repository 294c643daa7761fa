"""API calls per operation against N machines, counted where they arrive: at the RunPod and
Tailscale API stand-ins, with the real (Go-built) engine running the real program and plugins.

Operations: `up` from scratch, then on the unchanged stack `preview`, a no-op `up` and
`refresh` (each with `--expect-no-changes`). Lookups are the calls that list: RunPod's
listPods and listNetworkVolumes and Tailscale's device list (`GET devices`, filtered or not);
in a preview their number must not grow with N.

- N = 1 and 5, "sandbox": standins/sandbox.py as `make demo` runs it, pods that really run the
  bootstrap and join headscale;
- N = 5 and 100, "records": the same engine, program, plugins and API stand-ins, but the
  RunPod stand-in keeps pods as records that run at once (no processes), and the Tailscale API
  stand-in serves from memory N devices that exist from the start, as if each pod had joined
  (`HeadscaleRecords` in place of a headscale). A sandbox with 100 real pods is too heavy for
  this machine; N = 5 both ways shows that the two count the same.

Machines are the sandbox stack's machine (a network volume each), named coral-m0, coral-m1, ...

    .venv/bin/python -m bench.api_calls [--quick]
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

from bench.measure import command_line, table
from coral_infra.settings import load_stack
from standins.headscale import Headscale
from standins.runpod_api import RunPodStandin
from standins.runpod_records import DEFAULT_GPU_TYPES
from standins.sandbox import (
    EXTRA_GPU_TYPES,
    RUNPOD_API_KEY,
    SANDBOX_STACK,
    TAILSCALE_API_KEY,
    Sandbox,
    ensure_tools,
    open_sandbox,
    start_sandbox,
)
from standins.tailscale_api import TailscaleApiStandin
from standins.testbed import Testbed

OPERATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("up from scratch", ("up", "--yes")),
    ("preview", ("preview", "--expect-no-changes")),
    ("no-op up", ("up", "--yes", "--expect-no-changes")),
    ("refresh", ("refresh", "--yes", "--expect-no-changes")),
)
RUNPOD_LOOKUPS = frozenset({"listPods", "listNetworkVolumes"})
DOMAIN = "coral.test"
# (mode, N) in the order they run; --quick runs the first only.
RUNS = (("sandbox", 1), ("sandbox", 5), ("records", 5), ("records", 100))


def hostname(index: int) -> str:
    return f"coral-m{index}"


# --- the Tailscale side without a headscale ---------------------------------------------------


@dataclass
class HeadscaleRecords:
    """What the Tailscale API stand-in asks of its headscale (standins/tailscale_api.py's
    HeadscaleCli), answered from memory: nodes in the JSON of `headscale nodes list`, one per
    hostname, online and tagged, as if every pod had joined with the stack's key."""

    hostnames: Sequence[str]
    tag: str
    base_domain: str = DOMAIN
    _nodes: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        for index, name in enumerate(self.hostnames):
            self._nodes.append(
                {
                    "id": str(next(self._ids)),
                    "name": name,
                    "given_name": name,
                    "ip_addresses": [f"100.64.{index // 250}.{index % 250 + 1}"],
                    "user": {"name": "tagged-devices"},
                    "tags": [self.tag],
                    "online": True,
                    "created_at": {"seconds": 1_764_000_000},
                }
            )

    def create_key(
        self, *, reusable: bool, ephemeral: bool, tags: Sequence[str], expiry_s: int
    ) -> dict[str, Any]:
        number = next(self._ids)
        return {"id": str(number), "key": f"hskey-auth-records{number:04d}"}

    def expire_key(self, key_id: str) -> None:
        return None

    def nodes(self) -> list[dict[str, Any]]:
        return [dict(node) for node in self._nodes]

    def tag_node(self, node_id: str, tags: Sequence[str]) -> None:
        for node in self._nodes:
            if node["id"] == node_id:
                node["tags"] = list(tags)

    def delete_node(self, node_id: str) -> None:
        self._nodes = [node for node in self._nodes if node["id"] != node_id]


@dataclass(frozen=True)
class LoginServer:
    """The only part of a headscale the stack's config needs when no pod ever logs in."""

    url: str = "http://127.0.0.1:9"


def start_records(testbed: Testbed, bin_dir: Any, machines: int, stack: str) -> Sandbox:
    """The sandbox with pods as records and devices from memory (see the module docstring)."""
    settings = load_stack(SANDBOX_STACK)
    tests = settings.tailnet.policy.tests
    assert tests is not None
    tailscale_api = TailscaleApiStandin(
        api_key=TAILSCALE_API_KEY,
        headscale=cast(
            Any,
            HeadscaleRecords([hostname(i) for i in range(machines)], settings.tailnet.machine_tag),
        ),
        roles={tests.allowed: "owner", tests.denied: "member"},
    ).start()
    runpod = RunPodStandin(RUNPOD_API_KEY, gpu_types=(*DEFAULT_GPU_TYPES, *EXTRA_GPU_TYPES)).start()
    # Enough GPUs of every type for the whole fleet (the stand-in's default stock is small).
    runpod.free_gpus.update({offer.id: max(16, machines) for offer in runpod.gpu_types.values()})
    return open_sandbox(
        testbed,
        bin_dir,
        headscale=cast(Headscale, LoginServer()),
        owner=(tests.allowed, 0),
        member=(tests.denied, 0),
        tailscale_api=tailscale_api,
        runpod=runpod,
        stack=stack,
    )


def set_machines(sandbox: Sandbox, machines: int) -> None:
    """The stack's machine repeated `machines` times (hostnames coral-m0 ...), in its file."""
    path = sandbox.project_dir / "stacks" / f"Pulumi.{sandbox.stack}.yaml"
    document = yaml.safe_load(path.read_text())
    template = document["config"]["coral:machines"][0]
    document["config"]["coral:machines"] = [
        {**template, "hostname": hostname(i)} for i in range(machines)
    ]
    path.write_text(yaml.safe_dump(document, sort_keys=False))


# --- counting -----------------------------------------------------------------------------------

_ID = re.compile(r"^(?:n?\d+(?:CNTRL)?|k\d+CNTRL)$")


def tailscale_call(method: str, path: str) -> str:
    """A Tailscale API call by kind: ids and the tailnet left out, a filter named, not valued."""
    route, _, query = path.partition("?")
    parts = [p for p in route.split("/") if p]
    if parts[:1] == ["tailnet"]:
        parts = parts[2:]
    parts = ["{id}" if _ID.match(p) else p for p in parts]
    filters = sorted({pair.split("=", 1)[0] for pair in query.split("&") if pair})
    shown = "/".join(parts) + (f"?{','.join(filters)}=" if filters else "")
    return f"{method} {shown}"


@dataclass(frozen=True)
class Counted:
    operation: str
    mode: str
    machines: int
    runpod: Counter[str]
    tailscale: Counter[str]

    @property
    def runpod_lookups(self) -> int:
        return sum(n for op, n in self.runpod.items() if op in RUNPOD_LOOKUPS)

    @property
    def device_lists(self) -> int:
        return sum(n for call, n in self.tailscale.items() if call.startswith("GET devices"))


def _drain(sandbox: Sandbox) -> tuple[Counter[str], Counter[str]]:
    runpod = Counter(call.op for call in sandbox.runpod.calls)
    sandbox.runpod.reset_calls()
    tailscale = Counter(tailscale_call(m, p) for m, p in sandbox.tailscale_api.calls)
    sandbox.tailscale_api.calls.clear()
    return runpod, tailscale


def count(mode: str, machines: int, bin_dir: Any) -> list[Counted]:
    testbed = Testbed.create()
    stack = f"calls{machines}"
    if mode == "sandbox":
        sandbox = start_sandbox(testbed, bin_dir, stack=stack)
    else:
        sandbox = start_records(testbed, bin_dir, machines, stack)
    found = []
    try:
        set_machines(sandbox, machines)
        _drain(sandbox)
        for operation, args in OPERATIONS:
            sandbox.pulumi(*args, "--suppress-progress", timeout_s=1800)
            runpod, tailscale = _drain(sandbox)
            found.append(Counted(operation, mode, machines, runpod, tailscale))
        sandbox.destroy()
    except BaseException:
        print("\n".join(sandbox.history[-2:])[-6000:])
        raise
    finally:
        sandbox.close()
    return found


def _calls(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items()))


def report(counted: Sequence[Counted]) -> str:
    headers = [
        "operation",
        "N",
        "how",
        "RunPod",
        "RunPod lookups",
        "Tailscale",
        "device lists",
        "RunPod calls",
        "Tailscale calls",
    ]
    rows = [
        [
            c.operation,
            str(c.machines),
            c.mode,
            str(sum(c.runpod.values())),
            str(c.runpod_lookups),
            str(sum(c.tailscale.values())),
            str(c.device_lists),
            _calls(c.runpod),
            _calls(c.tailscale),
        ]
        for c in sorted(counted, key=lambda c: [o for o, _ in OPERATIONS].index(c.operation))
    ]
    return (
        "API calls per operation, counted at the stand-ins (real engine, program and plugins; "
        "lookups = listPods, listNetworkVolumes, GET devices)\n" + table(headers, rows)
    )


def preview_lookups(counted: Sequence[Counted]) -> str:
    """Whether a preview's lookups stay the same from the smallest to the largest N."""
    previews = sorted((c for c in counted if c.operation == "preview"), key=lambda c: c.machines)
    if len(previews) < 2:
        return ""
    first, last = previews[0], previews[-1]
    same = (first.runpod_lookups, first.device_lists) == (last.runpod_lookups, last.device_lists)
    return (
        f"preview lookups at N={first.machines}: RunPod {first.runpod_lookups}, device lists "
        f"{first.device_lists}; at N={last.machines}: RunPod {last.runpod_lookups}, device "
        f"lists {last.device_lists}: {'independent of N' if same else 'GROW WITH N'}"
    )


def run(*, quick: bool) -> str:
    bin_dir = ensure_tools()
    counted: list[Counted] = []
    for mode, machines in RUNS[:1] if quick else RUNS:
        counted += count(mode, machines, bin_dir)
    return "\n".join(filter(None, [report(counted), preview_lookups(counted)]))


def main() -> None:
    command_line(run, __doc__ or "")


if __name__ == "__main__":
    main()
