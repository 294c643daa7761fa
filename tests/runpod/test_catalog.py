"""The pre-flight check: machines against RunPod's catalog (a pure function, then the real
catalog of the stand-in over both wire formats), and the price per hour."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coral_infra.runpod import api
from coral_infra.runpod.catalog import (
    CatalogReport,
    check_machines,
    closest,
    read_and_check,
)
from coral_infra.settings import ConfigProblem, MachineSettings, parse_settings
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import API_KEY, CATALOG_GPUS

A100_PCIE = "NVIDIA A100 80GB PCIe"
A100_SXM = "NVIDIA A100-SXM4-80GB"


def machines(**machine: Any) -> tuple[MachineSettings, ...]:
    spec = {"hostname": "coral-machine", "dataCenter": "EU-RO-1", **machine}
    return tuple(parse_settings({"coral:machines": json.dumps([spec])}).machines)


def offer(
    gpu_id: str, name: str, secure: float | None, community: float | None, **kw: Any
) -> api.GpuOffer:
    prices = {c: p for c, p in (("SECURE", secure), ("COMMUNITY", community)) if p is not None}
    return api.GpuOffer(gpu_id, name, prices, {c: 8 for c in prices}, **kw)


CATALOG = api.Catalog(
    gpus={
        o.id: o
        for o in (
            offer("NVIDIA GeForce RTX 4090", "RTX 4090", 0.69, 0.34),
            offer(A100_PCIE, "A100 PCIe", 1.64, 1.19),
            offer(A100_SXM, "A100 SXM", 1.89, None),
            offer("NVIDIA H100 80GB HBM3", "H100 SXM", 2.99, None),
            offer("NVIDIA A40", "A40", 0.39, 0.35),
        )
    },
    data_centers=("EU-RO-1", "EU-SE-1", "US-TX-3"),
    source="RunPod REST API v2",
)


def only(report: CatalogReport) -> ConfigProblem:
    assert len(report.problems) == 1, report.problems
    return report.problems[0]


def test_a_known_machine_passes_and_gets_its_price() -> None:
    report = check_machines(machines(gpuType=A100_PCIE, gpuCount=2), CATALOG)
    assert report.problems == [] and report.warnings == []
    (price,) = report.prices
    assert price.usd_per_hour == pytest.approx(3.28)
    assert str(price) == (
        f"coral-machine: 2 x {A100_PCIE} in the SECURE cloud: $3.28/h (RunPod list price)"
    )


def test_an_unknown_gpu_type_names_the_key_and_the_closest_real_ids() -> None:
    problem = only(check_machines(machines(gpuType="A100"), CATALOG))
    assert problem.key == "coral:machines[0].gpuType"
    head, _, suggested = problem.message.partition("; closest: ")
    assert head == "got 'A100'; not a GPU type id in RunPod REST API v2's catalog"
    assert suggested_ids(suggested)[:2] in ([A100_SXM, A100_PCIE], [A100_PCIE, A100_SXM])
    assert len(suggested_ids(suggested)) == 3


def suggested_ids(text: str) -> list[str]:
    return [part.strip().strip("'") for part in text.split("', '")]


def test_a_misspelt_gpu_type_suggests_the_id_it_resembles() -> None:
    problem = only(check_machines(machines(gpuType="NVIDIA GeForce RTX 4080"), CATALOG))
    assert closest("NVIDIA GeForce RTX 4080", {g: g for g in CATALOG.gpus})[0] == (
        "NVIDIA GeForce RTX 4090"
    )
    assert "closest: 'NVIDIA GeForce RTX 4090'" in problem.message


def test_an_unknown_data_center_names_the_key_and_the_closest_real_ids() -> None:
    problem = only(check_machines(machines(dataCenter="EU-RO-2"), CATALOG))
    assert problem.key == "coral:machines[0].dataCenter"
    assert problem.message.startswith("got 'EU-RO-2'; not a RunPod data center; closest: 'EU-RO-1'")


def test_a_gpu_type_not_offered_in_the_cloud_names_cloud_type() -> None:
    problem = only(check_machines(machines(gpuType=A100_SXM, cloudType="COMMUNITY"), CATALOG))
    assert problem.key == "coral:machines[0].cloudType"
    assert problem.message == f"got 'COMMUNITY'; RunPod offers {A100_SXM} in: SECURE"


def test_too_many_gpus_for_one_pod_names_gpu_count() -> None:
    small = api.Catalog(
        gpus={"NVIDIA A40": api.GpuOffer("NVIDIA A40", "A40", {"SECURE": 0.39}, {"SECURE": 4})},
        data_centers=None,
        source="RunPod GraphQL API",
    )
    problem = only(check_machines(machines(gpuType="NVIDIA A40", gpuCount=6), small))
    assert problem.key == "coral:machines[0].gpuCount"
    assert problem.message == "got 6; one pod has at most 4 x NVIDIA A40 in the SECURE cloud"


def test_cloud_all_is_priced_at_its_cheapest_cloud() -> None:
    (price,) = check_machines(machines(gpuType=A100_PCIE, cloudType="ALL"), CATALOG).prices
    assert (price.cloud, price.usd_per_hour) == ("COMMUNITY", pytest.approx(1.19))


def test_no_stock_in_the_data_center_is_a_warning_not_a_problem() -> None:
    stocked = api.GpuOffer(
        A100_PCIE,
        "A100 PCIe",
        {"SECURE": 1.64},
        {"SECURE": 8},
        stock={"SECURE": "LOW"},
        stock_by_data_center={"SECURE": {"US-TX-3": "LOW", "EU-RO-1": "NONE"}},
    )
    catalog = api.Catalog({A100_PCIE: stocked}, ("EU-RO-1", "US-TX-3"), "RunPod REST API v2")
    report = check_machines(machines(gpuType=A100_PCIE), catalog)
    assert report.problems == [] and len(report.prices) == 1
    assert report.warnings == [
        f"coral:machines[0]: RunPod has no {A100_PCIE} in stock for pods in EU-RO-1 in the "
        "SECURE cloud right now; `pulumi up` may fail for capacity until some frees up (or "
        "choose another gpuType or dataCenter)"
    ]
    in_texas = check_machines(machines(gpuType=A100_PCIE, dataCenter="US-TX-3"), catalog)
    assert in_texas.warnings == []


def test_volumes_below_runpods_floor_are_problems_without_any_catalog() -> None:
    report = check_machines(machines(volume={"kind": "network", "sizeGb": 5}), None)
    assert only(report) == ConfigProblem(
        "coral:machines[0].volume.sizeGb", "got 5; RunPod's minimum for a network volume is 10 GB"
    )
    assert report.prices == []


def test_every_machine_is_checked_and_located_by_its_index() -> None:
    config = {
        "coral:machines": json.dumps(
            [
                {"hostname": "a", "dataCenter": "EU-RO-1", "gpuType": A100_PCIE},
                {"hostname": "b", "dataCenter": "EU-RO-9", "gpuType": "H100"},
            ]
        )
    }
    report = check_machines(parse_settings(config).machines, CATALOG)
    assert [p.key for p in report.problems] == [
        "coral:machines[1].dataCenter",
        "coral:machines[1].gpuType",
    ]
    assert [p.hostname for p in report.prices] == ["a"]


# --- against the stand-in's catalog, over each wire format ------------------------------------


@pytest.fixture
def catalog_standin(standin: RunPodStandin) -> RunPodStandin:
    """The stand-in (both wire formats) offering the A100 types prod names."""
    standin.gpu_types.update({o.id: o for o in CATALOG_GPUS})
    standin.free_gpus.update({o.id: 16 for o in CATALOG_GPUS})
    return standin


def stack_config(wire: str, key: str | None = API_KEY) -> dict[str, Any]:
    config: dict[str, Any] = {api.API_CONFIG: json.dumps({"api": wire})}
    if key is not None:
        config[api.API_KEY_CONFIG] = key
    return config


def test_read_and_check_reads_the_catalog_once_and_prices_each_machine(
    catalog_standin: RunPodStandin, wire: str
) -> None:
    catalog_standin.reset_calls()
    for _ in range(3):  # the program, render: one read per process however often asked
        report = read_and_check(machines(gpuType=A100_PCIE, gpuCount=2), stack_config(wire))
    assert report.problems == []
    (price,) = report.prices
    assert price.usd_per_hour == pytest.approx(2 * 1.64)
    expected = {
        "v2": {"listGpuTypes": 1, "listDataCenters": 1},
        "graphql": {"gpuTypes": 1},
    }[wire]
    assert {c.op: catalog_standin.count(c.op) for c in catalog_standin.calls} == expected
    if wire == "graphql":
        assert report.warnings == [
            "coral:machines[0].dataCenter: 'EU-RO-1' not checked (RunPod GraphQL API lists no "
            "data centers)"
        ]
    else:
        assert report.warnings == []


def test_read_and_check_finds_a100_is_no_gpu_type_id(
    catalog_standin: RunPodStandin, wire: str
) -> None:
    report = read_and_check(machines(gpuType="A100"), stack_config(wire))
    problem = only(report)
    assert problem.key == "coral:machines[0].gpuType"
    first_two = suggested_ids(problem.message.partition("; closest: ")[2])[:2]
    assert sorted(first_two) == sorted([A100_PCIE, A100_SXM])


def test_read_and_check_warns_when_the_data_center_has_no_stock(
    catalog_standin: RunPodStandin, wire: str
) -> None:
    if wire == "graphql":
        pytest.skip("the GraphQL API tells no pod stock")
    catalog_standin.sold_out.add((A100_PCIE, "EU-RO-1"))
    report = read_and_check(machines(gpuType=A100_PCIE), stack_config(wire))
    assert report.problems == []
    assert [w.split(";")[0] for w in report.warnings] == [
        f"coral:machines[0]: RunPod has no {A100_PCIE} in stock for pods in EU-RO-1 in the "
        "SECURE cloud right now"
    ]


def test_read_and_check_without_a_key_calls_nothing_and_says_what_it_skipped(
    catalog_standin: RunPodStandin, wire: str
) -> None:
    catalog_standin.reset_calls()
    report = read_and_check(machines(gpuType="A100"), stack_config(wire, key=None))
    assert report.problems == [] and report.prices == []
    assert report.skipped is not None and "no RunPod API key" in report.skipped
    assert report.warnings == []
    assert catalog_standin.calls == []


def test_read_and_check_with_a_rejected_key_is_a_problem_at_the_key(
    catalog_standin: RunPodStandin, wire: str
) -> None:
    problem = only(read_and_check(machines(), stack_config(wire, key="rpa_WRONG")))
    assert problem.key == "coral:runpodApiKey" and "HTTP 401" in problem.message
    assert "rpa_WRONG" not in problem.message


def test_read_and_check_during_an_outage_warns_and_checks_what_it_can(
    catalog_standin: RunPodStandin, wire: str
) -> None:
    catalog_op = {"v2": "listGpuTypes", "graphql": "gpuTypes"}[wire]
    catalog_standin.inject(catalog_op, "html_502", times=100)
    report = read_and_check(machines(volume={"kind": "network", "sizeGb": 5}), stack_config(wire))
    assert [p.key for p in report.problems] == ["coral:machines[0].volume.sizeGb"]
    assert "catalog could not be read" in report.warnings[0] and "HTTP 502" in report.warnings[0]
