"""The API key never lands in pickled providers or messages; check/diff import no HTTP client
or SDK; the REST v2 path never imports the runpod SDK (the day GraphQL goes, it is not needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dill
import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config
from pulumi.dynamic.dynamic import serialize_provider

from coral_infra.runpod import api, session
from coral_infra.runpod.pod import PodProvider
from coral_infra.runpod.volume import NetworkVolumeProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import API_KEY, AUTH_KEY, op, pod_props

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("provider_class", [PodProvider, NetworkVolumeProvider])
def test_configured_provider_pickles_without_the_api_key(
    standin: RunPodStandin, provider_class: type, wire: str
) -> None:
    provider = provider_class()
    config = {api.API_KEY_CONFIG: API_KEY, api.API_CONFIG: json.dumps({"api": wire})}
    provider.configure(ConfigureRequest(Config(config, "coral")))
    assert session._credentials.api_key == API_KEY  # configure did take the key
    assert api.current_api() == wire
    for blob in (dill.dumps(provider, recurse=True), serialize_provider(provider).encode()):
        assert API_KEY.encode() not in blob
    assert API_KEY.encode() not in dill.dumps(provider, recurse=True)


def test_api_key_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(api.API_KEY_ENV, "from-env")
    PodProvider().configure(ConfigureRequest(Config({}, "coral")))
    assert session._credentials.api_key == "from-env"
    assert api.current_api() == "v2"  # the default without coral:runpod
    api.configure(None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"api": "rest"}', "coral:runpod.api: got 'rest'; allowed: v2, graphql"),
        ("[1]", "coral:runpod: got [1]; expected {api: v2}"),
    ],
)
def test_a_bad_api_choice_fails_configure_naming_the_key(value: str, message: str) -> None:
    with pytest.raises(api.InvalidValueError) as caught:
        PodProvider().configure(ConfigureRequest(Config({api.API_CONFIG: value}, "coral")))
    assert str(caught.value) == message
    api.configure(None)


def test_the_api_choices_are_the_settings_choices() -> None:
    from typing import get_args

    from coral_infra.settings import RunPodSettings

    annotation = RunPodSettings.model_fields["api"].annotation
    assert set(get_args(annotation)) == set(api.WIRE_FORMATS)


def test_outputs_hold_the_auth_key_only_under_auth_key(standin: RunPodStandin) -> None:
    result = PodProvider().create(pod_props())
    outs = result.outs or {}
    assert [k for k, v in outs.items() if AUTH_KEY in repr(v)] == ["auth_key"]
    assert API_KEY not in repr(outs)
    read = PodProvider().read(result.id, outs)
    assert [k for k, v in (read.outs or {}).items() if AUTH_KEY in repr(v)] == ["auth_key"]


def test_error_messages_never_contain_the_api_key(standin: RunPodStandin) -> None:
    standin.inject(op("list"), "server_error", times=50)
    with pytest.raises(api.RunPodError) as caught:
        PodProvider().create(pod_props())
    assert API_KEY not in str(caught.value) and AUTH_KEY not in str(caught.value)


def test_pod_resource_registers_auth_key_as_a_secret() -> None:
    """Mocks never run create(), but they do pickle the provider and resolve outputs."""
    import pulumi
    from pulumi.runtime.sync_await import _sync_await

    from coral_infra.runpod import Pod, PodArgs

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            return "pod123", {**args.inputs, "pod_id": "pod123"}

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
            return {}, None

    monitor = pulumi.runtime.mocks.MockMonitor(Mocks())
    pulumi.runtime.set_mocks(Mocks(), project="coral", stack="test", preview=False, monitor=monitor)
    args = PodArgs(name="coral-machine", image="img:1", gpu_type_id="NVIDIA A40", auth_key=AUTH_KEY)
    pod = Pod("machine", args)
    assert _sync_await(pod.pod_id.future()) == "pod123"
    assert _sync_await(pod.auth_key.is_secret()) is True
    assert _sync_await(pod.pod_id.is_secret()) is False
    (urn,) = monitor.get_registered_resources()
    assert urn.endswith("dynamic/runpod:Pod::machine")


def test_import_and_diff_do_not_import_the_runpod_sdk(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from coral_infra.runpod import Pod, PodArgs, NetworkVolume, NetworkVolumeArgs
        from coral_infra.runpod.pod import PodProvider
        from coral_infra.runpod.volume import NetworkVolumeProvider
        from tests.runpod.helpers import pod_props
        provider = PodProvider()
        news = provider.check({}, pod_props()).inputs
        assert provider.diff("p", pod_props(), news).changes is False
        vols = NetworkVolumeProvider()
        v = {"name": "v", "data_center_id": "EU-RO-1", "size_gb": 10.0}
        assert vols.diff("v", v, vols.check(v, v).inputs).changes is False
        print("runpod" in sys.modules, "httpx2" in sys.modules)
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False False"


@pytest.mark.parametrize("wire", ["v2", "graphql"])
def test_the_rest_v2_path_never_imports_the_runpod_sdk(tmp_path: Path, wire: str) -> None:
    """A whole pod and volume life over REST v2, and the program's own RunPod reads (the
    catalog, the pods' run states), in a fresh interpreter: no `runpod` module is ever imported,
    so deleting coral_infra/runpod/graphql.py (and the SDK) changes nothing.
    (The same life over GraphQL does import it: the check can fail.)"""
    script = textwrap.dedent(
        """
        import os, sys
        from dataclasses import replace
        import coral_infra.machine, coral_infra.preflight, coral_infra.tailnet  # the program's
        from coral_infra.runpod import api, lifecycle, session
        from coral_infra.runpod.pod import PodProvider
        from coral_infra.runpod.volume import NetworkVolumeProvider
        from standins.runpod_api import RunPodStandin
        from tests.runpod.helpers import API_KEY, FAST, pod_props

        # Not a test of timing: generous calls, a machine under load must not fail it.
        session.timing = replace(FAST, call_timeout=10.0, retry_budget=60.0)
        with RunPodStandin(API_KEY) as standin:
            os.environ["RUNPOD_API_BASE_URL"] = standin.url
            api.configure(API_KEY, sys.argv[1])
            volume = NetworkVolumeProvider().create(
                {"name": "w", "data_center_id": "EU-RO-1", "size_gb": 10}
            )
            pod = PodProvider().create(pod_props(network_volume_id=volume.id, volume_gb=0))
            PodProvider().read(pod.id, pod.outs)
            PodProvider().update(pod.id, pod.outs, pod_props(image="img:2", volume_gb=0))
            api.stop_pod(pod.id)
            api.resume_pod(pod.id, 1)
            api.pod_log(pod.id)
            api.get_catalog(["SECURE"])
            lifecycle.pods_by_name([pod.outs["name"]])  # the program's one listing
            PodProvider().delete(pod.id, pod.outs)
            NetworkVolumeProvider().delete(volume.id, {})
            assert standin.pods() == [] and standin.volumes() == []
            print(sorted(m for m in sys.modules if m == "runpod" or m.startswith("runpod.")))
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script, wire], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    imported = out.stdout.strip()
    assert (imported == "[]") == (wire == "v2"), imported
