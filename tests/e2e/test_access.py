"""What a user does once `pulumi up` made the machine, as the demo prints it: the exported SSH
config block used the way Cursor and VS Code Remote-SSH use it (OpenSSH with that block), the
policy's denial for a plain member, and a new shell in the pod where plain `tailscale` works.

The pod here is the sandbox's `image` mode (tailscale baked into /usr/local/bin, like the
Dockerfile); test_inject_pod.py covers `inject` mode, with the binaries on the volume.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.sandbox import Sandbox
from standins.tailscale_node import TailscaleNode

pytestmark = pytest.mark.e2e

HOSTNAME = "coral-machine"
PARAVIEW_PORT = 11111
POLICY_REFUSAL = "tailnet policy does not permit you to SSH"


@pytest.fixture(scope="module")
def machine(sandbox: Sandbox) -> dict[str, Any]:
    return dict(sandbox.up()["machines"][HOSTNAME])


@pytest.fixture(scope="module")
def owner_laptop(sandbox: Sandbox, machine: dict[str, Any]) -> TailscaleNode:
    return sandbox.start_laptop([HOSTNAME])


@pytest.fixture(scope="module")
def member_laptop(sandbox: Sandbox, machine: dict[str, Any]) -> TailscaleNode:
    return sandbox.start_member_laptop([HOSTNAME])


def block_user(block: str) -> str:
    [user] = [line.split()[1] for line in block.splitlines() if line.strip().startswith("User ")]
    return user


def on_laptop(
    script: str, env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs `script` as the laptop: in a network namespace of its own (with loopback up), so
    its 127.0.0.1:11111 is not the pod's; it reaches its tailscaled by the unix socket."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 `ip` is needed to bring up loopback in the laptop's namespace")
    return subprocess.run(
        ["unshare", "--net", "--", "bash", "-c", f"ip link set lo up && {script}"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"PATH": os.environ["PATH"], **env},
        check=False,
        start_new_session=True,  # no controlling terminal: ssh can never prompt
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The laptop's ssh-agent holding one key: (SSH_AUTH_SOCK, the key's SHA256 fingerprint)."""
    socket = tmp_path / "agent.sock"
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop-key", "-f", str(key)],
        check=True,
        timeout=30,
    )
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket)}
        for _ in range(100):
            if socket.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, timeout=30)
        fingerprint = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        yield str(socket), fingerprint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def pod_listener(sandbox: Sandbox, machine: dict[str, Any]) -> Iterator[str]:
    """A ParaView stand-in in the pod: answers every connection to localhost:11111 with a
    greeting only that process knows."""
    runtime = sandbox.runpod.runtime
    assert runtime is not None
    greeting = f"paraview-in-pod-{machine['podId']}"
    server = (
        "import socket\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {PARAVIEW_PORT}))\n"
        "s.listen()\n"
        "print('listening', flush=True)\n"
        "while True:\n"
        "    c, _ = s.accept()\n"
        f"    c.sendall(b'{greeting}\\n')\n"
        "    c.close()\n"
    )
    process = subprocess.Popen(
        runtime.shell_command(machine["podId"], f"exec python3 -c {shlex.quote(server)}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if first.strip() != "listening":
        process.kill()
        pytest.fail(
            f"cannot listen on 127.0.0.1:{PARAVIEW_PORT} in the pod (the host's loopback; "
            f"something else holds the port?): {process.communicate()[1]}"
        )
    try:
        yield greeting
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_ssh_config_block_logs_in_as_its_user_and_forwards_the_agent(
    sandbox: Sandbox,
    machine: dict[str, Any],
    owner_laptop: TailscaleNode,
    agent: tuple[str, str],
) -> None:
    config = sandbox.ssh_config_file(owner_laptop, HOSTNAME, machine["sshConfig"])
    assert config.read_text().startswith(machine["sshConfig"].rstrip("\n"))
    socket, fingerprint = agent

    session = on_laptop(
        f"exec ssh -F {config} -o BatchMode=yes {HOSTNAME} 'id -un; ssh-add -l; ls /workspace/deps/runtime/tailscale'",
        {"SSH_AUTH_SOCK": socket, "HOME": str(config.parent)},
    )

    assert session.returncode == 0, session.stderr
    lines = session.stdout.splitlines()
    assert lines[0] == block_user(machine["sshConfig"]) == "root"
    # ForwardAgent: the pod's session sees the laptop's agent and its key.
    assert fingerprint in lines[1], session.stdout
    # ...and it is the pod: its volume holds the tailnet identity.
    assert "tailscaled.state" in lines[2:]


def test_the_ssh_config_block_forwards_paraview_port(
    sandbox: Sandbox,
    machine: dict[str, Any],
    owner_laptop: TailscaleNode,
    pod_listener: str,
) -> None:
    config = sandbox.ssh_config_file(owner_laptop, HOSTNAME, machine["sshConfig"])
    assert f"LocalForward {PARAVIEW_PORT} localhost:{PARAVIEW_PORT}" in machine["sshConfig"]
    client = (
        "import socket, sys\n"
        f"c = socket.create_connection(('127.0.0.1', {PARAVIEW_PORT}), timeout=5)\n"
        "data = c.makefile().readline()\n"
        "print(data, end='')\n"
        "sys.exit(0 if data else 1)\n"
    )
    # The laptop's ssh holds the forward (-N: no command) while a client on the laptop's own
    # 127.0.0.1:11111 connects through it to the pod's listener.
    log = config.parent / "forward.log"
    script = (
        f"ssh -F {config} -o BatchMode=yes -o ExitOnForwardFailure=yes -N {HOSTNAME} "
        f">{log} 2>&1 & ssh_pid=$!; "
        "for _ in $(seq 300); do "
        f'  if out=$(python3 -c {shlex.quote(client)} 2>/dev/null) && [ -n "$out" ]; then '
        '    echo "$out"; kill $ssh_pid; wait $ssh_pid; exit 0; fi; sleep 0.1; '
        f"done; kill $ssh_pid; cat {log} >&2; exit 1"
    )
    forwarded = on_laptop(script, {"HOME": str(config.parent)})

    assert forwarded.returncode == 0, forwarded.stderr
    assert forwarded.stdout.strip() == pod_listener


def test_a_plain_member_is_refused_root_while_the_owner_gets_in(
    owner_laptop: TailscaleNode, member_laptop: TailscaleNode
) -> None:
    """The demo's denial: the member sees the machine (Tailscale's default network rule) and
    reaches its SSH server, which refuses by the policy `pulumi up` wrote."""
    refused = member_laptop.ssh(f"root@{HOSTNAME}", "id", "-un")
    assert refused.returncode != 0
    assert POLICY_REFUSAL in refused.stderr, refused.stderr
    allowed = owner_laptop.ssh(f"root@{HOSTNAME}", "id", "-un")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "root"


def test_a_new_shell_in_the_pod_runs_tailscale_without_flags(
    sandbox: Sandbox, machine: dict[str, Any], member_laptop: TailscaleNode
) -> None:
    """RunPod's web terminal: a login shell with a clean environment; `tailscale status`,
    `tailscale ip -4` and `tailscale ssh` with no --socket and no path."""
    runtime = sandbox.runpod.runtime
    assert runtime is not None
    # `tailscale ssh` from the pod to a laptop running Tailscale SSH: the laptop's server
    # answers (and refuses a tagged machine by the policy), so the CLI found the daemon on
    # the default socket and ssh found `tailscale nc` on the PATH.
    assert member_laptop.cli("set", "--ssh").returncode == 0
    member_laptop_peer = "member-laptop"
    script = (
        "command -v tailscale; tailscale status; echo ---; tailscale ip -4; echo ---; "
        "test -S /var/run/tailscale/tailscaled.sock && echo default-socket; "
        f"for _ in $(seq 100); do tailscale status --json | grep -q ssh-ed25519 && break; sleep 0.2; done; "
        f"tailscale ssh root@{member_laptop_peer} true"
    )
    shell = subprocess.run(
        runtime.shell_command(machine["podId"], script),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert shell.stdout.splitlines()[0] == "/usr/local/bin/tailscale", shell.stdout + shell.stderr
    status, ip, rest = shell.stdout.split("---\n")
    assert HOSTNAME in status and "member-laptop" in status, status
    assert ip.strip() in machine["tailscaleIps"]
    assert rest.splitlines()[0] == "default-socket"
    assert POLICY_REFUSAL in shell.stderr, shell.stderr
    assert "failed to connect to local tailscaled" not in shell.stderr
