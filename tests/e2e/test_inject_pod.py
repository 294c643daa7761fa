"""`inject` mode in a pod with a clean PATH: the start command decodes start.sh, which downloads
the tailscale release (here Go-built binaries packed like Tailscale's, from a loopback server),
verifies its SHA-256, caches it on the volume and runs it from there, off PATH. A new shell in
the pod afterwards (RunPod's web terminal) must still find `tailscale` and its daemon with no
flags, after every start (the container disk, where the links live, is wiped each time).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import platform
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coral_infra.bootstrap import TAILSCALE_VERSION, pod_env, start_command
from standins.binaries import BinariesUnavailable, ensure_binaries
from standins.pod_runtime import IMAGE_PATH, PodRuntime, PodRuntimeError
from standins.tailnet_testbed import load_tailnet_plan, start_tailnet
from standins.tailscale_node import start_laptop
from standins.testbed import TAILSCALE_ENV, Testbed, wait_for

pytestmark = pytest.mark.integration

HOSTNAME = "coral-machine"
POD = "injectpod01"
CACHE = f"/workspace/deps/runtime/tailscale/bin/{TAILSCALE_VERSION}"
POLICY_REFUSAL = "tailnet policy does not permit you to SSH"


def release_tgz(bin_dir: Path) -> bytes:
    """The Go-built binaries laid out as Tailscale's static release tgz."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name in ("tailscale", "tailscaled"):
            tar.add(bin_dir / name, arcname=f"tailscale_{TAILSCALE_VERSION}_{arch}/{name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def release(bin_dir: Path) -> Iterator[tuple[str, str]]:
    """(URL, SHA-256) of the release on a loopback server."""
    body = release_tgz(bin_dir)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield (
            f"http://127.0.0.1:{server.server_address[1]}/tailscale.tgz",
            hashlib.sha256(body).hexdigest(),
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    try:
        return ensure_binaries("tailscale", "tailscaled", "headscale")
    except BinariesUnavailable as exc:
        pytest.skip(str(exc))


def shell(runtime: PodRuntime, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runtime.shell_command(POD, script), capture_output=True, text=True, timeout=60
    )


def test_injected_bootstrap_in_a_clean_pod_leaves_tailscale_usable_from_a_new_shell(
    bin_dir: Path, release: tuple[str, str]
) -> None:
    if shutil.which("tailscale", path=IMAGE_PATH) or shutil.which("tailscaled", path=IMAGE_PATH):
        pytest.skip("this host has tailscale on the default PATH: a pod here would not be clean")
    host_links_before = [
        Path("/usr/local/bin/tailscale").exists(),
        Path("/usr/local/bin/tailscaled").exists(),
    ]
    url, sha256 = release
    testbed = Testbed.create()
    try:
        runtime = PodRuntime(root=testbed.path("runpod"))
    except PodRuntimeError as exc:
        testbed.close()
        pytest.skip(str(exc))
    try:
        plan = load_tailnet_plan()
        tailnet = start_tailnet(testbed, bin_dir, plan)
        headscale = tailnet.headscale
        laptop = start_laptop(testbed, bin_dir, headscale, tailnet.owner_id, "owner-laptop")
        assert laptop.cli("set", "--ssh").returncode == 0
        env = {
            **TAILSCALE_ENV,
            **pod_env(
                hostname=HOSTNAME, userspace=True, extra_up_args=[f"--login-server={headscale.url}"]
            ),
            "TAILSCALE_AUTHKEY": headscale.create_auth_key(tags=[plan.prod.tag]),
            "TS_TAILSCALED_EXTRA_ARGS": "--port=0 --no-logs-no-support",
            "CORAL_SSHD": "0",
            "CORAL_TAILSCALE_URL": url,
            "CORAL_TAILSCALE_SHA256": sha256,
        }

        def boot() -> str:
            runtime.start(
                POD,
                env=[f"{k}={v}" for k, v in env.items()],
                docker_args=start_command(),
                mount_path="/workspace",
                network_volume_id=None,
            )

            def this_start() -> str | None:
                text = runtime.log_path(POD).read_text()
                latest = text[text.rindex("--- pod ") :]
                return latest if "Tailscale SSH enabled" in latest else None

            return wait_for("the bootstrap to enable Tailscale SSH", this_start, timeout_s=90)

        console = boot()
        assert "sha256 verified" in console
        assert f"linked /usr/local/bin/tailscale -> {CACHE}/tailscale" in console
        [node] = headscale.nodes_named(HOSTNAME)
        ipv4 = next(ip for ip in node["ip_addresses"] if "." in ip)

        for start in ("first start (downloaded)", "restart (cached on the volume)"):
            checked = shell(
                runtime,
                "echo $PATH; command -v tailscale; readlink /usr/local/bin/tailscale; "
                "tailscale status; echo ---; tailscale ip -4; echo ---; "
                "for _ in $(seq 100); do "
                "  tailscale status --json | grep -q ssh-ed25519 && break; sleep 0.2; done; "
                "tailscale ssh root@owner-laptop true",
            )
            lines = checked.stdout.splitlines()
            assert "tailscale" not in lines[0], f"{start}: PATH is not clean: {lines[0]}"
            assert lines[1:3] == ["/usr/local/bin/tailscale", f"{CACHE}/tailscale"], (
                start,
                checked.stdout,
                checked.stderr,
            )
            status, ip, _ = checked.stdout.split("---\n")
            assert HOSTNAME in status and "owner-laptop" in status, (start, status)
            assert ip.strip() == ipv4, start
            # The laptop's Tailscale SSH server answered (and refused a tagged machine): the CLI
            # reached tailscaled on the default socket, ssh found `tailscale nc` on the PATH.
            assert POLICY_REFUSAL in checked.stderr, (start, checked.stderr)
            if start.startswith("first"):
                runtime.stop(POD)
                console = boot()
                assert f"using cached tailscale binaries in {CACHE}" in console
        assert "downloading" not in console  # the restart
    finally:
        runtime.close()
        testbed.close()
    # Nothing of it on the host: the links were made in the pod's own root.
    assert [
        Path("/usr/local/bin/tailscale").exists(),
        Path("/usr/local/bin/tailscaled").exists(),
    ] == host_links_before
