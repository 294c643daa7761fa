"""Every injected RunPod fault: retried or reported clearly, and no pod left untracked.

"No pod left untracked, no id lost" means: after the operation, every live pod in the
stand-in is the one whose id the provider returned, or there is none.
"""

from __future__ import annotations

import dataclasses

import pytest

from coral_infra.runpod import api
from coral_infra.runpod.pod import PodProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import API_KEY, pod_props

DEPLOY = "podFindAndDeployOnDemand"


def assert_only_tracked(standin: RunPodStandin, tracked_id: str | None) -> None:
    assert [pod.id for pod in standin.pods()] == ([tracked_id] if tracked_id else [])


@pytest.mark.parametrize("kind", ["rate_limit", "server_error"])
def test_transient_errors_on_create_are_retried_without_duplicates(
    standin: RunPodStandin, kind: str
) -> None:
    standin.inject(DEPLOY, kind, times=2)  # type: ignore[arg-type]
    result = PodProvider().create(pod_props())
    assert_only_tracked(standin, result.id)
    assert standin.count(DEPLOY) == 3


@pytest.mark.parametrize("kind", ["rate_limit", "server_error"])
def test_transient_errors_on_reads_are_retried(standin: RunPodStandin, kind: str) -> None:
    created = PodProvider().create(pod_props())
    standin.inject("pod", kind, times=2)  # type: ignore[arg-type]
    assert PodProvider().read(created.id, created.outs or {}).id == created.id
    assert standin.count("pod") >= 3


def test_retries_are_bounded_and_the_error_is_clear(standin: RunPodStandin) -> None:
    standin.inject("myself", "server_error", times=100)
    with pytest.raises(api.RunPodUnavailableError, match=r"list pods after 4 attempt\(s\)"):
        api.list_pods()
    assert standin.count("myself") == api.timing.attempts


def test_lost_create_response_adopts_the_accepted_pod(standin: RunPodStandin) -> None:
    standin.inject(DEPLOY, "lost_response")
    result = PodProvider().create(pod_props())
    assert_only_tracked(standin, result.id)
    assert standin.count(DEPLOY) == 1  # found by name, not sent twice


def test_create_timeout_after_acceptance_adopts_instead_of_duplicating(
    standin: RunPodStandin,
) -> None:
    standin.inject(DEPLOY, "slow", delay=api.timing.call_timeout + 0.3)
    result = PodProvider().create(pod_props())
    assert_only_tracked(standin, result.id)
    assert standin.count(DEPLOY) == 1


def test_no_capacity_is_a_clear_error_and_creates_nothing(standin: RunPodStandin) -> None:
    standin.inject(DEPLOY, "no_capacity")
    with pytest.raises(api.RunPodCapacityError, match=r"no free GPU.*no longer any instances"):
        PodProvider().create(pod_props())
    assert_only_tracked(standin, None)
    assert standin.count(DEPLOY) == 1  # capacity is not retried blindly


def test_real_capacity_shortage_is_reported(standin: RunPodStandin) -> None:
    standin.free_gpus["NVIDIA GeForce RTX 4090"] = 0
    with pytest.raises(api.RunPodCapacityError):
        PodProvider().create(pod_props())
    assert_only_tracked(standin, None)


def test_pod_that_never_runs_is_terminated_before_create_fails(standin: RunPodStandin) -> None:
    standin.never_running = True
    with pytest.raises(api.RunPodUnavailableError) as caught:
        PodProvider().create(pod_props())
    [pod] = standin.pods(include_terminated=True)
    # The state the pod reached, not a contradiction ("did not reach RUNNING (status RUNNING)").
    assert str(caught.value) == (
        f"pod {pod.id} did not start its container within 0.3 s: RunPod reports it RUNNING (a "
        "host is assigned) but its container has no runtime yet: the image is still being "
        "pulled, or the container exits at start (see the pod's logs in RunPod's console); pod "
        f"{pod.id} was terminated so nothing is left running"
    )
    assert_only_tracked(standin, None)
    assert [pod.desired_status for pod in standin.pods(include_terminated=True)] == ["TERMINATED"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("EXITED", "it reached EXITED, not RUNNING"),
        ("", "RunPod reports no status for it"),
    ],
)
def test_the_start_deadline_names_the_state_reached(status: str, expected: str) -> None:
    pod = api.PodInfo(
        **{**{f.name: None for f in dataclasses.fields(api.PodInfo)}, "id": "p1", "name": "n"},
    )
    assert api.reached_state(dataclasses.replace(pod, desired_status=status, running=False)) == (
        expected
    )


def test_pod_vanishing_while_starting_fails_clearly(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.boot_seconds = 10.0
    wait = api.wait_for_pod

    def vanish_then_wait(pod_id: str) -> api.PodInfo:
        standin.vanish(pod_id)
        return wait(pod_id)

    monkeypatch.setattr(api, "wait_for_pod", vanish_then_wait)
    with pytest.raises(api.RunPodNotFoundError, match="disappeared while starting"):
        PodProvider().create(pod_props())
    assert_only_tracked(standin, None)


def test_resume_without_free_gpu_explains_the_options(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    api.stop_pod(created.id)
    standin.inject("podResume", "no_free_gpu")
    with pytest.raises(
        api.RunPodCapacityError, match=r"host machine has no free GPU.*replace the pod"
    ):
        api.resume_pod(created.id, 1)
    assert standin.pods()[0].desired_status == "EXITED"


def test_resume_fails_when_the_host_really_is_full(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    api.stop_pod(created.id)
    standin.free_gpus["NVIDIA GeForce RTX 4090"] = 0
    with pytest.raises(api.RunPodCapacityError, match="not enough free GPUs"):
        api.resume_pod(created.id, 1)


def test_bad_api_key_is_reported_without_the_key(standin: RunPodStandin) -> None:
    api.configure("rpa_WRONG_KEY_should_not_leak")
    with pytest.raises(api.RunPodAuthError, match="HTTP 401") as caught:
        PodProvider().create(pod_props())
    assert "rpa_WRONG_KEY_should_not_leak" not in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert standin.pods() == []


def test_missing_api_key_names_the_config_key(standin: RunPodStandin) -> None:
    api.configure(None)
    with pytest.raises(api.RunPodAuthError, match="coral:runpodApiKey"):
        api.list_pods()
