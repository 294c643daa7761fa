"""The pod name claim: no RunPod call while it lives; its delete (the last step of `destroy`
for a machine) terminates every pod still carrying the name, such as one a failed create
left out of the stack's state."""

from __future__ import annotations

import pytest

from coral_infra.runpod import api
from coral_infra.runpod.pod import PodProvider
from coral_infra.runpod.pod_name import PodNameProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import op, pod_props

NAME = "coral-machine-test"


def test_the_claim_lives_without_calling_runpod(standin: RunPodStandin) -> None:
    provider = PodNameProvider()
    checked = provider.check({}, {"name": NAME})
    assert checked.failures == []
    created = provider.create(checked.inputs)
    assert (created.id, created.outs) == (NAME, {"name": NAME})
    assert provider.read(NAME, {"name": NAME}).outs == {"name": NAME}
    renamed = provider.diff(NAME, {"name": NAME}, {"name": "other"})
    assert (renamed.changes, renamed.replaces) == (True, ["name"])
    assert provider.diff(NAME, {"name": NAME}, {"name": NAME}).changes is False
    assert standin.calls == []


def test_a_bad_name_is_a_check_failure() -> None:
    failures = PodNameProvider().check({}, {"name": "a\nb"}).failures
    assert [f.property for f in failures] == ["name"]


def test_releasing_the_name_terminates_a_pod_a_failed_create_left_untracked(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create's answer is lost and every lookup after it fails: `up` fails naming the pod
    that may exist. Without another `up`, `destroy` still terminates it, and nothing else."""
    other = PodProvider().create(pod_props(name="someone-else"))
    standin.inject(op("create"), "lost_response")
    real = api.find_pods_by_name

    def then_fail(name: str, *, recent: bool = False) -> list[api.PodInfo]:
        found = real(name, recent=recent)
        monkeypatch.setattr(api, "find_pods_by_name", failing)
        return found

    def failing(name: str, *, recent: bool = False) -> list[api.PodInfo]:
        raise api.RunPodUnavailableError("RunPod API unavailable for list pods")

    monkeypatch.setattr(api, "find_pods_by_name", then_fail)
    with pytest.raises(api.RunPodUnavailableError, match="may have created a pod named"):
        PodProvider().create(pod_props())
    monkeypatch.setattr(api, "find_pods_by_name", real)
    assert sorted(p.name for p in standin.pods()) == [NAME, "someone-else"]

    PodNameProvider().delete(NAME, {"name": NAME})

    assert [p.id for p in standin.pods()] == [other.id]
