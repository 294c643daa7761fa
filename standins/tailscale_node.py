"""Tailscale nodes on loopback: a userspace tailscaled reached through its LocalAPI socket,
however it was started: plainly (the user's laptop) or as coral-machine booted by our bootstrap
script or by Tailscale's containerboot, the reference the bootstrap is measured against.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral_infra.bootstrap import SCRIPT_PATH
from standins.headscale import Headscale
from standins.testbed import Daemon, Testbed, base_env, wait_for


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout_s: float) -> None:
        super().__init__("local-tailscaled.sock", timeout=timeout_s)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


@dataclass
class TailscaleNode:
    """A tailscaled reachable through `socket`, however it was started."""

    bin_dir: Path
    socket: Path
    state_dir: Path
    home: Path
    daemon: Daemon

    def cli(self, *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "tailscale"), f"--socket={self.socket}", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=base_env(self.bin_dir, self.home),
            check=False,
            start_new_session=True,  # no controlling tty: ssh can never prompt for a password
        )

    def local_api(self, path: str, timeout_s: float = 2) -> Any:
        """GET on tailscaled's LocalAPI; None while nothing answers on the socket.

        Direct HTTP over the unix socket rather than the CLI: the CLI can sit waiting on a
        stale socket left by the previous run, which would blur restart timings.
        """
        conn = _UnixHTTPConnection(self.socket, timeout_s)
        try:
            conn.request("GET", path, headers={"Host": "local-tailscaled.sock"})
            response = conn.getresponse()
            body = response.read()
        except OSError:
            return None
        finally:
            conn.close()
        return json.loads(body) if response.status == 200 else None

    def status(self) -> dict[str, Any] | None:
        """What `tailscale status --json` shows, or None while the daemon does not answer."""
        status: dict[str, Any] | None = self.local_api("/localapi/v0/status")
        return status

    def prefs(self) -> dict[str, Any]:
        prefs: dict[str, Any] | None = self.local_api("/localapi/v0/prefs")
        if prefs is None:
            raise RuntimeError(f"{self.daemon.name}: tailscaled does not answer on {self.socket}")
        return prefs

    def wait_backend(self, states: Sequence[str], timeout_s: float) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if not self.daemon.running() and not self.socket.exists():
                raise RuntimeError(f"{self.daemon.name} exited:\n{self.daemon.log()[-4000:]}")
            status = self.status()
            return status if status and status.get("BackendState") in states else None

        return wait_for(f"{self.daemon.name} backend state in {list(states)}", probe, timeout_s)

    def wait_running(self, timeout_s: float = 30) -> dict[str, Any]:
        """Running with tailnet IPs: registered and holding a network map."""

        def probe() -> dict[str, Any] | None:
            status = self.wait_backend(["Running"], timeout_s)
            return status if (status.get("Self") or {}).get("TailscaleIPs") else None

        return wait_for(f"{self.daemon.name} online", probe, timeout_s)

    def up(self, login_server: str, auth_key: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "up",
            f"--login-server={login_server}",
            f"--auth-key={auth_key}",
            "--timeout=30s",
            *extra,
            timeout_s=45,
        )

    def wait_peer(self, hostname: str, timeout_s: float = 20) -> dict[str, Any]:
        """Waits until `hostname` is in this node's netmap with its SSH host keys.

        The keys reach peers one control round trip after the machine turns SSH on; before
        that `tailscale ssh` fails with "Host key verification failed" (it pins them).
        """

        def probe() -> dict[str, Any] | None:
            status = self.status() or {}
            for peer in (status.get("Peer") or {}).values():
                if peer.get("HostName") == hostname and peer.get("sshHostKeys"):
                    return dict(peer)
            return None

        return wait_for(f"peer {hostname} with SSH host keys in the netmap", probe, timeout_s)

    def start_ssh(self, target: str, *command: str, output_dir: Path) -> subprocess.Popen[str]:
        """`tailscale ssh` left running, for flows that need a second party mid-session (SSH
        `check` mode waits for the control server to approve). Output goes to ssh.out and
        ssh.err in `output_dir` so the caller can watch stderr while it waits."""
        with (output_dir / "ssh.out").open("w") as out, (output_dir / "ssh.err").open("w") as err:
            return subprocess.Popen(
                [
                    str(self.bin_dir / "tailscale"),
                    f"--socket={self.socket}",
                    "ssh",
                    target,
                    *command,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                env=base_env(self.bin_dir, self.home),
                start_new_session=True,
            )

    def ssh(
        self, target: str, *command: str, timeout_s: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """`tailscale ssh user@host cmd`: the system ssh through `tailscale nc`, so it works
        in userspace mode; known_hosts lands in this node's own config dir."""
        return self.cli("ssh", target, *command, timeout_s=timeout_s)


