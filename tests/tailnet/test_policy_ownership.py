"""Which stack writes a tailnet's policy, and what stacks sharing a tailnet must agree on,
read from the project's stack files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coral_infra.policy import (
    Environment,
    evaluate_tests,
    missing_rules,
    policy_for_stack,
    render_owner_policy,
    render_policy,
)
from coral_infra.policy.ownership import (
    TailnetIdentity,
    environment_problems,
    find_owner,
    load_environments,
    other_owner_problems,
    read_stack_file,
)
from coral_infra.settings import PROJECT_ROOT, SettingsError, load_stack, stack_names

from .policy_helpers import (
    ALLOWED,
    DENIED,
    dev,
    member_config,
    owner,
    owner_config,
    ssh_rule,
    stack,
    write_project,
)


@pytest.mark.parametrize(
    ("environments", "expected"),
    [
        (
            [stack("dev", {}, "coral-dev", 0)],
            "coral:tailnet.machineTag: stacks 'prod' and 'dev' both use machine tag "
            "'tag:coral-machine'; give each stack its own coral:tailnet.machineTag (their SSH "
            "rules and keys would mix)",
        ),
        (
            [stack("dev", {"machineTag": "tag:x"}, "coral-machine", 0)],
            "coral:machines[0].hostname: stacks 'prod' and 'dev' both have a machine named "
            "'coral-machine' on one tailnet; the second would join as 'coral-machine-1': give "
            "each machine its own coral:machines[].hostname",
        ),
        (
            [dev(0), dev(1)],
            "coral:tailnet.policy.environments[1]: names 'dev' twice (or the owner itself); "
            "list each other stack once",
        ),
        (
            [
                stack(
                    "dev",
                    {
                        "machineTag": "tag:x",
                        "policy": {"owner": True, "tests": {"allowed": ALLOWED, "denied": DENIED}},
                    },
                    "coral-dev",
                    0,
                )
            ],
            "coral:tailnet.policy.environments[0]: stack 'dev' is itself a policy owner; a "
            "tailnet has exactly one owner: set owner: false on 'dev' or remove it from the list",
        ),
        (
            [dev(0), stack("ci", {"machineTag": "tag:coral-dev"}, "coral-ci", 1)],
            "coral:tailnet.policy.environments[1]: stacks 'dev' and 'ci' both use machine tag "
            "'tag:coral-dev'; give each stack its own coral:tailnet.machineTag (their SSH rules "
            "and keys would mix)",
        ),
    ],
)
def test_two_stacks_on_one_tailnet_must_not_collide(
    environments: list[Environment], expected: str
) -> None:
    assert [str(p) for p in environment_problems(owner(), environments)] == [expected]
    with pytest.raises(SettingsError):
        render_policy(owner(), environments)


def test_a_non_owner_renders_nothing() -> None:
    with pytest.raises(SettingsError) as error:
        render_policy(dev(listed_at=None), [])
    assert [str(p) for p in error.value.problems] == [
        "coral:tailnet.policy.owner: stack 'dev' is not the policy owner (owner is false); only "
        "the owner renders the tailnet policy"
    ]


# --- from the stack files -------------------------------------------------------------------


def test_a_missing_or_broken_environment_is_reported_under_its_entry(tmp_path: Path) -> None:
    broken = member_config()
    broken["coral:machines"][0]["hostname"] = "Bad_Host"
    project = write_project(
        tmp_path,
        {"prod": owner_config(environments=["staging", "dev"]), "dev": broken},
    )
    prod = load_stack("prod", project)
    environments, problems = load_environments(prod.tailnet, project)
    assert environments == []
    assert [str(p) for p in problems] == [
        "coral:tailnet.policy.environments[0]: no stack 'staging': there is no file "
        "stacks/Pulumi.staging.yaml; stacks here: dev, prod",
        "coral:tailnet.policy.environments[1]: stack 'dev' cannot be rendered: 1 problem(s) in "
        "stacks/Pulumi.dev.yaml: coral:machines[0].hostname: got 'Bad_Host'; a "
        "hostname is one DNS label: 1-63 lowercase letters, digits or hyphens, not starting or "
        "ending with a hyphen (e.g. 'coral-machine')",
    ]
    with pytest.raises(SettingsError) as error:
        render_owner_policy(Environment.from_settings("prod", prod), project)
    assert len(error.value.problems) == 2


def test_two_owners_of_one_tailnet_are_found_from_the_stack_files(tmp_path: Path) -> None:
    project = write_project(
        tmp_path,
        {
            "prod": owner_config(),
            "staging": {**owner_config(), "coral:machines": member_config()["coral:machines"]},
            "sandbox": {
                **owner_config(),
                "coral:tailnet": {
                    **owner_config()["coral:tailnet"],
                    "loginServer": "http://127.0.0.1:8080",
                },
            },
            "other": {**owner_config(), "tailscale:tailnet": "other.example"},
        },
    )
    identity = read_stack_file("prod", project).identity
    assert identity == TailnetIdentity("Tailscale's control plane", "-")
    assert [str(p) for p in other_owner_problems("prod", identity, project)] == [
        "coral:tailnet.policy.owner: stack 'prod' and 'staging' all own the policy of tailnet "
        "'-' on Tailscale's control plane: a tailnet has one policy file and each owner's `up` "
        "would overwrite the other's; keep owner: true on one stack and list the others in its "
        "coral:tailnet.policy.environments (or, if they are different tailnets, set "
        "tailscale:tailnet in each stack file)"
    ]
    sandbox = read_stack_file("sandbox", project)
    assert other_owner_problems("sandbox", sandbox.identity, project) == []


def test_a_non_owner_finds_the_owner_that_lists_it(tmp_path: Path) -> None:
    project = write_project(
        tmp_path,
        {
            "prod": owner_config(environments=["dev"]),
            "dev": member_config(),
            "lab": member_config("tag:coral-lab", "coral-lab"),
        },
    )
    dev_file = read_stack_file("dev", project)
    found = find_owner("dev", dev_file.identity, project)
    assert found is not None and found.name == "prod"
    assert find_owner("lab", read_stack_file("lab", project).identity, project) is None


# --- the repository's own stacks: prod owns, dev is rendered by it -----------------------


def test_repo_stacks_have_one_owner_per_tailnet_and_dev_is_covered() -> None:
    owners = [s for s in stack_names() if load_stack(s).tailnet.policy.owner]
    # prod owns the real tailnet's policy; `local` is the sandbox's own tailnet (headscale).
    assert owners == ["local", "prod"]
    for name in owners:
        identity = read_stack_file(name).identity
        assert other_owner_problems(name, identity, PROJECT_ROOT) == []
    document = policy_for_stack("prod")
    assert load_stack("prod").tailnet.policy.environments == ["dev"]
    for name in ("prod", "dev"):
        assert missing_rules(document, load_stack(name).tailnet) == [], name
    assert ssh_rule(document, "tag:coral-machine")["checkPeriod"] == "12h"
    assert ssh_rule(document, "tag:coral-machine")["users"] == ["root"]
    assert ssh_rule(document, "tag:coral-dev")["action"] == "accept"
    tests = load_stack("prod").tailnet.policy.tests
    assert tests is not None
    assert evaluate_tests(document, {tests.allowed: "owner", tests.denied: "member"}) == []
    json.dumps(document)  # the Acl resource sends it as JSON text


def test_policy_for_a_non_owner_stack_says_so() -> None:
    with pytest.raises(SettingsError) as error:
        policy_for_stack("dev")
    assert [str(p) for p in error.value.problems] == [
        "coral:tailnet.policy.owner: stack 'dev' does not own the tailnet policy (owner is "
        "false); render the owner stack instead, or set owner: true on the one stack per "
        "tailnet that writes it"
    ]
