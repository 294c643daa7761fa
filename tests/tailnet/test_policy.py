"""Rendering and merging the tailnet policy, and the owner / non-owner split across stacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coral_infra import hujson
from coral_infra.policy import (
    DEFAULT_POLICY,
    MACHINE_PORTS,
    Environment,
    PolicyError,
    environment_rules,
    evaluate_tests,
    missing_rules,
    policy_for_stack,
    read_base_policy,
    render_policy,
)
from coral_infra.settings import PROJECT_ROOT, load_stack, parse_settings

ALLOWED = "owner@example.com"
DENIED = "member@example.com"
ROLES = {ALLOWED: "owner", DENIED: "member"}


def stack(name: str, tailnet: dict[str, Any], hostname: str) -> Environment:
    settings = parse_settings(
        {
            "coral:tailnet": tailnet,
            "coral:machines": [{"hostname": hostname, "volume": {"kind": "pod"}}],
        },
        source=name,
    )
    return Environment.from_settings(name, settings)


def owner(ssh: dict[str, Any] | None = None, **policy: Any) -> Environment:
    tailnet = {
        "ssh": ssh or {"action": "check", "checkPeriod": "12h"},
        "policy": {"owner": True, "tests": {"allowed": ALLOWED, "denied": DENIED}, **policy},
    }
    return stack("prod", tailnet, "coral-machine")


def dev(**tailnet: Any) -> Environment:
    return stack("dev", {"machineTag": "tag:coral-dev", **tailnet}, "coral-dev")


def ssh_rule(document: dict[str, Any], tag: str) -> dict[str, Any]:
    (rule,) = [r for r in document["ssh"] if r["dst"] == [tag]]
    return rule


def test_check_and_accept_rules_with_check_period() -> None:
    rendered = render_policy(owner({"action": "check", "checkPeriod": "1h30m"}), [dev()])
    assert ssh_rule(rendered.document, "tag:coral-machine") == {
        "action": "check",
        "src": ["autogroup:owner"],
        "dst": ["tag:coral-machine"],
        "users": ["root", "autogroup:nonroot"],
        "checkPeriod": "1h30m",
    }
    assert ssh_rule(rendered.document, "tag:coral-dev") == {
        "action": "accept",
        "src": ["autogroup:owner"],
        "dst": ["tag:coral-dev"],
        "users": ["root", "autogroup:nonroot"],
    }


def test_check_without_period_states_tailscales_default() -> None:
    rendered = render_policy(owner({"action": "check"}), [])
    assert ssh_rule(rendered.document, "tag:coral-machine")["checkPeriod"] == "12h"


def test_sources_reach_ssh_sshd_and_paraview_ports() -> None:
    rules = environment_rules(dev(ssh={"src": ["group:ml", "tag:ci"]}).tailnet)
    assert MACHINE_PORTS == (22, 2222, 11111)
    assert rules["acls"] == [
        {"action": "accept", "src": ["group:ml", "tag:ci"], "dst": ["tag:coral-dev:22,2222,11111"]}
    ]
    assert rules["tagOwners"] == {"tag:coral-dev": ["autogroup:admin"]}


def test_self_tests_assert_access_and_denials_and_hold() -> None:
    rendered = render_policy(owner(), [dev()])
    document = rendered.document
    assert {"src": ALLOWED, "dst": ["tag:coral-machine"], "check": ["root", "coral"]} in document[
        "sshTests"
    ]
    assert {"src": ALLOWED, "dst": ["tag:coral-dev"], "accept": ["root", "coral"]} in document[
        "sshTests"
    ]
    assert {"src": DENIED, "dst": ["tag:coral-machine"], "deny": ["root", "coral"]} in document[
        "sshTests"
    ]
    assert {
        "src": ALLOWED,
        "accept": ["tag:coral-dev:22", "tag:coral-dev:2222", "tag:coral-dev:11111"],
    } in document["tests"]
    assert evaluate_tests(document, ROLES) == []


def test_default_base_omits_network_denials_and_says_why() -> None:
    rendered = render_policy(owner(), [])
    assert all(t["src"] != DENIED for t in rendered.document["tests"])
    (warning,) = [w for w in rendered.warnings if DENIED in w]
    assert "tag:coral-machine:22,2222,11111" in warning and "allow-all" in warning


def test_restrictive_base_gets_network_denials_tested() -> None:
    base = {
        "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]
    }
    rendered = render_policy(owner(), [], base, "policy/tailnet.hujson")
    assert {
        "src": DENIED,
        "deny": ["tag:coral-machine:22", "tag:coral-machine:2222", "tag:coral-machine:11111"],
    } in rendered.document["tests"]
    assert rendered.warnings == ()
    assert evaluate_tests(rendered.document, ROLES) == []


def test_base_rule_granting_root_to_members_is_not_contradicted() -> None:
    base = {
        "tagOwners": {"tag:coral-machine": ["autogroup:admin"]},
        "ssh": [
            {
                "action": "accept",
                "src": ["autogroup:member"],
                "dst": ["tag:coral-machine"],
                "users": ["root"],
            }
        ],
    }
    rendered = render_policy(owner(), [], base, "base.hujson")
    denied_tests = [t for t in rendered.document["sshTests"] if t["src"] == DENIED]
    assert denied_tests == [{"src": DENIED, "dst": ["tag:coral-machine"], "deny": ["coral"]}]
    assert any("as 'root'" in w and DENIED in w for w in rendered.warnings)
    # Ours comes first: the allowed user still gets `check`, not the base's accept.
    assert rendered.document["ssh"][0]["action"] == "check"
    assert evaluate_tests(rendered.document, ROLES) == []


def test_merge_keeps_every_user_section() -> None:
    text = (
        (PROJECT_ROOT / "policy" / "tailnet.hujson")
        .read_text()
        .replace(
            '"nodeAttrs"',
            """"groups": {"group:ml": ["ml@example.com"],},
        "hosts": {"nas": "100.64.0.9",},
        "autoApprovers": {"exitNode": ["autogroup:admin"],},
        "tagOwners": {"tag:nas": ["autogroup:admin"],},
        "tests": [{"src": "ml@example.com", "accept": ["nas:445"],},],
        "nodeAttrs\"""",
        )
    )
    base = hujson.loads(text, "policy/tailnet.hujson")
    rendered = render_policy(owner(), [dev(ssh={"src": ["group:ml"]})], base, "tailnet.hujson")
    document = rendered.document
    for key in ("groups", "hosts", "autoApprovers", "nodeAttrs"):
        assert document[key] == base[key]
    assert document["tagOwners"]["tag:nas"] == ["autogroup:admin"]
    assert base["acls"][0] == document["acls"][0]  # theirs first, ours appended
    assert document["ssh"][-1] == base["ssh"][0]  # ours before theirs
    assert document["tests"][0] == base["tests"][0]
    # group:ml's member is dev's SSH source, not the owner: no test claims otherwise.
    assert any("not one of ssh.src ['group:ml']" in w for w in rendered.warnings)


