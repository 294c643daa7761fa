"""The injected bootstrap as a pod input: named by one digest in the inputs and in state (start.sh,
with idle_stop.sh when the pod has the idle stop), the files themselves put into the pod's env by
the provider, and a pod read back compared by the digest of the files its env carries. On both
wire formats."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from coral_infra import bootstrap
from coral_infra.runpod import api
from coral_infra.runpod.pod import PodProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import pod_props, pod_spec

SCRIPT = bootstrap.SCRIPT_PATH.read_bytes()
WATCHER = bootstrap.IDLE_STOP_SCRIPT_PATH.read_bytes()


def listing_digest(*files: tuple[bytes, str]) -> str:
    """What `sha256sum FILE... | sha256sum` prints, as "sha256:<hex>"."""
    listing = "".join(f"{hashlib.sha256(body).hexdigest()}  {name}\n" for body, name in files)
    return f"sha256:{hashlib.sha256(listing.encode()).hexdigest()}"


DIGEST = listing_digest((SCRIPT, "start.sh"))
IDLE_DIGEST = listing_digest((SCRIPT, "start.sh"), (WATCHER, "idle_stop.sh"))
ENCODED = base64.b64encode(SCRIPT).decode()
ENCODED_WATCHER = base64.b64encode(WATCHER).decode()


def injected(**overrides: object) -> dict[str, object]:
    return pod_props(**{"bootstrap_script": DIGEST, **overrides})


def test_create_puts_the_script_into_the_pods_env_and_keeps_its_digest(
    standin: RunPodStandin,
) -> None:
    created = PodProvider().create(injected())
    [pod] = standin.pods()
    assert f"{bootstrap.SCRIPT_ENV}={ENCODED}" in pod.env
    # Without the idle stop the watcher stays out: it never runs, and env slots are scarce.
    assert not [v for v in pod.env if v.startswith(f"{bootstrap.IDLE_STOP_SCRIPT_ENV}=")]
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


def test_with_the_idle_stop_the_watcher_travels_beside_the_script_under_one_digest(
    standin: RunPodStandin,
) -> None:
    created = PodProvider().create(injected(bootstrap_script=IDLE_DIGEST))
    [pod] = standin.pods()
    assert f"{bootstrap.SCRIPT_ENV}={ENCODED}" in pod.env
    assert f"{bootstrap.IDLE_STOP_SCRIPT_ENV}={ENCODED_WATCHER}" in pod.env
    outs = created.outs or {}
    assert outs["bootstrap_script"] == IDLE_DIGEST
    assert not set(bootstrap.SCRIPT_FILES) & set(outs["env"])
    assert ENCODED_WATCHER not in repr(outs)

    read = PodProvider().read(created.id, outs)
    assert read.inputs is not None and read.outs is not None
    assert read.inputs["bootstrap_script"] == IDLE_DIGEST
    assert not set(bootstrap.SCRIPT_FILES) & set(read.inputs["env"])
    assert (
        PodProvider().diff(created.id, read.outs, injected(bootstrap_script=IDLE_DIGEST)).changes
        is False
    )
    # Turning the idle stop off takes the watcher out of the pod: another digest, an edit.
    diff = PodProvider().diff(created.id, read.outs, injected())
    assert (diff.changes, diff.replaces) == (True, [])
    PodProvider().update(created.id, read.outs, injected())
    [pod] = standin.pods()
    assert f"{bootstrap.SCRIPT_ENV}={ENCODED}" in pod.env
    assert not [v for v in pod.env if v.startswith(f"{bootstrap.IDLE_STOP_SCRIPT_ENV}=")]


def test_a_watcher_changed_on_runpod_shows_as_drift_and_is_put_back_in_place(
    standin: RunPodStandin,
) -> None:
    created = PodProvider().create(injected(bootstrap_script=IDLE_DIGEST))
    other = base64.b64encode(WATCHER.replace(b"keep running", b"stop anyway")).decode()
    api.edit_pod(
        created.id,
        pod_spec(
            env={
                bootstrap.SCRIPT_ENV: ENCODED,
                bootstrap.IDLE_STOP_SCRIPT_ENV: other,
                "CORAL_HOSTNAME": "coral-machine",
            }
        ),
    )
    read = PodProvider().read(created.id, created.outs or {})
    assert read.outs is not None
    assert read.outs["bootstrap_script"] not in (None, DIGEST, IDLE_DIGEST)
    diff = PodProvider().diff(created.id, read.outs, injected(bootstrap_script=IDLE_DIGEST))
    assert (diff.changes, diff.replaces) == (True, [])
    PodProvider().update(created.id, read.outs, injected(bootstrap_script=IDLE_DIGEST))
    [pod] = standin.pods()
    assert f"{bootstrap.IDLE_STOP_SCRIPT_ENV}={ENCODED_WATCHER}" in pod.env


def test_the_digest_is_what_sha256sum_prints_for_the_files_a_pod_carries() -> None:
    """Reproducible in a shell beside the files; checked against coreutils, not our own code."""

    def shell(files: str) -> str:
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; sha256sum {files} | sha256sum"],
            cwd=bootstrap.SCRIPT_PATH.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        return f"sha256:{done.stdout.split()[0]}"

    assert bootstrap.script_digest(idle_stop=False) == DIGEST == shell("start.sh")
    assert bootstrap.script_digest(idle_stop=True) == IDLE_DIGEST == shell("start.sh idle_stop.sh")
    assert DIGEST != IDLE_DIGEST


def test_a_change_to_idle_stop_sh_changes_the_digest_of_pods_with_the_idle_stop_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = tmp_path / "idle_stop.sh"
    shutil.copy(bootstrap.IDLE_STOP_SCRIPT_PATH, changed)
    with changed.open("a") as script:
        script.write("# one more line\n")
    monkeypatch.setitem(bootstrap.SCRIPT_FILES, bootstrap.IDLE_STOP_SCRIPT_ENV, changed)

    assert bootstrap.script_digest(idle_stop=True) not in (IDLE_DIGEST, DIGEST)
    assert bootstrap.script_digest(idle_stop=False) == DIGEST
    # State and pods carrying the old watcher now differ from what the program asks for.
    olds = pod_props(
        bootstrap_script=IDLE_DIGEST,
        env={bootstrap.SCRIPT_ENV: ENCODED, bootstrap.IDLE_STOP_SCRIPT_ENV: ENCODED_WATCHER},
    )
    news = injected(bootstrap_script=bootstrap.script_digest(idle_stop=True))
    assert PodProvider().diff("pod1", olds, news).changes is True
    assert (
        bootstrap.script_env_of(news["bootstrap_script"])[bootstrap.IDLE_STOP_SCRIPT_ENV]
        == base64.b64encode(changed.read_bytes()).decode()
    )


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
