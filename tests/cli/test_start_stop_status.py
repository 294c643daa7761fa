"""`coral start`, `coral stop` and `coral status` with a stand-in `pulumi` on PATH (it answers
`stack output`, `config` and `stack --show-name` from files, as the real one would for a
deployed stack), a stand-in `tailscale`, and the RunPod stand-in with pods that really run."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from coral_infra import cli
from coral_infra.runpod import api, session
from standins.pod_runtime import PodRuntime, PodRuntimeError
from standins.runpod_api import RunPodStandin
from standins.runpod_records import PodSpec, StandinPod

ACCOUNT_KEY = "rpa_CLI_TEST_ACCOUNT_KEY_0123456789"
# A stand-in bootstrap: says the device is online at every boot, like start.sh.
BOOT = (
    'bash -c \'echo "[coral-bootstrap] Tailscale SSH enabled; reachable as $TS_HOSTNAME"; '
    "exec sleep 300'"
)
FAKE_PULUMI = """#!/bin/sh
echo "$*" >> "$FAKE_PULUMI_DIR/argv"
case "$1 $2" in
    "stack output") cat "$FAKE_PULUMI_DIR/outputs.json" ;;
    "config --json") cat "$FAKE_PULUMI_DIR/config.json" ;;
    "stack --show-name") echo dev ;;
    *) echo "stand-in pulumi: unsupported: $*" >&2; exit 2 ;;
