"""The stack's machines checked against RunPod's catalog before anything exists, and their price.

`check_machines` is pure: machines and a catalog in, problems (reported like settings problems,
by key path with the closest valid ids), warnings (no stock right now) and prices out.
`coral_infra/preflight.py` runs it as one of its stages, before the program registers any
resource, so an unknown GPU type or data center stops even `pulumi up --skip-preview` before
the tailnet policy, the auth key or a billed volume exist, and it is reported together with
every other mistake of the stack. One catalog read per run (REST v2: `GET /v2/catalog/gpus?include=
AVAILABILITY&product=POD` per cloud the stack uses, and `GET /v2/catalog/datacenters`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from coral_infra.runpod import api
from coral_infra.settings import NAMESPACE, ConfigProblem, MachineSettings

MIN_VOLUME_GB = 10
"""RunPod's floor for network volumes and pod volumes (its OpenAPI document: minimum 10)."""
SUGGESTIONS = 3


@dataclass(frozen=True)
class MachinePrice:
    """What one machine costs per hour at RunPod's list price."""

    hostname: str
    gpu_type: str
    gpu_count: int
    cloud: str
    usd_per_hour: float

    def __str__(self) -> str:
        return (
            f"{self.hostname}: {self.gpu_count} x {self.gpu_type} in the {self.cloud} cloud: "
            f"${self.usd_per_hour:.2f}/h (RunPod list price)"
        )


@dataclass(frozen=True)
class CatalogReport:
    """What the pre-flight found: problems stop the run, warnings and prices are shown."""

    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    prices: list[MachinePrice] = field(default_factory=list)
    skipped: str | None = None
    """Why the catalog was not read at all (no key), for the program to warn and the offline
    render to say how to get prices."""


def _key(index: int, name: str) -> str:
    return f"{NAMESPACE}:machines[{index}].{name}"


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def closest(value: str, options: Mapping[str, str], limit: int = SUGGESTIONS) -> list[str]:
    """The ids (keys of `options`, valued by display name) nearest to `value`: those holding
    every word of it first ('A100' -> the A100 types), then by similarity."""
    wanted = _normal(value)
    words = wanted.split()

    def score(option: str) -> tuple[float, str]:
        texts = [_normal(option), _normal(options[option])]
        similarity = max(difflib.SequenceMatcher(None, wanted, text).ratio() for text in texts)
        holds_all = bool(words) and all(any(w in text for text in texts) for w in words)
        return (-(similarity + holds_all), option)

    return sorted(options, key=score)[:limit]


def _suggest(value: str, options: Mapping[str, str]) -> str:
    return ", ".join(repr(option) for option in closest(value, options))


Machines = Sequence[MachineSettings | None]
"""A stack's `coral:machines`, by index; None where a machine has problems of its own."""


def clouds_of(machines: Machines) -> tuple[str, ...]:
    """The clouds whose prices and stock the stack's machines need."""
    found: set[str] = set()
    for machine in machines:
        if machine is None:
            continue
        found |= {"SECURE", "COMMUNITY"} if machine.cloud_type == "ALL" else {machine.cloud_type}
    return tuple(sorted(found))


def _volume_problems(index: int, machine: MachineSettings) -> list[ConfigProblem]:
    if machine.volume.size_gb >= MIN_VOLUME_GB:
        return []
    return [
        ConfigProblem(
            _key(index, "volume.sizeGb"),
            f"got {machine.volume.size_gb}; RunPod's minimum for a {machine.volume.kind} volume "
            f"is {MIN_VOLUME_GB} GB",
        )
    ]


def _stock_warning(
    index: int, machine: MachineSettings, offer: api.GpuOffer, clouds: list[str]
) -> str | None:
    """A warning when no cloud of the machine has the GPU in stock (in its data center)."""
    levels = []
    for cloud in clouds:
        if machine.data_center and cloud in offer.stock_by_data_center:
            levels.append(offer.stock_by_data_center[cloud].get(machine.data_center, "NONE"))
        elif cloud in offer.stock:
            levels.append(offer.stock[cloud])
    if not levels or any(level != "NONE" for level in levels):
        return None
    where = f" in {machine.data_center}" if machine.data_center else ""
    return (
        f"{NAMESPACE}:machines[{index}]: RunPod has no {offer.id} in stock for pods{where} in "
        f"the {'/'.join(clouds)} cloud right now; `pulumi up` may fail for capacity until some "
        "frees up (or choose another gpuType or dataCenter)"
    )