def start_tailscaled(
    testbed: Testbed, bin_dir: Path, name: str, state_dir: Path | None = None
) -> TailscaleNode:
    """A plain userspace tailscaled; `state_dir` persists identity across restarts."""
    state_dir = state_dir or testbed.path(f"{name}-state")
    sock = testbed.path(f"{name}-run") / "tailscaled.sock"
    home = testbed.path(f"{name}-home")
    daemon = testbed.spawn(
        name,
        [
            str(bin_dir / "tailscaled"),
            "--tun=userspace-networking",
            f"--statedir={state_dir}",
            f"--socket={sock}",
            "--port=0",
            "--no-logs-no-support",
        ],
        base_env(bin_dir, home),
    )
    node = TailscaleNode(bin_dir, sock, state_dir, home, daemon)
    node.wait_backend(["NeedsLogin", "Running", "Starting", "NoState", "Stopped"], timeout_s=20)
    return node


def start_laptop(
    testbed: Testbed, bin_dir: Path, headscale: Headscale, user_id: int, name: str
) -> TailscaleNode:
    """The user's laptop: logged in as a user (not tagged), like `tailscale up` by a person."""
    node = start_tailscaled(testbed, bin_dir, name)
    key = headscale.create_auth_key(user_id=user_id, reusable=False)
    result = node.up(headscale.url, key, f"--hostname={name}", "--accept-dns=false")
    if result.returncode != 0:
        raise RuntimeError(f"laptop {name}: tailscale up failed: {result.stderr.strip()}")
    node.wait_running()
    return node


# ----------------------------------------------------------------- coral-machine boot methods


def _container_env(
    testbed: Testbed,
    bin_dir: Path,
    headscale: Headscale,
    state_dir: Path,
    name: str,
    extra_up_args: Sequence[str] = (),
) -> tuple[Path, Path, dict[str, str]]:
    """The socket, home and env of containerboot's conventions (TS_*) that both entrypoints
    read, for a node of `name` on `headscale` in userspace networking."""
    sock = testbed.path(f"{name}-run") / "tailscaled.sock"
    home = testbed.path(f"{name}-home")
    env = {
        **base_env(bin_dir, home),
        "TS_STATE_DIR": str(state_dir),
        "TS_SOCKET": str(sock),
        "TS_USERSPACE": "true",
        "TS_EXTRA_ARGS": " ".join([f"--login-server={headscale.url}", *extra_up_args]),
        "TS_TAILSCALED_EXTRA_ARGS": "--port=0 --no-logs-no-support",
    }
    return sock, home, env


# containerboot links the socket it was given at the CLI's default path when the two differ
# (/var/run/tailscale/tailscaled.sock, tailscale#6849). On a host that link and its directory
# would outlive the run, so it runs in a mount namespace of its own with an empty /var/run:
# both go with it. Needs root and unshare, as the sandbox's pods do.
OWN_VAR_RUN = (
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount -t tmpfs coral-var-run /var/run && exec "$@"',
    "sh",
)


def start_bootstrap(
    testbed: Testbed,
    bin_dir: Path,
    headscale: Headscale,
    state_dir: Path,
    name: str,
    env: Mapping[str, str],
    main_command: Sequence[str] = ("sleep", "3600"),
    script: Path = SCRIPT_PATH,
    own_var_run: bool = False,
) -> TailscaleNode:
    """Runs the real coral_infra/bootstrap/start.sh (or another version of it: `script`, for
    the benchmark's before/after) as the container entrypoint would. `own_var_run`: started
    the way containerboot is here (OWN_VAR_RUN), so the benchmark times both alike.

    `env` holds the test's choice of auth key variables; the rest of the contract
    (state dir, socket, userspace, login server, binaries) is filled in here.
    """
    sock, home, contract = _container_env(testbed, bin_dir, headscale, state_dir, name)
    full_env = {
        **contract,
        "CORAL_TAILSCALE_BIN_DIR": str(bin_dir),
        "CORAL_SSHD": "0",
        # On the host, not in a pod: the PATH links and the default-socket link stay here.
        "CORAL_CLI_LINK_DIR": str(testbed.path(f"{name}-bin")),
        "CORAL_CLI_SOCKET": str(testbed.path(f"{name}-default-run") / "tailscaled.sock"),
        **env,
    }
    argv = [*(OWN_VAR_RUN if own_var_run else ()), "bash", str(script), *main_command]
    daemon = testbed.spawn(name, argv, full_env, marker=str(sock))
    return TailscaleNode(bin_dir, sock, state_dir, home, daemon)


def start_containerboot(
    testbed: Testbed,
    bin_dir: Path,
    headscale: Headscale,
    state_dir: Path,
    name: str,
    auth_key: str | None,
    extra_up_args: Sequence[str] = (),
) -> TailscaleNode:
    """Tailscale's own container entrypoint, the reference our bootstrap is measured against.

    It finds tailscaled/tailscale on PATH (base_env puts bin_dir first); it runs with a
    /var/run of its own (OWN_VAR_RUN).
    """
    sock, home, env = _container_env(testbed, bin_dir, headscale, state_dir, name, extra_up_args)
    if auth_key is not None:
        env["TS_AUTHKEY"] = auth_key
    argv = [*OWN_VAR_RUN, str(bin_dir / "containerboot")]
    daemon = testbed.spawn(name, argv, env, marker=str(sock))
    return TailscaleNode(bin_dir, sock, state_dir, home, daemon)