def test_rendering_is_idempotent_on_its_own_output() -> None:
    first = render_policy(owner(), [dev()])
    again = render_policy(owner(), [dev()], first.document, "live copy")
    assert again.document == first.document


def test_no_base_means_tailscales_default_policy() -> None:
    document = render_policy(owner(), []).document
    assert document["acls"][0] == {"action": "accept", "src": ["*"], "dst": ["*:*"]}
    assert DEFAULT_POLICY["ssh"][0] in document["ssh"]
    assert document["nodeAttrs"] == DEFAULT_POLICY["nodeAttrs"]


def test_sample_policy_file_is_tailscales_default() -> None:
    base, source = read_base_policy("policy/tailnet.hujson")
    assert base == DEFAULT_POLICY and source == "policy/tailnet.hujson"


def test_missing_base_file_is_a_clear_error() -> None:
    with pytest.raises(PolicyError, match=r"baseFile: no file .*nope.hujson"):
        read_base_policy("policy/nope.hujson")


def test_conflicting_tag_owners_name_both_definitions() -> None:
    base = {"tagOwners": {"tag:coral-dev": ["group:ops"]}, "groups": {"group:ops": []}}
    with pytest.raises(PolicyError) as error:
        render_policy(owner(), [dev()], base, "policy/tailnet.hujson")
    message = str(error.value)
    assert "tagOwners['tag:coral-dev'] is ['group:ops'] in policy/tailnet.hujson" in message
    assert "stack 'dev'" in message and "['autogroup:admin']" in message


def test_same_tag_owners_in_the_base_are_fine() -> None:
    base = {"tagOwners": {"tag:coral-dev": ["autogroup:admin"]}}
    assert render_policy(owner(), [dev()], base, "b").document["tagOwners"]["tag:coral-dev"]


@pytest.mark.parametrize(
    ("environments", "message"),
    [
        ([stack("dev", {}, "coral-dev")], "stacks 'prod' and 'dev' both use machine tag"),
        ([stack("dev", {"machineTag": "tag:x"}, "coral-machine")], "both have a machine named"),
        ([dev(), dev()], "names 'dev' twice"),
        (
            [
                stack(
                    "dev",
                    {
                        "machineTag": "tag:x",
                        "policy": {"owner": True, "tests": {"allowed": ALLOWED, "denied": DENIED}},
                    },
                    "coral-dev",
                )
            ],
            "'dev' is listed in coral:tailnet.policy.environments of 'prod' but is itself",
        ),
    ],
)
def test_two_stacks_on_one_tailnet_must_not_collide(
    environments: list[Environment], message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        render_policy(owner(), environments)


def test_undefined_groups_and_tags_are_caught_before_tailscale_rejects_them() -> None:
    with pytest.raises(PolicyError, match="'group:ml', which the base policy's groups"):
        render_policy(owner(), [dev(ssh={"src": ["group:ml"]})])
    with pytest.raises(PolicyError, match="'tag:ci', which no tagOwners entry defines"):
        render_policy(owner(), [dev(ssh={"src": ["tag:ci"]})])


def test_a_non_owner_renders_nothing() -> None:
    with pytest.raises(PolicyError, match="not the policy owner"):
        render_policy(dev(), [])


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


# --- the repository's own stacks: prod owns, dev is rendered by it -----------------------


def test_repo_stacks_have_one_owner_and_dev_is_covered() -> None:
    stacks = sorted(
        p.name[len("Pulumi.") : -len(".yaml")]
        for p in Path(PROJECT_ROOT, "stacks").glob("Pulumi.*.yaml")
    )
    owners = [s for s in stacks if load_stack(s).tailnet.policy.owner]
    # prod owns the real tailnet's policy; `local` is the sandbox's own tailnet (headscale).
    assert owners == ["local", "prod"]
    document = policy_for_stack("prod")
    assert load_stack("prod").tailnet.policy.environments == ["dev"]
    for name in ("prod", "dev"):
        assert missing_rules(document, load_stack(name).tailnet) == [], name
    assert ssh_rule(document, "tag:coral-machine")["checkPeriod"] == "12h"
    assert ssh_rule(document, "tag:coral-dev")["action"] == "accept"
    assert evaluate_tests(document, ROLES) == []
    json.dumps(document)  # the Acl resource sends it as JSON text


def test_policy_for_a_non_owner_stack_says_so() -> None:
    with pytest.raises(PolicyError, match="'dev' does not own the tailnet policy"):
        policy_for_stack("dev")
