"""Fixtures for the real-daemon testbed: headscale on loopback loaded with the policy the owner
stack would apply, users standing in for the tailnet owner and a plain member, and helpers to
boot coral-machine and the user's laptop. See standins/tailnet_testbed.py (the tailnet),
standins/headscale.py, standins/tailscale_node.py and standins/testbed.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.binaries import BinariesUnavailable, ensure_binaries
from standins.tailnet_testbed import (
    SharedTailnet,
    Tailnet,
    TailnetPlan,
    load_tailnet_plan,
    start_tailnet,
)
from standins.tailscale_node import start_laptop
from standins.testbed import Testbed


@pytest.fixture(scope="session")
def tailnet_plan() -> TailnetPlan:
    return load_tailnet_plan()


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """The real binaries; the first run builds them (minutes), later runs reuse .cache/bin."""
    try:
        return ensure_binaries()
    except BinariesUnavailable as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _dump_logs_on_failure(request: pytest.FixtureRequest, testbed: Testbed) -> None:
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(testbed.logs())


@pytest.fixture
def testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """A scratch dir and process registry; every daemon is killed at teardown."""
    bed = Testbed.create()
    try:
        yield bed
    finally:
        _dump_logs_on_failure(request, bed)
        bed.close()


@pytest.fixture
def tailnet(testbed: Testbed, bin_dir: Path, tailnet_plan: TailnetPlan) -> Tailnet:
    """A fresh headscale per test: identity tests count nodes, so they must not share one."""
    return start_tailnet(testbed, bin_dir, tailnet_plan)


@pytest.fixture(scope="module")
def shared_tailnet(bin_dir: Path, tailnet_plan: TailnetPlan) -> Iterator[SharedTailnet]:
    bed = Testbed.create()
    try:
        net = start_tailnet(bed, bin_dir, tailnet_plan)
        owner = start_laptop(bed, bin_dir, net.headscale, net.owner_id, "owner-laptop")
        member = start_laptop(bed, bin_dir, net.headscale, net.member_id, "member-laptop")
        yield SharedTailnet(bed, net, owner, member)
    except Exception:
        print(bed.logs())
        raise
    finally:
        bed.close()