def check_machines(machines: Machines, catalog: api.Catalog | None) -> CatalogReport:
    """Every machine against RunPod's rules and, when known, its catalog."""
    report = CatalogReport()
    for index, machine in enumerate(machines):
        if machine is None:
            continue
        report.problems.extend(_volume_problems(index, machine))
        if catalog is None:
            continue
        if catalog.data_centers is not None and machine.data_center not in (
            None,
            *catalog.data_centers,
        ):
            centers = {dc: dc for dc in catalog.data_centers}
            report.problems.append(
                ConfigProblem(
                    _key(index, "dataCenter"),
                    f"got {machine.data_center!r}; not a RunPod data center; closest: "
                    f"{_suggest(machine.data_center or '', centers)}",
                )
            )
        offer = catalog.gpus.get(machine.gpu_type)
        if offer is None:
            names = {gpu.id: gpu.name for gpu in catalog.gpus.values()}
            report.problems.append(
                ConfigProblem(
                    _key(index, "gpuType"),
                    f"got {machine.gpu_type!r}; not a GPU type id in {catalog.source}'s catalog; "
                    f"closest: {_suggest(machine.gpu_type, names)}",
                )
            )
            continue
        wanted = ["SECURE", "COMMUNITY"] if machine.cloud_type == "ALL" else [machine.cloud_type]
        clouds = [cloud for cloud in wanted if cloud in offer.price]
        if not clouds:
            offered = ", ".join(offer.price) or "no cloud"
            report.problems.append(
                ConfigProblem(
                    _key(index, "cloudType"),
                    f"got {machine.cloud_type!r}; RunPod offers {offer.id} in: {offered}",
                )
            )
            continue
        maximum = max(offer.max_count.get(cloud, 0) for cloud in clouds)
        if maximum and machine.gpu_count > maximum:
            report.problems.append(
                ConfigProblem(
                    _key(index, "gpuCount"),
                    f"got {machine.gpu_count}; one pod has at most {maximum} x {offer.id} in the "
                    f"{'/'.join(clouds)} cloud",
                )
            )
        warning = _stock_warning(index, machine, offer, clouds)
        if warning:
            report.warnings.append(warning)
        cheapest = min(clouds, key=lambda cloud: offer.price[cloud])
        report.prices.append(
            MachinePrice(
                machine.hostname,
                offer.id,
                machine.gpu_count,
                cheapest,
                offer.price[cheapest] * machine.gpu_count,
            )
        )
    return report


def read_and_check(machines: Machines, config: api.ConfigSource) -> CatalogReport:
    """Configure the adapter from the stack, read the catalog once (when a key is available)
    and check the machines. Network trouble only warns; a rejected key is a problem."""
    api.configure_from_stack(config)
    static = check_machines(machines, None)
    if not api.has_key():
        return dataclasses.replace(
            static,
            skipped=f"no RunPod API key ({api.API_KEY_CONFIG} or {api.API_KEY_ENV}): GPU types, "
            "data centers and prices were not checked against RunPod's catalog",
        )
    try:
        catalog = api.get_catalog(clouds_of(machines))
    except api.RunPodAuthError as exc:
        static.problems.append(ConfigProblem(api.API_KEY_CONFIG, str(exc)))
        return static
    except api.RunPodError as exc:
        static.warnings.append(
            f"RunPod's catalog could not be read, so GPU types and data centers were not "
            f"checked: {exc}"
        )
        return static
    report = check_machines(machines, catalog)
    if catalog.data_centers is None:
        report.warnings.extend(
            f"{_key(i, 'dataCenter')}: {m.data_center!r} not checked ({catalog.source} lists "
            "no data centers)"
            for i, m in enumerate(machines)
            if m is not None and m.data_center
        )
    return report
