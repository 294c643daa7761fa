"""`coral:machines[].idleStop`: validated with the key named, off by default, a sane minimum
(lower only against a loopback RunPod stand-in), a note for pod-local volumes, and what it puts
into the pod's env (the one place the program's pod env is rendered: `machine.pod_spec`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from coral_infra import bootstrap
from coral_infra.machine import pod_spec
from coral_infra.settings import SettingsError, idle_stop_notes, parse_settings

NETWORK: dict[str, Any] = {
    "coral:machines": [
        {"hostname": "coral-machine", "dataCenter": "EU-RO-1", "volume": {"kind": "network"}}
    ],
}
POD_VOLUME: dict[str, Any] = {
    "coral:machines": [{"hostname": "coral-dev", "volume": {"kind": "pod", "sizeGb": 50}}]
}


def idle(config: dict[str, Any], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    changed["coral:machines"][0]["idleStop"] = value
    return changed


@pytest.fixture(autouse=True)
def real_runpod(monkeypatch: pytest.MonkeyPatch) -> None:
    """The minimum depends on where the RunPod API is: RunPod's own unless a test says not."""
    monkeypatch.delenv("RUNPOD_API_BASE_URL", raising=False)


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(config)
    return [str(p) for p in caught.value.problems]


def test_off_by_default() -> None:
    machine = parse_settings(NETWORK).machines[0]
    assert machine.idle_stop is None and machine.idle_stop_seconds is None
    assert bootstrap.IDLE_STOP_ENV not in pod_spec("prod", machine)["env"]


@pytest.mark.parametrize(("value", "seconds"), [("2h", 7200), ("1h30m", 5400), ("15m", 900)])
def test_durations_become_seconds_in_the_pods_env(value: str, seconds: int) -> None:
    machine = parse_settings(idle(NETWORK, value)).machines[0]
    assert machine.idle_stop_seconds == seconds
    env = pod_spec("prod", machine)["env"]
    assert env[bootstrap.IDLE_STOP_ENV] == str(seconds)
    assert bootstrap.RUNPOD_API_URL_ENV not in env  # RunPod's own API: the script's default


def test_the_stacks_runpod_api_reaches_the_pod_only_when_it_is_not_runpods() -> None:
    machine = parse_settings(idle(NETWORK, "2h")).machines[0]
    env = pod_spec("local", machine, None, "http://127.0.0.1:8765")["env"]
    assert env[bootstrap.RUNPOD_API_URL_ENV] == "http://127.0.0.1:8765"
    without_idle_stop = parse_settings(NETWORK).machines[0]
    assert (
        bootstrap.RUNPOD_API_URL_ENV
        not in pod_spec("local", without_idle_stop, None, "http://127.0.0.1:8765")["env"]
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "10m",
            "coral:machines[0].idleStop: got '10m'; the shortest idle stop is 15m: a pod takes "
            "minutes to start again, and a shorter idle time stops it between two sessions",
        ),
        (
            "soon",
            "coral:machines[0].idleStop: got 'soon'; an idle time is a duration like '2h', '90m' "
            "or '1h30m' (remove idleStop to never stop the pod)",
        ),
        (
            "2 hours",
            "coral:machines[0].idleStop: got '2 hours'; an idle time is a duration like '2h', "
            "'90m' or '1h30m' (remove idleStop to never stop the pod)",
        ),
    ],
)
def test_bad_idle_stops_name_the_key_and_what_is_allowed(value: str, expected: str) -> None:
    assert problems(idle(NETWORK, value)) == [expected]


def test_a_short_idle_time_needs_a_loopback_runpod_stand_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "the shortest idle stop is 15m" in problems(idle(NETWORK, "20s"))[0]
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "https://api.runpod.io")
    assert "the shortest idle stop is 15m" in problems(idle(NETWORK, "20s"))[0]
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "http://127.0.0.1:41234")
    assert parse_settings(idle(NETWORK, "20s")).machines[0].idle_stop_seconds == 20
    assert "the shortest idle stop is 10s" in problems(idle(NETWORK, "5s"))[0]


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        (bootstrap.IDLE_STOP_ENV, "coral:machines[0].idleStop"),
        (bootstrap.IDLE_STOP_SCRIPT_ENV, "coral:machines[0].idleStop"),
        (bootstrap.RUNPOD_API_URL_ENV, "coral:runpod"),
    ],
)
def test_the_programs_own_variables_are_not_a_users_env(name: str, setting: str) -> None:
    assert bootstrap.is_reserved_env(name)
    config = copy.deepcopy(NETWORK)
    config["coral:machines"][0]["env"] = {name: "1"}
    assert problems(config) == [
        f"coral:machines[0].env.{name}: {name} is set by coral-infra from {setting}; remove it "
        f"from env and set {setting}"
    ]


def test_a_pod_local_volume_gets_a_note_naming_the_key() -> None:
    assert idle_stop_notes(parse_settings(POD_VOLUME)) == []
    assert idle_stop_notes(parse_settings(idle(NETWORK, "2h"))) == []
    [note] = idle_stop_notes(parse_settings(idle(POD_VOLUME, "2h")))
    assert note.startswith("coral:machines[0].idleStop: coral-dev keeps /workspace on its pod ")
    assert "a stopped pod can only start again on its own host" in note
    assert "Use volume.kind: network to keep the identity whatever the host." in note
