"""Real daemons on loopback: headscale as the control server, userspace tailscaled nodes,
coral-machine booted by our bootstrap script or by containerboot, and the user's laptop.

It is a plain module (not only fixtures) because bench/ drives the same daemons outside
pytest. Everything runs in its own process group and is killed by `Testbed.close()`, so a
failing test never leaves daemons behind; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from coral_infra.policy import policy_for_stack
from coral_infra.settings import load_stack

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP_SCRIPT = REPO_ROOT / "coral_infra" / "bootstrap" / "start.sh"
# A cold build of all four binaries (or of the Pulumi CLI) takes minutes on 2 cores; past this
# something is wrong.
BUILD_TIMEOUT_S = 30 * 60

# Offline-safe defaults for every tailscale process: the DERP server embedded in headscale
# speaks plain HTTP on loopback, and log uploads would only time out.
TAILSCALE_ENV = {"TS_DEBUG_USE_DERP_HTTP": "1", "TS_NO_LOGS_NO_SUPPORT": "true"}

T = TypeVar("T")


class BinariesUnavailable(RuntimeError):
    """The Go-built tools cannot be built on this machine (no Go toolchain)."""


def cache_dir() -> Path:
    return Path(os.environ.get("CORAL_CACHE_DIR", str(REPO_ROOT / ".cache")))


def run_build_script(
    script: str,
    builds: str,
    *args: str,
    timeout_s: float = BUILD_TIMEOUT_S,
    show_progress: bool = False,
) -> Path:
    """Runs tools/<script> with `args` and returns the bin dir it fills.

    The build scripts are near-instant when their stamp matches the pins, so calling them every
    session is what keeps the binaries honest about their versions. Without Go this raises
    BinariesUnavailable (callers skip or report it); a failed build raises with its stderr.
    `show_progress` lets the script's progress reach this process's stdout and stderr when it
    has something to build (the demo); under pytest the output is captured, which is why
    `make test` builds everything before pytest starts.
    """
    if shutil.which("go") is None:
        raise BinariesUnavailable(f"no 'go' on PATH: tools/{script} builds {builds} from source")
    command = ["bash", str(REPO_ROOT / "tools" / script), *args]
    if show_progress and subprocess.run([*command, "--check"], timeout=60).returncode == 0:
        return cache_dir() / "bin"  # up to date: nothing to show
    result = subprocess.run(
        command,
        stdout=None if show_progress else subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        detail = "" if show_progress else f":\n{(result.stderr or '')[-4000:]}"
        raise RuntimeError(f"tools/{script} failed with exit code {result.returncode}{detail}")
    return cache_dir() / "bin"


def ensure_binaries(*names: str, show_progress: bool = False) -> Path:
    """Builds (or finds cached) the named daemons: tailscale, tailscaled, containerboot,
    headscale (default: all four)."""
    return run_build_script(
        "build-binaries.sh", "tailscale/headscale", *names, show_progress=show_progress
    )


def wait_for(
    what: str, probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.05
) -> T:
    """Polls `probe` until it returns something other than None, for at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    """A long-running process leading its own process group (so its children die with it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    marker: str | None = None
    """A string only this daemon's processes have on their command line (a socket path):
    containerboot starts tailscaled in a process group of its own."""

    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace_s`; then the same for any
        process carrying `marker` that escaped the group.

        The group is signalled even when the leader already exited: a script that exec'd or
        backgrounded tailscaled leaves it in the same group.
        """
        deadline = time.monotonic() + grace_s
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        # The rest of the group gets the same grace (tailscaled removes its socket on SIGTERM),
        # however soon the leader went: a script that exec'd its main command goes at once.
        with contextlib.suppress(TimeoutError):
            wait_for(
                f"{self.name}'s process group to exit",
                lambda: True if not _group_members(self.proc.pid) else None,
                max(0.0, deadline - time.monotonic()),
            )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        if self.marker is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            strays = _pids_with_marker(self.marker)
            for pid in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(TimeoutError):
                wait_for(
                    f"{self.name} strays to exit",
                    lambda: True if not _pids_with_marker(self.marker or "") else None,
                    grace_s,
                )

    def kill(self, timeout_s: float = 5.0) -> None:
        """SIGKILL for the group and every process carrying `marker`, none warned first: a
        crash or an OOM kill, after which tailscaled's socket file stays behind (only a
        SIGTERM lets tailscaled remove it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=timeout_s)
        if self.marker is None:
            return
        marker = self.marker
        for pid in _pids_with_marker(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(
            f"{self.name} to be gone",
            lambda: True if not _pids_with_marker(marker) else None,
            timeout_s,
        )


def _live_processes() -> Iterator[tuple[Path, list[str]]]:
    """Every live (not zombie) process: its /proc dir and the fields of its stat after the
    command (in parentheses): state ppid pgrp ..."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield entry, fields


