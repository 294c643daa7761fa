"""The deploy workflow's order, driven against the sandbox with the real engine.

The job and step order is read from .github/workflows/deploy.yml (jobs sorted by `needs`, each
job's `pulumi/actions` steps translated to the CLI flags the action passes), not copied here.
The owner stack is the sandbox's own (headscale's logins in its tests), named `prod` as the
workflow names it and listing `dev` in its environments; `dev` is the repository's dev stack
(userspace networking, as every sandbox pod needs). Not translated: `policyPacks` (the engine
would build the pack's virtualenv from PyPI on each run) and the backend/cloud inputs.

A change to dev's SSH rule must deploy in one push: the owner's policy step writes the new
rule before dev checks the live policy. The same change deployed dev-first is refused before
anything is created, which is what the order prevents.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from coral_infra.policy import environment_rules
from coral_infra.settings import load_stack
from standins.sandbox import Sandbox
from tests.e2e.conftest import sandbox_on

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "deploy.yml"
OWNER, DEV = "prod", "dev"
_STACK_NAME = re.compile(r".*\|\| '([A-Za-z0-9_.-]+)' }}$")


def workflow_commands(path: Path = DEPLOY) -> list[tuple[str, list[str]]]:
    """(job, pulumi arguments) for every pulumi/actions step, in the order the jobs run."""
    jobs: dict[str, Any] = yaml.safe_load(path.read_text())["jobs"]
    order: list[str] = []
    while len(order) < len(jobs):
        ready = [
            n for n, j in jobs.items() if n not in order and set(j.get("needs", [])) <= set(order)
        ]
        assert len(ready) == 1, f"jobs that run side by side or never: {ready}"
        order += ready
    return [
        (name, pulumi_arguments(step["with"]))
        for name in order
        for step in jobs[name]["steps"]
        if str(step.get("uses", "")).startswith("pulumi/actions@")
    ]


def pulumi_arguments(inputs: dict[str, Any]) -> list[str]:
    """What pulumi/actions runs for these inputs (its Automation API call), as CLI flags."""
    match = _STACK_NAME.match(inputs["stack-name"])
    assert match, inputs["stack-name"]
    command = inputs["command"]
    args = [command, "--stack", match.group(1), "--suppress-progress"]
    if command == "up":
        args += ["--yes", "--skip-preview"]
    for urn in str(inputs.get("target") or "").split():
        args += ["--target", urn]
    if inputs.get("refresh") is True:
        args.append("--refresh")
    if inputs.get("diff") is True:
        args.append("--diff")
    return args


def run_workflow(sandbox: Sandbox) -> list[subprocess.CompletedProcess[str]]:
    done = []
    for job, args in workflow_commands():
        result = sandbox.pulumi(*args, check=False)
        assert result.returncode == 0, f"job {job}: pulumi {' '.join(args)}\n{result.stdout}"
        done.append(result)
    return done


@pytest.fixture(scope="module")
def rollout(tools_dir: Path) -> Iterator[Sandbox]:
    with sandbox_on(tools_dir, OWNER) as box:
        box.pulumi("config", "set", "--path", "coral:tailnet.policy.environments[0]", DEV)
        box.use_stack(DEV)
        box.pulumi("config", "set", "--path", "coral:machines[0].userspaceNetworking", "true")
        yield box


def dev_rules(sandbox: Sandbox) -> dict[str, Any]:
    return environment_rules(load_stack(DEV, sandbox.project_dir).tailnet)


def test_the_workflow_runs_the_owners_policy_step_first() -> None:
    commands = workflow_commands()
    assert [(job, args[:3]) for job, args in commands] == [
        ("policy", ["up", "--stack", OWNER]),
        ("dev", ["up", "--stack", DEV]),
        ("prod", ["up", "--stack", OWNER]),
    ]
    assert "--target" in commands[0][1] and "--target" not in commands[1][1]


def test_the_first_deploy_succeeds_in_one_pass(rollout: Sandbox) -> None:
    run_workflow(rollout)
    live = rollout.tailscale_api.policy
    assert dev_rules(rollout)["ssh"][0] in live["ssh"]
    outputs = rollout.pulumi("stack", "output", "--json", "--stack", DEV).stdout
    assert "tailscale ssh root@coral-dev." in outputs
    assert rollout.headscale.nodes_named("coral-dev")


def test_a_change_to_devs_ssh_rule_deploys_in_one_push(rollout: Sandbox) -> None:
    rollout.pulumi("config", "set", "--stack", DEV, "--path", "coral:tailnet.ssh.action", "check")
    new_rule = dev_rules(rollout)["ssh"][0]
    assert new_rule["action"] == "check" and new_rule["users"] == ["root"]
    assert new_rule not in rollout.tailscale_api.policy["ssh"]

    # The pull request's preview of dev compares with prod's rendering from the same commit.
    preview = rollout.pulumi("preview", "--stack", DEV, "--suppress-progress", check=False)
    assert preview.returncode == 0, preview.stdout
    assert "stack 'prod', which owns the policy, renders them from this commit" in preview.stdout

    # Deployed dev-first (the old order), dev stops before creating anything.
    keys = list(rollout.tailscale_api.key_ids)
    dev_first = rollout.pulumi(
        "up", "--stack", DEV, "--yes", "--skip-preview", "--suppress-progress", check=False
    )
    assert dev_first.returncode != 0
    assert "its policy step must run first" in dev_first.stdout, dev_first.stdout
    assert rollout.tailscale_api.key_ids == keys

    # The workflow's order: one pass, no job fails.
    run_workflow(rollout)
    assert new_rule in rollout.tailscale_api.policy["ssh"]
    again = rollout.pulumi("preview", "--stack", DEV, "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout
