"""One stack's part of the tailnet policy, and what a live policy lacks of it."""

from __future__ import annotations

from coral_infra.policy import MACHINE_PORTS, environment_rules, missing_rules, render_policy

from .policy_helpers import dev, owner


def test_sources_reach_ssh_sshd_and_paraview_ports() -> None:
    rules = environment_rules(dev(ssh={"src": ["group:ml", "tag:ci"]}).tailnet)
    assert MACHINE_PORTS == (22, 2222, 11111)
    assert rules["acls"] == [
        {"action": "accept", "src": ["group:ml", "tag:ci"], "dst": ["tag:coral-dev:22,2222,11111"]}
    ]
    assert rules["tagOwners"] == {"tag:coral-dev": ["autogroup:admin"]}


def test_check_rule_lets_in_root_only_by_default() -> None:
    """The setup document: production's check rule lets in root only unless a stack lists
    more users."""
    (rule,) = environment_rules(owner({"action": "check"}).tailnet)["ssh"]
    assert rule == {
        "action": "check",
        "src": ["autogroup:owner"],
        "dst": ["tag:coral-machine"],
        "users": ["root"],
        "checkPeriod": "12h",
    }
    (more,) = environment_rules(owner({"action": "check", "users": ["root", "ml"]}).tailnet)["ssh"]
    assert more["users"] == ["root", "ml"]


def test_missing_rules_lists_what_the_live_policy_lacks() -> None:
    env = dev()
    assert missing_rules({}, env.tailnet) == [
        "tagOwners: 'tag:coral-dev' is not declared (want owners ['autogroup:admin'])",
        'ssh: no rule {"action": "accept", "src": ["autogroup:owner"], "dst": ["tag:coral-dev"], '
        '"users": ["root", "autogroup:nonroot"]}',
        'acls: no rule {"action": "accept", "src": ["autogroup:owner"], "dst": '
        '["tag:coral-dev:22,2222,11111"]}',
    ]
    live = render_policy(owner(), [env]).document
    assert missing_rules(live, env.tailnet) == []
    live["tagOwners"]["tag:coral-dev"] = ["group:ops"]
    assert missing_rules(live, env.tailnet) == [
        "tagOwners: 'tag:coral-dev' is owned by ['group:ops'], want ['autogroup:admin']"
    ]
    # A rule the owner rendered from different settings is not this stack's rule.
    assert missing_rules(live, dev(ssh={"action": "check"}).tailnet)[1].startswith("ssh: no rule")


def test_environment_keys_locate_problems_in_the_owners_report() -> None:
    assert owner().key("machineTag") == "coral:tailnet.machineTag"
    assert dev(listed_at=2).key("machineTag") == "coral:tailnet.policy.environments[2]"
    assert dev().describe("ssh.src") == "stack 'dev' coral:tailnet.ssh.src"