def _group_members(pgid: int) -> list[int]:
    return [int(entry.name) for entry, fields in _live_processes() if int(fields[2]) == pgid]


def _pids_with_marker(marker: str) -> list[int]:
    pids = []
    for entry, _ in _live_processes():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


@dataclass
class Testbed:
    """Owns a short scratch directory (unix socket paths are limited to 108 bytes) and every
    daemon started in it."""

    __test__ = False  # not a pytest test class despite the name
    root: Path
    daemons: list[Daemon] = field(default_factory=list)

    @classmethod
    def create(cls) -> Testbed:
        return cls(Path(tempfile.mkdtemp(prefix="coral-tb-", dir="/tmp")))

    def path(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        marker: str | None = None,
    ) -> Daemon:
        log_path = self.root / f"{name}.{len(self.daemons)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        daemon = Daemon(name, proc, log_path, marker)
        self.daemons.append(daemon)
        return daemon

    def logs(self) -> str:
        """All daemon logs, for failure messages."""
        return "\n".join(
            f"===== {d.name} (pid {d.proc.pid}, {d.log_path.name}) =====\n{d.log()[-6000:]}"
            for d in self.daemons
        )

    def close(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()
        if not os.environ.get("CORAL_TESTBED_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)


def base_env(bin_dir: Path, home: Path) -> dict[str, str]:
    """A minimal environment: no inherited TS_* variables can leak into a daemon, and
    tailscaled keeps its log config in `home` instead of /var/lib/tailscale."""
    return {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TS_LOGS_DIR": str(home),
        "LANG": "C.UTF-8",
        **TAILSCALE_ENV,
    }


# ---------------------------------------------------------------------------------- headscale


def headscale_config(workdir: Path, policy_path: Path) -> tuple[dict[str, Any], str]:
    """An offline headscale config: no external DERP map, embedded DERP with STUN on loopback,
    no update checks, everything writable under `workdir`. Returns (config, server URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = {
        "server_url": url,
        "listen_addr": f"127.0.0.1:{port}",
        "metrics_listen_addr": f"127.0.0.1:{free_port()}",
        "grpc_listen_addr": f"127.0.0.1:{free_port()}",
        "grpc_allow_insecure": False,
        "noise": {"private_key_path": str(workdir / "noise_private.key")},
        "prefixes": {
            "v4": "100.64.0.0/10",
            "v6": "fd7a:115c:a1e0::/48",
            "allocation": "sequential",
        },
        "derp": {
            "server": {
                "enabled": True,
                "region_id": 999,
                "region_code": "coral",
                "region_name": "coral loopback DERP",
                "verify_clients": True,
                "stun_listen_addr": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                "private_key_path": str(workdir / "derp_server_private.key"),
                "automatically_add_embedded_derp_region": True,
                "ipv4": "127.0.0.1",
                "ipv6": "",
            },
            "urls": [],
            "paths": [],
            "auto_update_enabled": False,
            "update_frequency": "24h",
        },
        "disable_check_updates": True,
        "database": {
            "type": "sqlite",
            "sqlite": {"path": str(workdir / "db.sqlite"), "write_ahead_log": True},
        },
        "log": {"level": "info", "format": "text"},
        "policy": {"mode": "file", "path": str(policy_path)},
        "dns": {
            "magic_dns": True,
            "base_domain": "coral.test",
            "override_local_dns": False,
            "nameservers": {"global": [], "split": {}},
            "search_domains": [],
            "extra_records": [],
        },
        "unix_socket": str(workdir / "headscale.sock"),
        "unix_socket_permission": "0770",
        "logtail": {"enabled": False},
        "taildrop": {"enabled": False},
    }
    return config, url


class HeadscaleError(RuntimeError):
    """A headscale CLI command failed; the message carries its stderr."""


def headscale_json(binary: Path, config_path: Path, *args: str, timeout_s: float = 20.0) -> Any:
    """Run a headscale CLI command with JSON output: the parsed output, None when empty."""
    result = subprocess.run(
        [str(binary), "--config", str(config_path), *args, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise HeadscaleError(
            f"headscale {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
    return json.loads(result.stdout) if result.stdout.strip() else None


@dataclass
class Headscale:
    binary: Path
    config_path: Path
    url: str
    daemon: Daemon

    def cli(self, *args: str, timeout_s: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        return headscale_json(self.binary, self.config_path, *args)

    def create_user(self, name: str, email: str) -> int:
        """Policies name users by e-mail (like Tailscale); headscale matches e-mail or name."""
        user = self.cli_json("users", "create", name, "--email", email)
        return int(user["id"])

    def create_auth_key(
        self, *, tags: Sequence[str] = (), user_id: int | None = None, reusable: bool = True
    ) -> str:
        """Tags-only keys (no user) are what the tailnet component mints for coral-machine."""
        args = ["preauthkeys", "create", "--expiration", "1h"]
        if reusable:
            args.append("--reusable")
        if tags:
            args += ["--tags", ",".join(tags)]
        if user_id is not None:
            args += ["--user", str(user_id)]
        return str(self.cli_json(*args)["key"])

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.cli_json("nodes", "list") or [])

    def nodes_named(self, hostname: str) -> list[dict[str, Any]]:
        return [n for n in self.nodes() if hostname in (n.get("name"), n.get("given_name"))]

    def check_policy(self, policy_path: Path) -> subprocess.CompletedProcess[str]:
        return self.cli("policy", "check", "--file", str(policy_path))


def start_headscale(testbed: Testbed, bin_dir: Path, policy: Mapping[str, Any]) -> Headscale:
    workdir = testbed.path("headscale")
    policy_path = workdir / "policy.json"
    policy_path.write_text(json.dumps(policy, indent=2))
    config, url = headscale_config(workdir, policy_path)
    config_path = workdir / "config.yaml"
    # JSON is YAML; viper picks the parser from the file extension.
    config_path.write_text(json.dumps(config, indent=2))
    binary = bin_dir / "headscale"
    daemon = testbed.spawn(
        "headscale",
        [str(binary), "--config", str(config_path), "serve"],
        base_env(bin_dir, workdir),
        cwd=workdir,
    )

    def healthy() -> bool | None:
        if not daemon.running():
            raise RuntimeError(f"headscale exited at start:\n{daemon.log()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                ready = response.status == 200 and (workdir / "headscale.sock").exists()
                return True if ready else None
        except (urllib.error.URLError, OSError):
            return None

    wait_for("headscale /health", healthy, timeout_s=30)
    return Headscale(binary, config_path, url, daemon)


# --------------------------------------------------------------------------------- tailscale


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


def start_bootstrap(
    testbed: Testbed,
    bin_dir: Path,
    headscale: Headscale,
    state_dir: Path,
    name: str,
    env: Mapping[str, str],
    main_command: Sequence[str] = ("sleep", "3600"),
    script: Path = BOOTSTRAP_SCRIPT,
) -> TailscaleNode:
    """Runs the real coral_infra/bootstrap/start.sh (or another version of it: `script`, for
    the benchmark's before/after) as the container entrypoint would.

    `env` holds the test's choice of auth key variables; the rest of the contract
    (state dir, socket, userspace, login server, binaries) is filled in here.
    """
    sock = testbed.path(f"{name}-run") / "tailscaled.sock"
    home = testbed.path(f"{name}-home")
    full_env = {
        **base_env(bin_dir, home),
        "TS_STATE_DIR": str(state_dir),
        "TS_SOCKET": str(sock),
        "TS_USERSPACE": "true",
        "TS_EXTRA_ARGS": f"--login-server={headscale.url}",
        "TS_TAILSCALED_EXTRA_ARGS": "--port=0 --no-logs-no-support",
        "CORAL_TAILSCALE_BIN_DIR": str(bin_dir),
        "CORAL_SSHD": "0",
        # On the host, not in a pod: the PATH links and the default-socket link stay here.
        "CORAL_CLI_LINK_DIR": str(testbed.path(f"{name}-bin")),
        "CORAL_CLI_SOCKET": str(testbed.path(f"{name}-default-run") / "tailscaled.sock"),
        **env,
    }
    daemon = testbed.spawn(name, ["bash", str(script), *main_command], full_env, marker=str(sock))
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

    It finds tailscaled/tailscale on PATH (base_env puts bin_dir first).
    """
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
    if auth_key is not None:
        env["TS_AUTHKEY"] = auth_key
    daemon = testbed.spawn(name, [str(bin_dir / "containerboot")], env, marker=str(sock))
    return TailscaleNode(bin_dir, sock, state_dir, home, daemon)


# ------------------------------------------------------- the tailnet the stack files describe

# The stack that owns the tailnet policy; its document also carries the rules of its
# `environments` (dev), so one headscale serves both kinds of machine.
OWNER_STACK = "prod"
DEV_STACK = "dev"


def adapt_policy_for_headscale(policy: dict[str, Any], owner_login: str) -> dict[str, Any]:
    """The minimal edits headscale v0.29.2 needs to load a Tailscale policy we render.

    headscale has no tailnet roles and no Funnel; loading the unmodified document fails with
    (exact errors, `headscale policy check` / `serve`):
      - tagOwners `autogroup:admin`: `invalid owner format: "autogroup:admin"`
      - acls src `autogroup:owner`: `autogroup not supported for ACL sources:
        "autogroup:owner", can be [autogroup:member autogroup:tagged autogroup:danger-all]`
      - ssh src `autogroup:owner`: `autogroup not supported for SSH sources:
        "autogroup:owner", can be [autogroup:member autogroup:tagged]`
      - nodeAttrs `funnel`: `nodeAttrs uses a feature headscale does not yet support:
        "funnel" tracked in https://github.com/juanfont/headscale/issues/2527`
    So the owner/admin roles become the owner's login (on Tailscale the owner holds both) and
    the funnel attribute is dropped. Everything else (`ssh` accept/check, `checkPeriod`,
    `autogroup:nonroot`, `autogroup:member`, `autogroup:self`, `tests`, `sshTests`) is loaded
    and evaluated by headscale as is.
    """
    text = json.dumps(policy)
    for role in ("autogroup:owner", "autogroup:admin"):
        text = text.replace(json.dumps(role), json.dumps(owner_login))
    adapted: dict[str, Any] = json.loads(text)
    node_attrs = []
    for entry in adapted.get("nodeAttrs", []):
        entry = copy.deepcopy(entry)
        entry["attr"] = [a for a in entry.get("attr", []) if a != "funnel"]
        if entry["attr"]:
            node_attrs.append(entry)
    if "nodeAttrs" in adapted:
        adapted["nodeAttrs"] = node_attrs
    return adapted


@dataclass(frozen=True)
class MachineKind:
    """A machine of one stack: the hostname and tag its pod registers with."""

    hostname: str
    tag: str
    ssh_action: str


@dataclass(frozen=True)
class TailnetPlan:
    """What the stack files say the tailnet looks like."""

    raw_policy: dict[str, Any]
    policy: dict[str, Any]
    owner_login: str
    member_login: str
    prod: MachineKind
    dev: MachineKind


def _machine_kind(stack: str) -> MachineKind:
    settings = load_stack(stack)
    return MachineKind(
        settings.machines[0].hostname, settings.tailnet.machine_tag, settings.tailnet.ssh.action
    )


def load_tailnet_plan() -> TailnetPlan:
    owner = load_stack(OWNER_STACK)
    tests = owner.tailnet.policy.tests
    if tests is None:
        raise ValueError(f"stack {OWNER_STACK} owns the policy and must name test users")
    raw = policy_for_stack(OWNER_STACK)
    return TailnetPlan(
        raw_policy=raw,
        policy=adapt_policy_for_headscale(raw, tests.allowed),
        owner_login=tests.allowed,
        member_login=tests.denied,
        prod=_machine_kind(OWNER_STACK),
        dev=_machine_kind(DEV_STACK),
    )


@dataclass
class Tailnet:
    headscale: Headscale
    owner_id: int
    member_id: int


def start_tailnet(testbed: Testbed, bin_dir: Path, plan: TailnetPlan) -> Tailnet:
    headscale = start_headscale(testbed, bin_dir, plan.policy)
    owner_id = headscale.create_user(plan.owner_login.split("@")[0], plan.owner_login)
    member_id = headscale.create_user(plan.member_login.split("@")[0], plan.member_login)
    return Tailnet(headscale, owner_id, member_id)


@dataclass
class SharedTailnet:
    """One headscale with both users' laptops online, shared by a module's SSH tests."""

    testbed: Testbed
    tailnet: Tailnet
    owner_laptop: TailscaleNode
    member_laptop: TailscaleNode
