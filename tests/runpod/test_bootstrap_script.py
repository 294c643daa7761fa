"""The injected bootstrap as a pod input: named by its digest in the inputs and in state, the
script itself put into the pod's env by the provider, and a pod read back compared by the
digest of the script its env carries. On both wire formats."""

from __future__ import annotations

import base64
import hashlib

import pytest

from coral_infra import bootstrap
from coral_infra.runpod import api
from coral_infra.runpod.pod import PodProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import pod_props, pod_spec

SCRIPT = bootstrap.SCRIPT_PATH.read_bytes()
DIGEST = f"sha256:{hashlib.sha256(SCRIPT).hexdigest()}"
ENCODED = base64.b64encode(SCRIPT).decode()


def injected(**overrides: object) -> dict[str, object]:
    return pod_props(**{"bootstrap_script": DIGEST, **overrides})


def test_create_puts_the_script_into_the_pods_env_and_keeps_its_digest(
    standin: RunPodStandin,
) -> None:
    created = PodProvider().create(injected())
    [pod] = standin.pods()
    assert f"{bootstrap.SCRIPT_ENV}={ENCODED}" in pod.env
    outs = created.outs or {}
    assert outs["bootstrap_script"] == DIGEST
    assert bootstrap.SCRIPT_ENV not in outs["env"]
    assert ENCODED not in repr(outs)


def test_read_names_the_script_of_the_live_pod_by_its_digest(standin: RunPodStandin) -> None:
    created = PodProvider().create(injected())
    read = PodProvider().read(created.id, created.outs or {})
    assert read.inputs is not None and read.outs is not None
    assert read.inputs["bootstrap_script"] == read.outs["bootstrap_script"] == DIGEST
    assert bootstrap.SCRIPT_ENV not in read.inputs["env"]
    diff = PodProvider().diff(created.id, read.outs, injected())
    assert diff.changes is False


def test_a_script_changed_on_runpod_shows_as_drift_and_is_put_back_in_place(
    standin: RunPodStandin,
) -> None:
    created = PodProvider().create(injected())
    other = base64.b64encode(b"#!/bin/bash\necho not ours\n").decode()
    api.edit_pod(
        created.id,
        pod_spec(env={bootstrap.SCRIPT_ENV: other, "CORAL_HOSTNAME": "coral-machine"}),
    )
    read = PodProvider().read(created.id, created.outs or {})
    assert read.outs is not None and read.outs["bootstrap_script"] not in (None, DIGEST)
    diff = PodProvider().diff(created.id, read.outs, injected())
    assert (diff.changes, diff.replaces) == (True, [])
    PodProvider().update(created.id, read.outs, injected())
    [pod] = standin.pods()
    assert f"{bootstrap.SCRIPT_ENV}={ENCODED}" in pod.env


def test_state_from_before_with_the_script_in_env_plans_no_change() -> None:
    """State written when the program sent the script itself: the same script is no change."""
    olds = {**pod_props(env={"CORAL_HOSTNAME": "coral-machine", bootstrap.SCRIPT_ENV: ENCODED})}
    diff = PodProvider().diff("pod1", olds, injected())
    assert diff.changes is False
    changed = {
        **olds,
        "env": {**olds["env"], bootstrap.SCRIPT_ENV: base64.b64encode(b"x").decode()},
    }
    assert PodProvider().diff("pod1", changed, injected()).changes is True


def test_check_refuses_what_is_not_a_digest() -> None:
    failures = PodProvider().check({}, pod_props(bootstrap_script=ENCODED[:80])).failures
    assert [f.property for f in failures] == ["bootstrap_script"]
    assert PodProvider().check({}, injected()).failures == []


def test_a_digest_of_another_script_is_refused_before_anything_is_sent(
    standin: RunPodStandin,
) -> None:
    other = f"sha256:{hashlib.sha256(b'another script').hexdigest()}"
    standin.reset_calls()
    with pytest.raises(api.InvalidValueError, match=r"is not coral_infra/bootstrap/start\.sh"):
        PodProvider().create(injected(bootstrap_script=other))
    assert standin.pods() == [] and standin.calls == []
