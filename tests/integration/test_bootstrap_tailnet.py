"""The real coral_infra/bootstrap/start.sh against headscale: first boot, restart with the
persisted identity and no key, key from the state dir, reset, bad key, and Tailscale SSH from
the laptop (accepted for the owner, refused for a plain member)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.tailnet_testbed import SharedTailnet, Tailnet, TailnetPlan
from standins.tailscale_node import TailscaleNode, start_bootstrap
from standins.testbed import Daemon, Testbed, wait_for

pytestmark = pytest.mark.integration

MAIN_STARTED = "starting the main command: sleep"
POLICY_DENIED = "tailnet policy does not permit you to SSH to this node"


def wait_log(daemon: Daemon, text: str, timeout_s: float = 60) -> str:
    def probe() -> str | None:
        log = daemon.log()
        if text in log:
            return log
        if not daemon.running():
            raise AssertionError(f"{daemon.name} exited before logging {text!r}:\n{log}")
        return None

    return wait_for(f"{daemon.name} to log {text!r}", probe, timeout_s)


def boot(
    testbed: Testbed,
    bin_dir: Path,
    tailnet: Tailnet,
    hostname: str,
    state_dir: Path,
    name: str,
    env: dict[str, str] | None = None,
) -> tuple[TailscaleNode, str]:
    """Starts the bootstrap and waits until it hands over to the main command."""
    node = start_bootstrap(
        testbed,
        bin_dir,
        tailnet.headscale,
        state_dir,
        name,
        {"TS_HOSTNAME": hostname, **(env or {})},
    )
    return node, wait_log(node.daemon, MAIN_STARTED)


def run_ssh_enabled(node: TailscaleNode) -> bool:
    return bool(node.prefs().get("RunSSH"))


def main_command_environ(node: TailscaleNode) -> str:
    """The bootstrap execs the main command, so the script's pid is the main command's."""
    return Path(f"/proc/{node.daemon.proc.pid}/environ").read_bytes().decode(errors="replace")


def test_first_boot_registers_with_the_tag_turns_on_ssh_and_hides_the_key(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    key = tailnet.headscale.create_auth_key(tags=[tailnet_plan.prod.tag])
    state_dir = testbed.path("state")
    node, log = boot(
        testbed,
        bin_dir,
        tailnet,
        tailnet_plan.prod.hostname,
        state_dir,
        "boot",
        {"TAILSCALE_AUTHKEY": key},
    )

    me = node.wait_running()["Self"]
    [registered] = tailnet.headscale.nodes()
    assert registered["given_name"] == tailnet_plan.prod.hostname
    assert registered["tags"] == [tailnet_plan.prod.tag]
    assert registered["node_key"] == me["PublicKey"]
    assert run_ssh_enabled(node)
    assert (state_dir / "tailscaled.state").is_file()
    assert key not in log
    assert key not in (state_dir / "tailscaled.log").read_text(errors="replace")
    assert key not in main_command_environ(node)


@pytest.mark.parametrize("stop", ["clean", "crash"])
def test_restart_with_the_same_state_dir_is_the_same_node_without_a_key(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan, stop: str
) -> None:
    """After a clean stop tailscaled removes its socket; after a crash (SIGKILL) the socket
    stays, and the restart replaces it at once instead of asking the CLI about it."""
    key = tailnet.headscale.create_auth_key(tags=[tailnet_plan.prod.tag])
    state_dir = testbed.path("state")
    hostname = tailnet_plan.prod.hostname
    first, _ = boot(testbed, bin_dir, tailnet, hostname, state_dir, "boot", {"TS_AUTHKEY": key})
    before = first.wait_running()["Self"]
    [registered] = tailnet.headscale.nodes()
    if stop == "clean":
        first.daemon.stop()
        assert not first.socket.exists()
    else:
        first.daemon.kill()
        assert first.socket.is_socket() and first.status() is None

    again, log = boot(testbed, bin_dir, tailnet, hostname, state_dir, "boot")
    after = again.wait_running()["Self"]

    assert ("removing the stale socket" in log) == (stop == "crash"), log
    assert "already logged in (persisted identity)" in log
    assert (after["PublicKey"], after["TailscaleIPs"]) == (
        before["PublicKey"],
        before["TailscaleIPs"],
    )
    [still] = tailnet.headscale.nodes()
    assert (still["id"], still["machine_key"]) == (registered["id"], registered["machine_key"])
    assert run_ssh_enabled(again)


def test_key_from_the_state_dir_file_registers(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    state_dir = testbed.path("state")
    key_file = state_dir / "authkey"
    key_file.write_text(tailnet.headscale.create_auth_key(tags=[tailnet_plan.prod.tag]) + "\n")
    os.chmod(key_file, 0o600)

    node, log = boot(testbed, bin_dir, tailnet, tailnet_plan.prod.hostname, state_dir, "boot")

    assert f"with the auth key from {key_file}" in log
    assert node.wait_running()["Self"]["Tags"] == [tailnet_plan.prod.tag]
    [registered] = tailnet.headscale.nodes()
    assert registered["tags"] == [tailnet_plan.prod.tag]


def test_deleting_the_state_gives_a_new_node(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    key = tailnet.headscale.create_auth_key(tags=[tailnet_plan.prod.tag])
    state_dir = testbed.path("state")
    hostname = tailnet_plan.prod.hostname
    first, _ = boot(testbed, bin_dir, tailnet, hostname, state_dir, "boot", {"TS_AUTHKEY": key})
    before = first.wait_running()["Self"]
    first.daemon.stop()
    (state_dir / "tailscaled.state").unlink()

    again, _ = boot(testbed, bin_dir, tailnet, hostname, state_dir, "reset", {"TS_AUTHKEY": key})
    after = again.wait_running()["Self"]

    assert after["PublicKey"] != before["PublicKey"]
    assert len({n["machine_key"] for n in tailnet.headscale.nodes()}) == 2


def test_a_bad_key_leaves_tailscaled_up_with_a_clear_log(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    key = tailnet.headscale.create_auth_key(tags=[tailnet_plan.prod.tag])
    bad = key[:-8] + ("1" * 8 if key.endswith("0" * 8) else "0" * 8)
    state_dir = testbed.path("state")

    node, log = boot(
        testbed,
        bin_dir,
        tailnet,
        tailnet_plan.prod.hostname,
        state_dir,
        "boot",
        {"TAILSCALE_AUTHKEY": bad},
    )

    assert "the control plane REJECTED the auth key" in log
    assert "invalid auth key" in log  # headscale's own reason, passed through
    assert bad not in log
    assert (node.status() or {}).get("BackendState") == "NeedsLogin"
    assert tailnet.headscale.nodes() == []


# ------------------------------------------------------------------------------------ SSH


@pytest.fixture(scope="module")
def booted_dev_machine(
    shared_tailnet: SharedTailnet, bin_dir: Path, tailnet_plan: TailnetPlan
) -> Iterator[TailscaleNode]:
    """A dev machine (SSH `accept` in the policy) booted by the real bootstrap."""
    bed, net = shared_tailnet.testbed, shared_tailnet.tailnet
    key = net.headscale.create_auth_key(tags=[tailnet_plan.dev.tag])
    node, _ = boot(
        bed,
        bin_dir,
        net,
        tailnet_plan.dev.hostname,
        bed.path("dev-state"),
        "dev-boot",
        {"TS_AUTHKEY": key},
    )
    node.wait_running()
    shared_tailnet.owner_laptop.wait_peer(tailnet_plan.dev.hostname)
    shared_tailnet.member_laptop.wait_peer(tailnet_plan.dev.hostname)
    yield node
    node.daemon.stop()


def test_owner_can_ssh_into_the_booted_machine_as_root(
    shared_tailnet: SharedTailnet, booted_dev_machine: TailscaleNode, tailnet_plan: TailnetPlan
) -> None:
    result = shared_tailnet.owner_laptop.ssh(
        f"root@{tailnet_plan.dev.hostname}", "cat", "/proc/self/status"
    )
    assert result.returncode == 0, result.stderr
    assert "Uid:\t0\t" in result.stdout


def test_member_ssh_into_the_booted_machine_is_refused(
    shared_tailnet: SharedTailnet, booted_dev_machine: TailscaleNode, tailnet_plan: TailnetPlan
) -> None:
    result = shared_tailnet.member_laptop.ssh(f"root@{tailnet_plan.dev.hostname}", "true")
    assert result.returncode != 0
    assert POLICY_DENIED in result.stderr, result.stderr


def test_bootstrap_keeps_tailscaled_out_of_the_main_commands_way(
    booted_dev_machine: TailscaleNode,
) -> None:
    """The container's main command is the script's own pid (exec), tailscaled a sibling."""
    cmdline = Path(f"/proc/{booted_dev_machine.daemon.proc.pid}/cmdline").read_bytes()
    assert cmdline.split(b"\0")[:2] == [b"sleep", b"3600"]
    assert (booted_dev_machine.status() or {}).get("BackendState") == "Running"
