"""The testbed proven with plain tailscaled/tailscale commands, before our bootstrap is involved:
tagged registration, identity kept or reset by the state dir, bad keys, Tailscale SSH by policy,
and headscale's verdict on the policy document the owner stack renders."""

from __future__ import annotations

import json
import pwd
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.tailnet_testbed import SharedTailnet, Tailnet, TailnetPlan
from standins.tailscale_node import TailscaleNode, start_tailscaled
from standins.testbed import Testbed, wait_for

pytestmark = pytest.mark.integration

POLICY_DENIED = "tailnet policy does not permit you to SSH to this node"


def register(node: TailscaleNode, tailnet: Tailnet, hostname: str, tag: str) -> dict:
    key = tailnet.headscale.create_auth_key(tags=[tag])
    result = node.up(tailnet.headscale.url, key, f"--hostname={hostname}")
    assert result.returncode == 0, result.stderr
    return node.wait_running()["Self"]


def test_machine_registers_with_the_tag_of_its_key(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    machine = start_tailscaled(testbed, bin_dir, "machine")
    me = register(machine, tailnet, tailnet_plan.prod.hostname, tailnet_plan.prod.tag)

    assert me["Tags"] == [tailnet_plan.prod.tag]
    [node] = tailnet.headscale.nodes()
    assert node["given_name"] == tailnet_plan.prod.hostname
    assert node["tags"] == [tailnet_plan.prod.tag]
    assert node["node_key"] == me["PublicKey"]
    assert sorted(node["ip_addresses"]) == sorted(me["TailscaleIPs"])


def test_restart_with_the_same_state_dir_is_the_same_node_without_a_key(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    machine = start_tailscaled(testbed, bin_dir, "machine")
    first = register(machine, tailnet, tailnet_plan.prod.hostname, tailnet_plan.prod.tag)
    [before] = tailnet.headscale.nodes()
    machine.daemon.stop()

    again = start_tailscaled(testbed, bin_dir, "machine-again", state_dir=machine.state_dir)
    second = again.wait_running()["Self"]  # no `tailscale up`, no key

    assert second["PublicKey"] == first["PublicKey"]
    assert second["TailscaleIPs"] == first["TailscaleIPs"]
    [after] = tailnet.headscale.nodes()
    assert (after["id"], after["machine_key"], after["node_key"]) == (
        before["id"],
        before["machine_key"],
        before["node_key"],
    )


def test_deleting_the_state_gives_a_new_node(
    testbed: Testbed, bin_dir: Path, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    machine = start_tailscaled(testbed, bin_dir, "machine")
    first = register(machine, tailnet, tailnet_plan.prod.hostname, tailnet_plan.prod.tag)
    machine.daemon.stop()
    shutil.rmtree(machine.state_dir)

    fresh = start_tailscaled(testbed, bin_dir, "machine-reset", state_dir=machine.state_dir)
    second = register(fresh, tailnet, tailnet_plan.prod.hostname, tailnet_plan.prod.tag)

    assert second["PublicKey"] != first["PublicKey"]
    assert second["TailscaleIPs"] != first["TailscaleIPs"]
    nodes = tailnet.headscale.nodes()
    assert len(nodes) == 2
    assert len({n["machine_key"] for n in nodes}) == 2


def bad_key(tailnet: Tailnet, kind: str, tag: str) -> str:
    """A key the control server refuses: a valid key with its secret altered, or one expired."""
    key = tailnet.headscale.create_auth_key(tags=[tag])
    if kind == "unknown":
        return key[:-8] + ("1" * 8 if key.endswith("0" * 8) else "0" * 8)
    [listed] = tailnet.headscale.cli_json("preauthkeys", "list")
    expired = tailnet.headscale.cli("preauthkeys", "expire", "--id", str(listed["id"]))
    assert expired.returncode == 0, expired.stderr
    return key


@pytest.mark.parametrize(
    ("kind", "message"),
    [("unknown", "invalid auth key"), ("expired", "authkey expired")],
)
def test_a_bad_key_fails_clearly_and_registers_nothing(
    testbed: Testbed,
    bin_dir: Path,
    tailnet: Tailnet,
    tailnet_plan: TailnetPlan,
    kind: str,
    message: str,
) -> None:
    machine = start_tailscaled(testbed, bin_dir, "machine")
    result = machine.up(tailnet.headscale.url, bad_key(tailnet, kind, tailnet_plan.prod.tag))

    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert (machine.status() or {}).get("BackendState") == "NeedsLogin"
    assert tailnet.headscale.nodes() == []


def test_headscale_rejects_tailscale_roles_and_funnel_in_the_rendered_policy(
    testbed: Testbed, tailnet: Tailnet, tailnet_plan: TailnetPlan
) -> None:
    """Documents what conftest.adapt_policy_for_headscale works around; fails (and tells
    us to drop the adaptation) the day headscale accepts the document as rendered."""
    raw = testbed.root / "raw-policy.json"
    raw.write_text(json.dumps(tailnet_plan.raw_policy))
    result = tailnet.headscale.check_policy(raw)
    assert result.returncode != 0
    assert 'invalid owner format: "autogroup:admin"' in result.stderr

    without_admin = testbed.root / "owner-only.json"
    policy = json.loads(
        json.dumps(tailnet_plan.raw_policy).replace(
            '"autogroup:admin"', json.dumps(tailnet_plan.owner_login)
        )
    )
    policy["nodeAttrs"] = []
    without_admin.write_text(json.dumps(policy))
    result = tailnet.headscale.check_policy(without_admin)
    assert result.returncode != 0
    assert 'autogroup not supported for SSH sources: "autogroup:owner"' in result.stderr
    assert 'autogroup not supported for ACL sources: "autogroup:owner"' in result.stderr


# ------------------------------------------------------------------------------------ SSH


@pytest.fixture(scope="module")
def dev_machine(
    shared_tailnet: SharedTailnet, bin_dir: Path, tailnet_plan: TailnetPlan
) -> Iterator[TailscaleNode]:
    """A dev machine (SSH `accept` in the policy) registered by plain `tailscale up --ssh`."""
    bed, net = shared_tailnet.testbed, shared_tailnet.tailnet
    node = start_tailscaled(bed, bin_dir, "dev-machine")
    key = net.headscale.create_auth_key(tags=[tailnet_plan.dev.tag])
    result = node.up(net.headscale.url, key, f"--hostname={tailnet_plan.dev.hostname}", "--ssh")
    assert result.returncode == 0, result.stderr
    node.wait_running()
    shared_tailnet.owner_laptop.wait_peer(tailnet_plan.dev.hostname)
    shared_tailnet.member_laptop.wait_peer(tailnet_plan.dev.hostname)
    yield node
    node.daemon.stop()


@pytest.fixture(scope="module")
def prod_machine(
    shared_tailnet: SharedTailnet, bin_dir: Path, tailnet_plan: TailnetPlan
) -> Iterator[TailscaleNode]:
    """A prod machine (SSH `check` in the policy) registered by plain `tailscale up --ssh`."""
    bed, net = shared_tailnet.testbed, shared_tailnet.tailnet
    node = start_tailscaled(bed, bin_dir, "prod-machine")
    key = net.headscale.create_auth_key(tags=[tailnet_plan.prod.tag])
    result = node.up(net.headscale.url, key, f"--hostname={tailnet_plan.prod.hostname}", "--ssh")
    assert result.returncode == 0, result.stderr
    node.wait_running()
    shared_tailnet.owner_laptop.wait_peer(tailnet_plan.prod.hostname)
    yield node
    node.daemon.stop()


def test_owner_ssh_as_root_runs_the_command(
    shared_tailnet: SharedTailnet, dev_machine: TailscaleNode, tailnet_plan: TailnetPlan
) -> None:
    result = shared_tailnet.owner_laptop.ssh(f"root@{tailnet_plan.dev.hostname}", "id", "-un")
    assert (result.returncode, result.stdout) == (0, "root\n"), result.stderr


def test_owner_ssh_as_a_nonroot_user_runs_the_command(
    shared_tailnet: SharedTailnet, dev_machine: TailscaleNode, tailnet_plan: TailnetPlan
) -> None:
    shells = set(Path("/etc/shells").read_text().split())
    users = [p.pw_name for p in pwd.getpwall() if p.pw_uid >= 1000 and p.pw_shell in shells]
    if not users:
        pytest.skip("no non-root local user with a login shell to log in as")
    result = shared_tailnet.owner_laptop.ssh(f"{users[0]}@{tailnet_plan.dev.hostname}", "id", "-un")
    assert (result.returncode, result.stdout) == (0, f"{users[0]}\n"), result.stderr


def test_member_ssh_is_refused_by_policy(
    shared_tailnet: SharedTailnet, dev_machine: TailscaleNode, tailnet_plan: TailnetPlan
) -> None:
    result = shared_tailnet.member_laptop.ssh(f"root@{tailnet_plan.dev.hostname}", "id", "-un")
    assert result.returncode != 0
    assert result.stdout == ""
    assert POLICY_DENIED in result.stderr, result.stderr


def checked_session(
    shared_tailnet: SharedTailnet, hostname: str, decision: str | None, name: str
) -> tuple[int, str, str]:
    """Runs `tailscale ssh root@host id -un`; when a check prompt appears, answers it with
    `headscale auth <decision>`. Returns (exit code, stdout, stderr)."""
    out_dir = shared_tailnet.testbed.path(name)
    err = out_dir / "ssh.err"
    session = shared_tailnet.owner_laptop.start_ssh(
        f"root@{hostname}", "id", "-un", output_dir=out_dir
    )
    try:
        if decision is not None:
            prompt = wait_for(
                "the SSH check prompt",
                lambda: re.search(r"/auth/(hskey-authreq-[A-Za-z0-9_-]+)", err.read_text()),
                timeout_s=20,
            )
            assert session.poll() is None  # nothing runs before the decision
            answer = shared_tailnet.tailnet.headscale.cli(
                "auth", decision, "--auth-id", prompt.group(1)
            )
            assert answer.returncode == 0, answer.stderr
        session.wait(timeout=30)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    return session.returncode, (out_dir / "ssh.out").read_text(), err.read_text()


def test_prod_check_mode_runs_the_command_only_after_the_control_server_approves(
    shared_tailnet: SharedTailnet, prod_machine: TailscaleNode, tailnet_plan: TailnetPlan
) -> None:
    """The prod stack's `check` action on headscale: a session waits for approval
    (`headscale auth approve|reject`, standing in for Tailscale's browser re-authentication);
    once approved, the check period spares the next session the prompt."""
    assert tailnet_plan.prod.ssh_action == "check"
    host = tailnet_plan.prod.hostname

    code, out, err = checked_session(shared_tailnet, host, "reject", "check-rejected")
    assert (code != 0, out) == (True, ""), err

    code, out, err = checked_session(shared_tailnet, host, "approve", "check-approved")
    assert (code, out) == (0, "root\n"), err

    code, out, err = checked_session(shared_tailnet, host, None, "check-within-period")
    assert (code, out) == (0, "root\n"), err
    assert "/auth/" not in err


def test_headscale_passes_the_policy_self_tests_on_the_live_tailnet(
    shared_tailnet: SharedTailnet,
    dev_machine: TailscaleNode,
    prod_machine: TailscaleNode,
    tailnet_plan: TailnetPlan,
) -> None:
    """headscale evaluates `tests`/`sshTests` only against users that have nodes, so this runs
    with both laptops and both machine kinds online."""
    bed, net = shared_tailnet.testbed, shared_tailnet.tailnet
    assert tailnet_plan.policy.get("sshTests") and tailnet_plan.policy.get("tests")

    result = net.headscale.check_policy(Path(net.headscale.config_path.parent / "policy.json"))
    assert (result.returncode, result.stdout.strip()) == (0, "Policy is valid"), result.stderr

    broken = json.loads(json.dumps(tailnet_plan.policy))
    broken["sshTests"].append(
        {"src": tailnet_plan.member_login, "dst": [tailnet_plan.dev.tag], "accept": ["root"]}
    )
    broken_path = bed.root / "broken-policy.json"
    broken_path.write_text(json.dumps(broken))
    result = net.headscale.check_policy(broken_path)
    assert result.returncode != 0
    assert f"{tailnet_plan.member_login}/root -> " in result.stderr
    assert "expected ALLOWED, got DENIED" in result.stderr
