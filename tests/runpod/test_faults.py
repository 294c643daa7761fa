"""Every injected RunPod fault, on both wire formats: retried or reported clearly, and no pod
left untracked.

"No pod left untracked, no id lost" means: after the operation, every live pod in the
stand-in is the one whose id the provider returned, or there is none.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable
from types import ModuleType

import pytest

from coral_infra.runpod import api, network_volumes, session
from coral_infra.runpod.pod import PodProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import API_KEY, AUTH_KEY, count, op, pod_props, pod_spec


def assert_only_tracked(standin: RunPodStandin, tracked_id: str | None) -> None:
    assert [pod.id for pod in standin.pods()] == ([tracked_id] if tracked_id else [])


@pytest.mark.parametrize("kind", ["rate_limit", "server_error", "html_502"])
def test_transient_errors_on_create_are_retried_without_duplicates(
    standin: RunPodStandin, kind: str
) -> None:
    standin.inject(op("create"), kind, times=2)  # type: ignore[arg-type]
    result = PodProvider().create(pod_props())
    assert_only_tracked(standin, result.id)
    assert count(standin, "create") == 3


@pytest.mark.parametrize("kind", ["rate_limit", "server_error", "html_502"])
def test_transient_errors_on_reads_are_retried(standin: RunPodStandin, kind: str) -> None:
    created = PodProvider().create(pod_props())
    standin.inject(op("get"), kind, times=2)  # type: ignore[arg-type]
    assert PodProvider().read(created.id, created.outs or {}).id == created.id
    assert count(standin, "get") >= 3


def test_retries_are_bounded_and_the_error_is_clear(standin: RunPodStandin) -> None:
    standin.inject(op("list"), "server_error", times=100)
    with pytest.raises(api.RunPodUnavailableError, match=r"list pods after 4 attempt\(s\)"):
        api.list_pods()
    assert count(standin, "list") == session.timing.attempts


def test_an_html_502_page_is_reported_with_its_http_status(standin: RunPodStandin) -> None:
    standin.inject(op("list"), "html_502", times=100)
    with pytest.raises(api.RunPodUnavailableError) as caught:
        api.list_pods()
    message = str(caught.value)
    assert "HTTP 502 Bad Gateway" in message and "text/html, not JSON" in message
    assert "JSONDecodeError" not in message and "Expecting value" not in message


def test_rate_limit_waits_as_long_as_retry_after_asks(standin: RunPodStandin, wire: str) -> None:
    if wire == "graphql":
        pytest.skip("the GraphQL stand-in's 429 carries no Retry-After (backoff applies)")
    standin.inject(op("list"), "rate_limit", delay=1.0)  # Retry-After: 1
    started = time.monotonic()
    api.list_pods()
    assert time.monotonic() - started >= 1.0  # the backoff alone would wait 0.01 s
    assert count(standin, "list") == 2


def test_rate_limit_longer_than_the_retry_budget_says_what_runpod_asked(
    standin: RunPodStandin, wire: str
) -> None:
    if wire == "graphql":
        pytest.skip("the GraphQL stand-in's 429 carries no Retry-After")
    standin.inject(op("list"), "rate_limit", delay=30.0)
    started = time.monotonic()
    with pytest.raises(api.RunPodUnavailableError, match=r"asked to wait 30 s"):
        api.list_pods()
    assert time.monotonic() - started < 1.0  # gave up at once instead of sleeping past budget


def test_lost_create_response_adopts_the_accepted_pod(standin: RunPodStandin) -> None:
    standin.inject(op("create"), "lost_response")
    result = PodProvider().create(pod_props())
    assert_only_tracked(standin, result.id)
    assert count(standin, "create") == 1  # found by name, not sent twice


def test_create_timeout_after_acceptance_adopts_instead_of_duplicating(
    standin: RunPodStandin,
) -> None:
    standin.inject(op("create"), "slow", delay=session.timing.call_timeout + 0.3)
    result = PodProvider().create(pod_props())
    assert_only_tracked(standin, result.id)
    assert count(standin, "create") == 1


def test_a_create_applied_after_the_client_gave_up_ends_with_exactly_one_pod(
    standin: RunPodStandin,
) -> None:
    """The connection drops at once and RunPod applies the request later: the adapter looks
    the name up over its grace period instead of sending the create again."""
    standin.inject(op("create"), "applied_late", delay=session.timing.lookup_grace / 2)
    result = PodProvider().create(pod_props())
    assert_only_tracked(standin, result.id)
    assert count(standin, "create") == 1
    time.sleep(session.timing.lookup_grace)  # nothing else turns up later
    assert_only_tracked(standin, result.id)


def test_a_create_applied_after_the_grace_period_is_settled_by_the_next_up_and_by_destroy(
    standin: RunPodStandin, caplog: pytest.LogCaptureFixture
) -> None:
    """Later than any grace period, the first request still lands: two pods carry the name.
    Both the next create (adoption) and delete settle it; neither leaves a billing pod."""
    late = session.timing.lookup_grace + 0.4
    standin.inject(op("create"), "applied_late", delay=late)
    first = PodProvider().create(pod_props())
    time.sleep(late)
    assert len(standin.pods()) == 2 and count(standin, "create") == 2
    with caplog.at_level(logging.WARNING, logger="coral_infra.runpod"):
        again = PodProvider().create(pod_props())
    assert_only_tracked(standin, again.id)
    assert "2 pods carried the name 'coral-machine-test'" in caplog.text
    assert "terminated the duplicate" in caplog.text
    PodProvider().delete(again.id, again.outs or {})
    assert standin.pods() == [] and first.id in {
        p.id for p in standin.pods(include_terminated=True)
    }


def test_destroy_terminates_a_late_duplicate_carrying_the_stack_name(
    standin: RunPodStandin,
) -> None:
    late = session.timing.lookup_grace + 0.4
    standin.inject(op("create"), "applied_late", delay=late)
    created = PodProvider().create(pod_props())
    time.sleep(late)
    assert len(standin.pods()) == 2
    PodProvider().delete(created.id, created.outs or {})
    assert standin.pods() == []


def test_several_pods_with_the_stack_name_keep_one_and_say_so(
    standin: RunPodStandin, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _spec()
    wire = session.wire()
    ids = {wire.create_pod(spec, "EU-RO-1", "SECURE") for _ in range(3)}  # behind the adapter
    with caplog.at_level(logging.WARNING, logger="coral_infra.runpod"):
        created = api.create_pod(spec)
    assert created.id in ids and created.adopted is not None
    assert_only_tracked(standin, created.id)
    assert len(created.notes) == 2
    assert all("3 pods carried the name" in note for note in created.notes)
    assert caplog.text.count("terminated the duplicate") == 2


def fail_lookups_after_the_first(
    standin: RunPodStandin,
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    lookup: str,
    step: str,
) -> Callable[[], None]:
    """The adoption lookup before the create works; every lookup after it fails until the
    returned function makes RunPod answer again. `module` is where the create calls `lookup`."""
    real = getattr(module, lookup)

    def then_fail(*args: object, **kwargs: object) -> object:
        found = real(*args, **kwargs)
        standin.inject(op(step), "server_error", times=1000)
        return found

    def answer_again() -> None:
        monkeypatch.setattr(module, lookup, real)
        for fault in standin._traffic.faults:  # the stand-in has no public way to drop faults
            fault.times = 0

    monkeypatch.setattr(module, lookup, then_fail)
    return answer_again


def test_a_lookup_that_keeps_failing_names_the_pod_that_may_exist(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.inject(op("create"), "lost_response")
    answer_again = fail_lookups_after_the_first(
        standin, monkeypatch, api, "find_pods_by_name", "list"
    )
    with pytest.raises(api.RunPodUnavailableError) as caught:
        api.create_pod(_spec())
    message = str(caught.value)
    assert "may have created a pod named 'coral-machine-test'" in message
    assert "the next `pulumi up` finds it by that name and adopts it" in message
    # ... and so it does, once RunPod answers again: still one pod, still one create.
    answer_again()
    again = api.create_pod(_spec())
    assert again.adopted is not None
    assert_only_tracked(standin, again.id)
    assert count(standin, "create") == 1


def test_a_volume_lookup_that_keeps_failing_names_the_volume_that_may_exist(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.inject(op("create_volume"), "lost_response", api=api.current_api())  # type: ignore[arg-type]
    answer_again = fail_lookups_after_the_first(
        standin, monkeypatch, network_volumes, "_volumes_named", "volumes"
    )
    with pytest.raises(api.RunPodUnavailableError) as caught:
        api.create_volume("coral-workspace", 10, "EU-RO-1")
    message = str(caught.value)
    assert "may have created a network volume named 'coral-workspace' in EU-RO-1" in message
    assert "next `pulumi up` finds it by that name" in message
    answer_again()
    again = api.create_volume("coral-workspace", 10, "EU-RO-1")
    assert [v.id for v in standin.volumes()] == [again.id]


def test_destroy_is_not_blocked_by_a_gone_pod_answered_with_the_generic_error(
    standin: RunPodStandin,
) -> None:
    created = PodProvider().create(pod_props())
    standin.vanish(created.id)
    standin.inject(op("terminate"), "generic_for_gone", times=1000)
    PodProvider().delete(created.id, created.outs or {})  # does not raise
    assert count(standin, "terminate") == 1  # the read said gone: not retried as an outage


def test_a_terminate_that_keeps_failing_for_a_live_pod_is_an_outage(
    standin: RunPodStandin,
) -> None:
    created = PodProvider().create(pod_props())
    standin.inject(op("terminate"), "server_error", times=1000)
    with pytest.raises(api.RunPodUnavailableError, match="terminate pod after 4 attempt"):
        PodProvider().delete(created.id, created.outs or {})
    assert_only_tracked(standin, created.id)  # still there, still in state: destroy again


@pytest.mark.parametrize("step", ["create", "edit"])
def test_errors_quoting_the_request_back_hold_neither_key(
    standin: RunPodStandin, step: str
) -> None:
    provider = PodProvider()
    created = provider.create(pod_props()) if step == "edit" else None
    standin.inject(op(step), "echo_request")
    with pytest.raises(api.RunPodError) as caught:
        if created is None:
            provider.create(pod_props())
        else:
            provider.update(created.id, created.outs or {}, pod_props(image="ghcr.io/coral/x:2"))
    message = str(caught.value)
    assert "[redacted]" in message  # RunPod did quote them
    assert API_KEY not in message and AUTH_KEY not in message and "tskey-auth" not in message


def test_no_capacity_is_a_clear_error_and_creates_nothing(standin: RunPodStandin) -> None:
    standin.inject(op("create"), "no_capacity")
    with pytest.raises(api.RunPodCapacityError, match=r"no free GPU.*no longer any instances"):
        PodProvider().create(pod_props())
    assert_only_tracked(standin, None)
    assert count(standin, "create") == 1  # capacity is not retried blindly


def test_cloud_all_tries_each_cloud_before_reporting_no_capacity(
    standin: RunPodStandin, wire: str
) -> None:
    standin.inject(op("create"), "no_capacity")
    if wire == "graphql":  # GraphQL takes ALL as it is: no capacity there is none anywhere
        with pytest.raises(api.RunPodCapacityError):
            PodProvider().create(pod_props(cloud_type="ALL"))
        assert_only_tracked(standin, None)
        return
    created = PodProvider().create(pod_props(cloud_type="ALL"))  # SECURE, then COMMUNITY
    assert_only_tracked(standin, created.id)
    assert count(standin, "create") == 2
    assert standin.pods()[0].cloud_type == "COMMUNITY"


def test_real_capacity_shortage_is_reported(standin: RunPodStandin) -> None:
    standin.free_gpus["NVIDIA GeForce RTX 4090"] = 0
    with pytest.raises(api.RunPodCapacityError):
        PodProvider().create(pod_props())
    assert_only_tracked(standin, None)


def test_pod_that_never_runs_is_terminated_and_its_log_ends_the_error(
    standin: RunPodStandin,
) -> None:
    standin.never_running = True
    with pytest.raises(api.RunPodUnavailableError) as caught:
        PodProvider().create(pod_props())
    [pod] = standin.pods(include_terminated=True)
    message = str(caught.value)
    # The state the pod reached, not a contradiction ("did not reach RUNNING (status RUNNING)").
    assert re.match(
        rf"pod {pod.id} did not start its container within 0\.3 s: RunPod reports it "
        r"(RUNNING|STARTING) \(a host is assigned\) but its container has no runtime yet: the "
        r"image is still being pulled, or the container exits at start \(its last log lines "
        rf"follow when RunPod has them\); pod {pod.id} was terminated so nothing is left running",
        message,
    ), message
    # A pod that is a record only has no console (tests/runpod/test_pod_logs.py has lines).
    assert message.endswith(f"(pod {pod.id} has written no log lines yet)")
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
    standin.inject(op("resume"), "no_free_gpu")
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
    api.configure("rpa_WRONG_KEY_should_not_leak", api.current_api())
    with pytest.raises(api.RunPodAuthError, match="HTTP 401") as caught:
        PodProvider().create(pod_props())
    assert "rpa_WRONG_KEY_should_not_leak" not in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert standin.pods() == []


def test_missing_api_key_names_the_config_key(standin: RunPodStandin) -> None:
    api.configure(None, api.current_api())
    with pytest.raises(api.RunPodAuthError, match="coral:runpodApiKey"):
        api.list_pods()


def _spec() -> api.PodSpec:
    return pod_spec(ports=(), env={api.AUTH_KEY_ENV: AUTH_KEY})