esac
"""


@dataclasses.dataclass
class Deployed:
    runpod: RunPodStandin
    dir: Path
    pods: dict[str, StandinPod]

    def outputs(self, **pod_ids: str) -> None:
        machines = {
            host: {
                "podId": pod_ids.get(host, pod.id),
                "magicDnsName": f"{host}.tail1234.ts.net",
                "tailscaleIps": ["100.64.0.9"],
            }
            for host, pod in self.pods.items()
        }
        (self.dir / "outputs.json").write_text(json.dumps({"machines": machines}))

    def status(self, host: str) -> str:
        return self.runpod.pod_status(self.runpod.live_pod(self.pods[host].id))

    def pulumi_calls(self) -> list[str]:
        path = self.dir / "argv"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """Stack `dev` with two machines, as `pulumi up` left it."""
    try:
        runtime = PodRuntime(root=tmp_path / "runpod")
    except PodRuntimeError as exc:
        pytest.skip(str(exc))
    fake = tmp_path / "pulumi"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "pulumi").write_text(FAKE_PULUMI)
    (fake / "bin" / "pulumi").chmod(0o755)
    config = {
        "coral:runpodApiKey": {"value": ACCOUNT_KEY, "secret": True},
        "coral:runpod": {"value": '{"api":"v2"}', "secret": False},
    }
    (fake / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("FAKE_PULUMI_DIR", str(fake))
    monkeypatch.setenv("PATH", f"{fake / 'bin'}:/usr/bin:/bin")
    monkeypatch.delenv(api.API_KEY_ENV, raising=False)
    quick = dataclasses.replace(
        session.timing, poll_interval=0.2, online_deadline=10.0, log_idle=0.5
    )
    monkeypatch.setattr(session, "timing", quick)
    with RunPodStandin(ACCOUNT_KEY, runtime=runtime) as runpod:
        monkeypatch.setenv(api.BASE_URL_ENV, runpod.url)
        pods = {
            host: runpod.create_pod(
                PodSpec(
                    name=f"{host}-dev",
                    image="runpod/base:test",
                    gpu_type_id="NVIDIA GeForce RTX 4090",
                    volume_gb=10,
                    volume_mount_path="/workspace",
                    docker_args=BOOT,
                    env={"TS_HOSTNAME": host},
                ),
                id_prefix="pod_",
            )
            for host in ("coral-dev", "coral-gpu2")
        }
        stack = Deployed(runpod, fake, pods)
        stack.outputs()
        yield stack
    api.configure(None)


def coral(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stop_then_start_one_machine(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = deployed.pods["coral-dev"]
    code, out, err = coral(capsys, "stop", "dev/coral-dev")
    assert (code, err) == (0, "")
    assert deployed.status("coral-dev") == "EXITED"
    assert deployed.status("coral-gpu2") == "RUNNING"  # only the machine named
    assert out.splitlines() == [
        f"stopping coral-dev (pod {pod.id})",
        f"coral-dev (pod {pod.id}) is stopped: its GPU no longer bills; its volume, and the "
        "tailnet identity on it, stays (and bills as storage). Bring it back with `coral start "
        "dev/coral-dev` or `pulumi up --stack dev`",
    ]

    code, out, err = coral(capsys, "start", "dev/coral-dev")
    assert (code, err) == (0, "")
    assert deployed.status("coral-dev") == "RUNNING"
    lines = out.splitlines()
    assert lines[0] == f"coral-dev (pod {pod.id}) is EXITED: starting it"
    assert any(line.startswith("coral-dev is online on the tailnet again after") for line in lines)
    assert lines[-1] == (
        f"coral-dev (pod {pod.id}) is running again at $0.69/h: same device, IPs and SSH config"
    )
    # The key came from the stack's secret config, and was never printed.
    assert "config --json --show-secrets --stack dev" in deployed.pulumi_calls()
    assert ACCOUNT_KEY not in out + err


def test_twice_is_harmless(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    pod = deployed.pods["coral-dev"]
    assert coral(capsys, "start", "dev/coral-dev")[1] == (
        f"coral-dev (pod {pod.id}) is already running\n"
    )
    coral(capsys, "stop", "dev/coral-dev")
    assert coral(capsys, "stop", "dev/coral-dev")[1] == (
        f"coral-dev (pod {pod.id}) is already stopped\n"
    )


def test_a_pod_gone_from_the_outputs_is_found_by_its_unique_name(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.outputs(**{"coral-dev": "pod_migratedaway01"})
    code, _, err = coral(capsys, "stop", "dev/coral-dev")
    assert (code, err) == (0, "")
    assert deployed.status("coral-dev") == "EXITED"


def test_the_key_from_the_environment_needs_no_decrypted_config(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (deployed.dir / "config.json").write_text("{}")
    monkeypatch.setenv(api.API_KEY_ENV, ACCOUNT_KEY)
    assert coral(capsys, "stop", "dev/coral-dev")[0] == 0
    assert "config --json --stack dev" in deployed.pulumi_calls()
    assert not [c for c in deployed.pulumi_calls() if "--show-secrets" in c]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ("start", "dev"),
            "coral start: got 'dev'; name a machine as STACK/HOSTNAME, e.g. dev/coral-dev\n",
        ),
        (
            ("stop", "dev/nope"),
            "coral stop: stack 'dev' has no machine 'nope'; its machines: coral-dev, coral-gpu2\n",
        ),
    ],
)
def test_mistakes_say_what_is_allowed(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: str
) -> None:
    code, out, err = coral(capsys, *argv)
    assert (code, out, err) == (2, "", expected)


def test_no_key_anywhere_says_where_to_put_one(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    (deployed.dir / "config.json").write_text("{}")
    code, _, err = coral(capsys, "stop", "dev/coral-dev")
    assert code == 2
    assert err == (
        "coral stop: no RunPod API key: export RUNPOD_API_KEY, or set it on the stack with "
        "`pulumi config set --stack dev --secret coral:runpodApiKey <key>`\n"
    )


def test_start_without_a_free_gpu_on_the_host_says_what_to_do(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    coral(capsys, "stop", "dev/coral-dev")
    deployed.runpod.free_gpus["NVIDIA GeForce RTX 4090"] = 0
    code, _, err = coral(capsys, "start", "dev/coral-dev")
    assert code == 2
    pod = deployed.pods["coral-dev"]
    assert err.startswith(
        f"coral start: coral-dev (pod {pod.id}) is stopped and RunPod cannot start it: its host "
        "machine has no free 1 x NVIDIA GeForce RTX 4090 right now"
    )
    assert "`coral start <stack>/coral-dev`" in err
    assert "a fresh volume and joins the tailnet as a new device" in err
    assert deployed.status("coral-dev") == "EXITED"


def fake_tailscale(deployed: Deployed, online: dict[str, bool]) -> None:
    peers = {
        f"nodekey:{i}": {
            "DNSName": f"{host}.tail1234.ts.net.",
            "Online": up,
            "TailscaleIPs": [f"100.64.0.{i}"],
            "LastSeen": "2026-12-01T10:00:00Z",
        }
        for i, (host, up) in enumerate(online.items(), start=1)
    }
    status = json.dumps({"BackendState": "Running", "Peer": peers})
    script = deployed.dir / "bin" / "tailscale"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{status}\nEOF\n")
    script.chmod(0o755)


def test_status_shows_pod_state_price_and_tailnet_state(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    coral(capsys, "stop", "dev/coral-gpu2")
    fake_tailscale(deployed, {"coral-dev": True, "coral-gpu2": False})
    code, out, err = coral(capsys, "status")
    assert (code, err) == (0, "")
    dev, gpu2 = deployed.pods["coral-dev"], deployed.pods["coral-gpu2"]
    rows = [line.split("  ") for line in out.splitlines()[1:]]
    cells = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert out.splitlines()[0] == "stack dev"  # the selected stack
    assert cells == [
        ["MACHINE", "POD", "PRICE", "TAILNET (from this computer)"],
        ["coral-dev", f"RUNNING ({dev.id})", "$0.69/h", "online 100.64.0.1"],
        [
            "coral-gpu2",
            f"EXITED ({gpu2.id})",
            "GPU not billed (stopped); the volume bills as storage",
            "offline (last seen 2026-12-01T10:00:00Z)",
        ],
    ]


def test_status_without_tailscale_still_shows_the_pods(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.runpod.vanish(deployed.pods["coral-gpu2"].id)
    code, out, _ = coral(capsys, "status", "--stack", "dev")
    assert code == 0
    assert "unknown: no `tailscale` on this computer" in out
    assert "no pod (terminated? `pulumi up` recreates it)" in out
