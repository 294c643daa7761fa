"""Spotting a stale device that holds the machine's name (pure part of the Device component)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from coral_infra.device import stale_device_problem


def listed(name: str, node_id: str, hostname: str = "coral-machine") -> Any:
    return SimpleNamespace(
        node_id=node_id,
        id=f"legacy-{node_id}",
        name=f"{name}.tail1234.ts.net",
        hostname=hostname,
        last_seen="2026-11-01T00:00:00Z",
    )


def test_the_only_device_with_the_name_is_fine() -> None:
    ours = listed("coral-machine", "n1")
    others = [ours, listed("coral-machine-gpu", "n2", "coral-machine-gpu")]  # a longer name
    assert stale_device_problem("coral-machine", ours, others) is None


def test_pod_renamed_to_dash_one_is_reported_with_the_holder() -> None:
    ours = listed("coral-machine-1", "nNEW")
    holder = listed("coral-machine", "nOLD")
    problem = stale_device_problem("coral-machine", ours, [ours, holder])
    assert problem is not None
    assert "'coral-machine-1.tail1234.ts.net' (id nNEW)" in problem
    assert "coral-machine.tail1234.ts.net (id nOLD, last seen 2026-11-01T00:00:00Z)" in problem
    assert "rename it back to 'coral-machine'" in problem


def test_lookup_returning_the_stale_one_is_reported_too() -> None:
    """get_device takes the first match, which can be the old device that kept the name."""
    old = listed("coral-machine", "nOLD")
    new = listed("coral-machine-1", "nNEW")
    problem = stale_device_problem("coral-machine", old, [old, new])
    assert problem is not None and "nNEW" in problem and "tailscale logout" in problem


def test_a_renamed_device_still_reporting_the_hostname_counts() -> None:
    ours = listed("coral-machine", "n1")
    renamed = listed("old-box", "n2", hostname="coral-machine")
    problem = stale_device_problem("coral-machine", ours, [ours, renamed])
    assert problem is not None and "old-box.tail1234.ts.net (id n2" in problem
