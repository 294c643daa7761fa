"""The sshTests/tests evaluator: Tailscale's access decisions on small policies."""

from __future__ import annotations

from typing import Any

import pytest

from coral_infra.policy import (
    PolicyTestError,
    evaluate_tests,
    network_allowed,
    ssh_decision,
)

ROLES = {"olga@example.com": "owner", "adam@example.com": "admin", "mia@example.com": "member"}
TAG = "tag:gpu"


def acl(src: list[str], dst: list[str], **extra: Any) -> dict[str, Any]:
    return {"acls": [{"action": "accept", "src": src, "dst": dst, **extra}]}


@pytest.mark.parametrize(
    ("policy", "src", "port", "expected"),
    [
        ({}, "olga@example.com", 22, False),  # deny by default
        (acl(["*"], ["*:*"]), "mia@example.com", 2222, True),
        (acl(["autogroup:owner"], [f"{TAG}:22"]), "olga@example.com", 22, True),
        (acl(["autogroup:owner"], [f"{TAG}:22"]), "adam@example.com", 22, False),
        (acl(["autogroup:admin"], [f"{TAG}:22"]), "adam@example.com", 22, True),
        (acl(["autogroup:member"], [f"{TAG}:22"]), "tag:ci", 22, False),
        (acl(["autogroup:tagged"], [f"{TAG}:22"]), "tag:ci", 22, True),
        (acl(["tag:ci"], [f"{TAG}:*"]), "tag:ci", 11111, True),
        (acl(["mia@example.com"], [f"{TAG}:22,2222"]), "mia@example.com", 2222, True),
        (acl(["mia@example.com"], [f"{TAG}:10000-12000"]), "mia@example.com", 11111, True),
        (acl(["mia@example.com"], [f"{TAG}:10000-11000"]), "mia@example.com", 11111, False),
        (acl(["mia@example.com"], ["tag:other:*"]), "mia@example.com", 22, False),
        (acl(["mia@example.com"], ["autogroup:self:*"]), "mia@example.com", 22, False),
        (acl(["mia@example.com"], ["autogroup:tagged:22"]), "mia@example.com", 22, True),
        (acl(["*"], ["*:*"], proto="udp"), "mia@example.com", 22, False),
        (acl(["*"], ["*:*"], proto="6"), "mia@example.com", 22, True),
        (
            {"acls": [{"action": "accept", "users": ["*"], "ports": ["*:22"]}]},
            "mia@example.com",
            22,
            True,
        ),
        (
            {"groups": {"group:ml": ["mia@example.com"]}, **acl(["group:ml"], [f"{TAG}:22"])},
            "mia@example.com",
            22,
            True,
        ),
        (
            {"groups": {"group:ml": ["adam@example.com"]}, **acl(["group:ml"], [f"{TAG}:22"])},
            "mia@example.com",
            22,
            False,
        ),
        # Things the model cannot resolve without device addresses or postures: undecided.
        (acl(["100.64.0.0/10"], ["*:*"]), "mia@example.com", 22, None),
        (acl(["*"], ["100.101.102.103:22"]), "mia@example.com", 22, None),
        (acl(["*"], ["*:*"], srcPosture=["posture:mac"]), "mia@example.com", 22, None),
        # ...unless another rule decides it anyway.
        (
            {"acls": [*acl(["100.64.0.0/10"], ["*:*"])["acls"], *acl(["*"], ["*:*"])["acls"]]},
            "mia@example.com",
            22,
            True,
        ),
        ({"grants": [{"src": ["*"], "dst": [TAG], "ip": ["tcp:22"]}]}, "mia@example.com", 22, True),
        (
            {"grants": [{"src": ["*"], "dst": [TAG], "ip": ["udp:22"]}]},
            "mia@example.com",
            22,
            False,
        ),
        ({"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}, "mia@example.com", 2222, True),
        (
            {"grants": [{"src": ["*"], "dst": [TAG], "app": {"x": [{}]}}]},
            "mia@example.com",
            22,
            False,
        ),
    ],
)
def test_network_access(policy: dict[str, Any], src: str, port: int, expected: bool | None) -> None:
    assert network_allowed(policy, src, TAG, port, ROLES) is expected


def ssh(action: str, src: list[str], users: list[str], dst: list[str] | None = None) -> dict:
    return {"action": action, "src": src, "dst": dst or [TAG], "users": users}


@pytest.mark.parametrize(
    ("rules", "src", "user", "expected"),
    [
        ([], "olga@example.com", "root", "deny"),
        ([ssh("check", ["autogroup:owner"], ["root"])], "olga@example.com", "root", "check"),
        ([ssh("accept", ["autogroup:owner"], ["root"])], "mia@example.com", "root", "deny"),
        (
            [ssh("accept", ["autogroup:member"], ["autogroup:nonroot"])],
            "mia@example.com",
            "root",
            "deny",
        ),
        (
            [ssh("accept", ["autogroup:member"], ["autogroup:nonroot"])],
            "mia@example.com",
            "mia",
            "accept",
        ),
        # The first matching rule decides: check before accept means check.
        (
            [ssh("check", ["autogroup:member"], ["root"]), ssh("accept", ["*"], ["root"])],
            "olga@example.com",
            "root",
            "check",
        ),
        # A rule for another destination does not match a tagged device.
        (
            [ssh("accept", ["autogroup:member"], ["root"], ["autogroup:self"])],
            "mia@example.com",
            "root",
            "deny",
        ),
        (
            [ssh("accept", ["autogroup:member"], ["localpart:*@example.com"])],
            "mia@example.com",
            "mia",
            "accept",
        ),
        (
            [ssh("accept", ["autogroup:member"], ["localpart:*@example.com"])],
            "mia@example.com",
            "olga",
            "deny",
        ),
        ([ssh("accept", ["tag:ci"], ["root"])], "tag:ci", "root", "accept"),
        (
            [ssh("accept", ["100.64.0.1"], ["root"]), ssh("accept", ["*"], ["root"])],
            "mia@example.com",
            "root",
            None,
        ),
    ],
)
def test_ssh_decisions(rules: list[dict], src: str, user: str, expected: str | None) -> None:
    assert ssh_decision({"ssh": rules}, src, TAG, user, ROLES) == expected


def test_evaluate_tests_reports_each_failed_assertion() -> None:
    policy = {
        **acl(["autogroup:owner"], [f"{TAG}:22"]),
        "ssh": [ssh("check", ["autogroup:owner"], ["root"])],
        "sshTests": [
            {"src": "olga@example.com", "dst": [TAG], "check": ["root"], "deny": ["coral"]},
            {"src": "mia@example.com", "dst": [TAG], "accept": ["root"]},
        ],
        "tests": [
            {"src": "olga@example.com", "accept": [f"{TAG}:22"], "deny": [f"{TAG}:2222"]},
            {"src": "mia@example.com", "accept": [f"{TAG}:22"]},
        ],
    }
    assert evaluate_tests(policy, ROLES) == [
        f"sshTests: mia@example.com -> {TAG} as 'root': expected accept, got deny",
        f"tests: mia@example.com -> {TAG}:22: expected accept, got deny",
    ]


def test_evaluate_tests_never_passes_what_it_cannot_decide() -> None:
    policy = {
        **acl(["100.64.0.0/10"], ["*:*"]),
        "tests": [
            {"src": "mia@example.com", "deny": [f"{TAG}:22"]},
            {"src": "nobody@example.com", "deny": [f"{TAG}:22"]},
            {"src": "mia@example.com", "deny": ["100.101.102.103:22"]},
        ],
    }
    failures = evaluate_tests(policy, ROLES)
    assert failures[0] == f"tests: mia@example.com -> {TAG}:22: expected deny, got undecidable"
    assert "'nobody@example.com' is not a known user" in failures[1]
    assert "supports 'tag:name:port' only" in failures[2]
    assert len(failures) == 3


def test_unsupported_sources_are_errors_not_denials() -> None:
    with pytest.raises(PolicyTestError, match="user logins and tags only"):
        network_allowed({}, "group:ml", TAG, 22, ROLES)
