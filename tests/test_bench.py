"""The benchmarks: each one runs on a tiny size and reports its figures; the shared statistics
and tables; the yardstick registers what the program registers.

Benchmarks measure, they do not pass or fail on speed: these tests check that every one still
runs and says what it must, not how fast anything is (README: Performance).
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from bench import BENCHMARKS, fleet
from bench.api_calls import HeadscaleRecords, tailscale_call
from bench.measure import Ratio, Sample, interleaved, per_round, ratio_table, show, table

NEEDS_SANDBOX = {"bench.engine", "bench.api_calls", "bench.bootstrap_vs_containerboot"}


def can_run_sandbox() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_runs_on_a_tiny_size(name: str) -> None:
    if name in NEEDS_SANDBOX and not can_run_sandbox():
        pytest.skip(f"{name} needs root and unshare (the sandbox's pods, headscale)")
    default_socket_dir = Path("/var/run/tailscale")
    before = sorted(default_socket_dir.iterdir()) if default_socket_dir.exists() else None
    report = importlib.import_module(name).run(quick=True)
    assert isinstance(report, str)
    # containerboot links its socket there (tailscale#6849): never on the host.
    after = sorted(default_socket_dir.iterdir()) if default_socket_dir.exists() else None
    assert after == before, f"{name} left {default_socket_dir} on the host: {after}"
    if name != "bench.api_calls":
        assert "ratio median" in report, report
    else:
        assert "preview" in report and "up from scratch" in report, report


def test_evaluation_reports_ours_against_the_yardstick() -> None:
    from bench import evaluation

    report = evaluation.run(quick=True)
    lines = report.splitlines()
    assert any(line.startswith("time per machine, 1 -> 3") for line in lines), report
    assert any(line.startswith("memory per machine, 1 -> 3") for line in lines), report
    assert "<= 1.2:" in report


def test_the_yardstick_registers_what_the_program_registers(tmp_path: Path) -> None:
    """The plain-Pulumi baseline mirrors the program resource type by resource type, at two
    sizes, so a machine's share is the same in both."""
    policy = fleet.live_policy()
    for machines in (1, 3):
        inputs = fleet.FleetInputs.write(tmp_path, machines, policy)
        ours = fleet.evaluate_in_process("ours", machines, inputs)
        yardstick = fleet.evaluate_in_process("yardstick", machines, inputs)
        assert ours.registered == yardstick.registered
        assert ours.registered["pulumi-python:dynamic/runpod:Pod"] == machines
        assert ours.registered["coral:index:Device"] == machines


def test_interleaved_runs_flip_the_order_every_round() -> None:
    seen: list[str] = []

    def subject(name: str, value: float) -> object:
        return lambda: seen.append(name) or value

    samples = interleaved(
        {"a": subject("a", 1.0), "b": subject("b", 2.0)},  # type: ignore[dict-item]
        runs=3,
        warmup=1,
    )
    assert seen == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert samples["a"].values == (1.0, 1.0, 1.0)
    assert samples["b"].runs == 3


def test_ratios_use_min_and_median_and_say_whether_the_goal_holds() -> None:
    ours, baseline = Sample((3.0, 1.2, 1.4)), Sample((1.0, 0.8, 2.0))
    figure = Ratio("preview", ours, baseline, goal=1.3)
    assert figure.ratio_min == pytest.approx(1.5)
    assert figure.ratio_median == pytest.approx(1.4)
    assert figure.holds is False
    assert Ratio("x", baseline, ours, goal=1.3).holds is True
    assert Ratio("x", ours, baseline).holds is None
    text = ratio_table("title", "ours", "empty", [figure])
    assert text.splitlines()[0] == "title"
    row = text.splitlines()[3]
    assert row.split() == [
        "preview", "1.20", "s", "1.40", "s", "800", "ms", "1.00", "s", "1.50", "1.40", "3",
        "<=", "1.3:", "MISSED",
    ]  # fmt: skip


def test_per_round_pairs_the_rounds() -> None:
    at_high, at_low = Sample((12.0, 22.0)), Sample((2.0, 2.0))
    per_machine = per_round([at_high, at_low], lambda high, low: (high - low) / 10)
    assert per_machine.values == (1.0, 2.0)
    with pytest.raises(ValueError, match="same number of runs"):
        per_round([at_high, Sample((1.0,))], lambda a, b: a)


def test_values_show_in_their_units() -> None:
    assert show(0.25, "s") == "250 ms"
    assert show(2.5, "s") == "2.50 s"
    assert show(0.0123, "ms") == "12.30 ms"
    assert show(3 * 2**20, "MiB") == "3.0 MiB"
    assert show(5120, "KiB") == "5 KiB"
    assert table(["a", "b"], [["x", "1"], ["yy", "22"]]).splitlines() == [
        "a    b",
        "--  --",
        "x    1",
        "yy  22",
    ]


def test_tailscale_calls_are_counted_by_kind() -> None:
    assert tailscale_call("GET", "/tailnet/-/devices") == "GET devices"
    assert tailscale_call("GET", "/tailnet/-/devices?hostname=coral-m3") == "GET devices?hostname="
    assert tailscale_call("POST", "/device/n7CNTRL/tags") == "POST device/{id}/tags"
    assert tailscale_call("GET", "/tailnet/-/keys/k12CNTRL") == "GET keys/{id}"


def test_device_records_answer_as_headscale_does() -> None:
    records = HeadscaleRecords(["coral-m0", "coral-m1"], "tag:coral-local")
    nodes = records.nodes()
    assert [n["name"] for n in nodes] == ["coral-m0", "coral-m1"]
    assert all(n["online"] and n["tags"] == ["tag:coral-local"] for n in nodes)
    key = records.create_key(reusable=True, ephemeral=False, tags=["tag:x"], expiry_s=60)
    assert key["key"].startswith("hskey-auth-") and key["id"] not in {n["id"] for n in nodes}
    records.delete_node(nodes[0]["id"])
    assert Counter(n["name"] for n in records.nodes()) == {"coral-m1": 1}
