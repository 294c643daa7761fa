"""The owner's whole document: every stack's rules merged into the base policy, with
self-tests; merges that widen access or break the base's own tests are refused."""

from __future__ import annotations

from typing import Any

import pytest

from coral_infra import hujson
from coral_infra.policy import (
    DEFAULT_POLICY,
    evaluate_tests,
    read_base_policy,
    render_policy,
)
from coral_infra.settings import PROJECT_ROOT, SettingsError

from .policy_helpers import ALLOWED, DENIED, ROLES, dev, owner, ssh_rule


def problems(error: pytest.ExceptionInfo[SettingsError]) -> list[str]:
    return [str(p) for p in error.value.problems]


def test_check_and_accept_rules_with_check_period() -> None:
    rendered = render_policy(owner({"action": "check", "checkPeriod": "1h30m"}), [dev()])
    assert ssh_rule(rendered.document, "tag:coral-machine") == {
        "action": "check",
        "src": ["autogroup:owner"],
        "dst": ["tag:coral-machine"],
        "users": ["root"],
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


def test_self_tests_assert_access_and_denials_and_hold() -> None:
    document = render_policy(owner(), [dev()]).document
    ssh_tests = document["sshTests"]
    # prod's check rule lets in root only: the owner gets `check` as root, `deny` otherwise.
    assert {
        "src": ALLOWED,
        "dst": ["tag:coral-machine"],
        "check": ["root"],
        "deny": ["coral"],
    } in ssh_tests
    assert {"src": ALLOWED, "dst": ["tag:coral-dev"], "accept": ["root", "coral"]} in ssh_tests
    assert {"src": DENIED, "dst": ["tag:coral-machine"], "deny": ["root", "coral"]} in ssh_tests
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


# --- access never widened silently ------------------------------------------------------------

MEMBERS_AS_ROOT: dict[str, Any] = {
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


def test_a_base_rule_letting_other_sources_onto_a_machine_tag_is_refused() -> None:
    with pytest.raises(SettingsError) as error:
        render_policy(owner(), [], MEMBERS_AS_ROOT, "policy/tailnet.hujson")
    assert problems(error) == [
        "coral:tailnet.policy.baseFile: policy/tailnet.hujson ssh[0] lets ['autogroup:member'] "
        "onto tag:coral-machine (stack 'prod') as ['root'], beyond its coral:tailnet.ssh.src "
        "['autogroup:owner']: access the stack files do not grant; remove or narrow that rule, "
        'or acknowledge it with coral:tailnet.policy.acknowledgedBaseSsh: {"tag:coral-machine": '
        '["autogroup:member"]}'
    ]


def test_rules_on_every_tagged_device_count_and_any_user_counts() -> None:
    base = {
        "groups": {"group:contractors": ["carl@corp.io"]},
        "ssh": [
            {
                "action": "accept",
                "src": ["group:contractors"],
                "dst": ["autogroup:tagged"],
                "users": ["autogroup:nonroot"],
            }
        ],
    }
    with pytest.raises(SettingsError) as error:
        render_policy(owner(), [dev()], base, "policy/tailnet.hujson")
    assert [p.split(" (stack")[0] for p in problems(error)] == [
        "coral:tailnet.policy.baseFile: policy/tailnet.hujson ssh[0] lets ['group:contractors'] "
        "onto tag:coral-machine",
        "coral:tailnet.policy.baseFile: policy/tailnet.hujson ssh[0] lets ['group:contractors'] "
        "onto tag:coral-dev",
    ]


def test_an_acknowledged_widening_renders_and_its_consequence_is_noted() -> None:
    ack = {"tag:coral-machine": ["autogroup:member"]}
    rendered = render_policy(
        owner(acknowledgedBaseSsh=ack), [], MEMBERS_AS_ROOT, "policy/tailnet.hujson"
    )
    denied_tests = [t for t in rendered.document["sshTests"] if t["src"] == DENIED]
    assert denied_tests == [{"src": DENIED, "dst": ["tag:coral-machine"], "deny": ["coral"]}]
    assert any("as 'root'" in w and DENIED in w for w in rendered.warnings)
    # Ours comes first: the allowed user still gets `check`, not the base's accept.
    assert rendered.document["ssh"][0]["action"] == "check"
    assert evaluate_tests(rendered.document, ROLES) == []


def test_sources_within_the_stacks_own_are_no_widening() -> None:
    base = {
        "groups": {"group:ml": ["carl@corp.io"]},
        "ssh": [
            {"action": "check", "src": ["carl@corp.io"], "dst": ["tag:coral-dev"], "users": ["ml"]}
        ],
    }
    rendered = render_policy(owner(), [dev(ssh={"src": ["group:ml"]})], base, "b.hujson")
    assert rendered.document["ssh"][-1] == base["ssh"][0]


def test_an_acknowledgement_for_a_tag_no_stack_uses_is_refused() -> None:
    with pytest.raises(SettingsError) as error:
        render_policy(owner(acknowledgedBaseSsh={"tag:typo": ["group:x"]}), [dev()])
    assert problems(error) == [
        "coral:tailnet.policy.acknowledgedBaseSsh.tag:typo: no stack rendered here uses "
        "'tag:typo' (machine tags: ['tag:coral-dev', 'tag:coral-machine']); acknowledge sources "
        "only for a tag these stacks manage"
    ]


# --- the base's own tests, after the merge --------------------------------------------------


def test_base_tests_broken_by_the_merge_fail_at_render() -> None:
    base = {
        "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}],
        "tests": [
            {"src": DENIED, "accept": ["tag:coral-dev:22"]},
            {"src": ALLOWED, "deny": ["tag:coral-dev:2222"]},
        ],
        "sshTests": [{"src": ALLOWED, "dst": ["tag:coral-dev"], "deny": ["root"]}],
    }
    with pytest.raises(SettingsError) as error:
        render_policy(owner(), [dev()], base, "policy/tailnet.hujson")
    tail = (
        ", and Tailscale runs these tests on every policy update, so `up` would be refused; "
        "fix the test or the rule that decides it"
    )
    assert problems(error) == [
        "coral:tailnet.policy.baseFile: policy/tailnet.hujson sshTests[0]: ana@corp.io -> "
        "tag:coral-dev as 'root' expects deny but the merged policy gives accept: coral-infra's "
        "rules merged into it break it" + tail,
        "coral:tailnet.policy.baseFile: policy/tailnet.hujson tests[0]: ben@corp.io -> "
        "tag:coral-dev:22 expects accept but the merged policy gives deny: it fails on the base "
        "policy already" + tail,
        "coral:tailnet.policy.baseFile: policy/tailnet.hujson tests[1]: ana@corp.io -> "
        "tag:coral-dev:2222 expects deny but the merged policy gives accept: coral-infra's rules "
        "merged into it break it" + tail,
    ]


def test_base_tests_that_still_hold_are_kept_and_unknown_users_are_noted() -> None:
    base = {
        "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}],
        "tests": [
            {"src": DENIED, "deny": ["tag:coral-dev:22"]},
            {"src": "zoe@corp.io", "deny": ["tag:coral-dev:22"]},
        ],
    }
    rendered = render_policy(owner(), [dev()], base, "policy/tailnet.hujson")
    assert rendered.document["tests"][:2] == base["tests"]
    assert (
        "policy/tailnet.hujson tests[1]: cannot check zoe@corp.io -> tag:coral-dev:22 (expected "
        "deny) before the control plane does: the model cannot decide it"
    ) in rendered.warnings


# --- merging keeps the user's policy ------------------------------------------------------------


def test_merge_keeps_every_user_section() -> None:
    text = (
        (PROJECT_ROOT / "policy" / "tailnet.hujson")
        .read_text()
        .replace(
            '"nodeAttrs"',
            """"groups": {"group:ml": ["ml@corp.io"],},
        "hosts": {"nas": "100.64.0.9",},
        "autoApprovers": {"exitNode": ["autogroup:admin"],},
        "tagOwners": {"tag:nas": ["autogroup:admin"],},
        "tests": [{"src": "ml@corp.io", "accept": ["nas:445"],},],
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
    # The base's test names a host the model cannot place: noted, not guessed.
    assert any("tailnet.hujson tests[0]: cannot check ml@corp.io" in w for w in rendered.warnings)


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
    with pytest.raises(SettingsError) as error:
        read_base_policy("policy/nope.hujson")
    assert problems(error) == [
        f"coral:tailnet.policy.baseFile: no file {PROJECT_ROOT / 'policy/nope.hujson'}; keep the "
        "tailnet's existing policy there (start from policy/tailnet.hujson) or unset baseFile"
    ]


def test_conflicting_tag_owners_name_both_definitions() -> None:
    base = {"tagOwners": {"tag:coral-dev": ["group:ops"]}, "groups": {"group:ops": []}}
    with pytest.raises(SettingsError) as error:
        render_policy(owner(), [dev()], base, "policy/tailnet.hujson")
    assert problems(error) == [
        "coral:tailnet.policy.baseFile: tagOwners['tag:coral-dev'] is ['group:ops'] in "
        "policy/tailnet.hujson but stack 'dev' coral:tailnet.tagOwners is ['autogroup:admin']; "
        "make them the same (or remove the entry from the base policy and let coral-infra "
        "write it)"
    ]


def test_same_tag_owners_in_the_base_are_fine() -> None:
    base = {"tagOwners": {"tag:coral-dev": ["autogroup:admin"]}}
    assert render_policy(owner(), [dev()], base, "b").document["tagOwners"]["tag:coral-dev"]


def test_undefined_groups_and_tags_are_all_caught_before_tailscale_rejects_them() -> None:
    with pytest.raises(SettingsError) as error:
        render_policy(
            owner(ssh={"action": "check", "src": ["tag:ci"]}), [dev(ssh={"src": ["group:ml"]})]
        )
    assert problems(error) == [
        "coral:tailnet.ssh.src: stack 'prod' coral:tailnet.ssh.src names 'tag:ci', which no "
        "tagOwners entry defines; add it to the base policy's tagOwners",
        "coral:tailnet.policy.environments[0]: stack 'dev' coral:tailnet.ssh.src names "
        "'group:ml', which the base policy's groups do not define; add it there",
    ]
