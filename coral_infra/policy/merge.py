"""The owner's whole policy document: every stack's rules merged into the user's own policy.

The owner (`coral:tailnet.policy.owner: true`) writes the user's policy (`baseFile`, or
Tailscale's default policy) with the rules of itself and of every stack in its `environments`
merged in. Every section of the base is kept; our `ssh` rules go first (Tailscale SSH uses the
first rule that matches, and ours only match our tags); `sshTests`/`tests` are added so the
control plane rejects any later edit that breaks the intended access or the intended denials.

Refused, with the rule named, before anything is created:
- a base SSH rule letting sources other than a stack's `ssh.src` onto that stack's machine tag
  (access widened without the stack files saying so), unless
  `coral:tailnet.policy.acknowledgedBaseSsh` lists them;
- a base `tests`/`sshTests` entry that fails on the merged document (Tailscale runs them on
  every policy update, so `up` would fail);
- tag owners that contradict the base, tags and groups the base does not define.

The self-tests are only emitted where the evaluator (`evaluate.py`) confirms they hold on the
merged document; what is left out comes back as a warning saying why.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from coral_infra import hujson
from coral_infra.policy.evaluate import (
    Roles,
    SelfTestResult,
    evaluate_tests,
    network_allowed,
    run_self_tests,
    source_matches,
    ssh_decision,
)
from coral_infra.policy.ownership import environment_problems, load_environments
from coral_infra.policy.rules import (
    DEFAULT_POLICY,
    MACHINE_PORTS,
    Environment,
    contains,
    network_rule,
    ssh_rule,
)
from coral_infra.settings import (
    NAMESPACE,
    PROJECT_ROOT,
    ConfigProblem,
    SettingsError,
    load_stack,
)

# `autogroup:nonroot` is not a login name a test can use; this stands in for "any non-root user".
NONROOT_PROBE_USER = "coral"
OWNER_ROLE = "owner"
MEMBER_ROLE = "member"
DEFAULT_BASE = "Tailscale's default policy"
BASE_KEY = f"{NAMESPACE}:tailnet.policy.baseFile"
ACKNOWLEDGED_KEY = f"{NAMESPACE}:tailnet.policy.acknowledgedBaseSsh"


@dataclass(frozen=True)
class RenderedPolicy:
    """The whole policy document the owner stack applies, and what its self-tests leave out."""

    document: dict[str, Any]
    warnings: tuple[str, ...]

    def json(self) -> str:
        """The text the `Acl` resource sends, stable so an unchanged policy shows no diff.

        Tab-indented like the canonical HuJSON the API returns: the provider suppresses
        whitespace-only diffs, but shows a real change against the API's formatting
        (terraform-provider-tailscale#798), so staying close keeps that diff readable.
        """
        return json.dumps(self.document, indent="\t")


def _list_section(
    document: Mapping[str, Any], key: str, source: str, problems: list[ConfigProblem]
) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        problems.append(
            ConfigProblem(BASE_KEY, f"{source}: {key!r} must be a list, got {type(value).__name__}")
        )
        return []
    return list(value)


def _merge_tag_owners(
    document: dict[str, Any],
    env: Environment,
    base_source: str,
    problems: list[ConfigProblem],
) -> None:
    tag_owners = document.setdefault("tagOwners", {})
    if not isinstance(tag_owners, dict):
        problems.append(ConfigProblem(BASE_KEY, f"{base_source}: 'tagOwners' must be an object"))
        return
    tag = env.tailnet.machine_tag
    ours = list(env.tailnet.tag_owners)
    theirs = tag_owners.get(tag)
    if theirs is not None and sorted(theirs) != sorted(ours):
        problems.append(
            ConfigProblem(
                BASE_KEY,
                f"tagOwners[{tag!r}] is {theirs} in {base_source} but "
                f"{env.describe('tagOwners')} is {ours}; make them the same (or remove the "
                "entry from the base policy and let coral-infra write it)",
            )
        )
    tag_owners[tag] = ours


def _reference_problems(document: Mapping[str, Any], env: Environment) -> list[ConfigProblem]:
    """Tailscale rejects a policy naming a tag or group it does not define; say it here."""
    tags = set(document.get("tagOwners", {}))
    groups = set(document.get("groups", {}))
    problems = []
    for field, names in (("ssh.src", env.tailnet.ssh.src), ("tagOwners", env.tailnet.tag_owners)):
        for name in names:
            if name.startswith("tag:") and name not in tags:
                problems.append(
                    ConfigProblem(
                        env.key(field),
                        f"{env.describe(field)} names {name!r}, which no tagOwners entry "
                        "defines; add it to the base policy's tagOwners",
                    )
                )
            if name.startswith("group:") and name not in groups:
                problems.append(
                    ConfigProblem(
                        env.key(field),
                        f"{env.describe(field)} names {name!r}, which the base policy's groups "
                        "do not define; add it there",
                    )
                )
    return problems


def _covered(source: str, allowed: set[str], base: Mapping[str, Any]) -> bool:
    """Does a base rule's source fall within the sources a stack allows? Literally, or as a
    login that is a member of an allowed group."""
    if source in allowed:
        return True
    return any(
        source_matches(group, source, base, {source: None}) is True
        for group in allowed
        if group.startswith("group:") and "@" in source
    )


def widening_problems(
    base: Mapping[str, Any],
    base_source: str,
    everyone: Sequence[Environment],
    acknowledged: Mapping[str, Sequence[str]],
) -> list[ConfigProblem]:
    """Base SSH rules that let sources beyond a stack's `ssh.src` onto its machine tag."""
    problems: list[ConfigProblem] = []
    ours = [ssh_rule(env.tailnet) for env in everyone]
    rules = base.get("ssh")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict) or contains(ours, rule):
            continue
        destinations = rule.get("dst") or []
        for env in everyone:
            tag = env.tailnet.machine_tag
            if tag not in destinations and "autogroup:tagged" not in destinations:
                continue
            allowed = set(env.tailnet.ssh.src) | set(acknowledged.get(tag, ()))
            extra = [s for s in rule.get("src") or [] if not _covered(s, allowed, base)]
            if extra:
                problems.append(
                    ConfigProblem(
                        BASE_KEY,
                        f"{base_source} ssh[{index}] lets {extra} onto {tag} (stack "
                        f"{env.stack!r}) as {rule.get('users')}, beyond its coral:tailnet.ssh.src "
                        f"{list(env.tailnet.ssh.src)}: access the stack files do not grant; remove "
                        "or narrow that rule, or acknowledge it with "
                        f"{ACKNOWLEDGED_KEY}: {json.dumps({tag: extra})}",
                    )
                )
    tags = {env.tailnet.machine_tag for env in everyone}
    for tag in acknowledged:
        if tag not in tags:
            problems.append(
                ConfigProblem(
                    f"{ACKNOWLEDGED_KEY}.{tag}",
                    f"no stack rendered here uses {tag!r} (machine tags: {sorted(tags)}); "
                    "acknowledge sources only for a tag these stacks manage",
                )
            )
    return problems


def _test_logins(document: Mapping[str, Any]) -> set[str]:
    return {
        str(t.get("src"))
        for section in ("sshTests", "tests")
        for t in document.get(section) or []
        if isinstance(t, dict) and "@" in str(t.get("src", ""))
    }


def base_test_problems(
    base: Mapping[str, Any],
    merged: Mapping[str, Any],
    base_source: str,
    roles: Mapping[str, str],
) -> tuple[list[ConfigProblem], list[str]]:
    """The base policy's own `tests`/`sshTests`, run again on the merged document: one that
    fails is a policy Tailscale refuses at `up`, so it is refused here. Undecidable ones (a
    role or an address the model cannot know) become warnings."""
    everyone: Roles = {**dict.fromkeys(_test_logins(base)), **roles}
    tests = {k: base[k] for k in ("sshTests", "tests") if k in base}
    rules = {k: v for k, v in merged.items() if k not in ("sshTests", "tests")}
    before = {str(r): r for r in run_self_tests({**base, **tests}, everyone)}
    problems, warnings = [], []
    for result in run_self_tests({**rules, **tests}, everyone):
        if result.holds:
            continue
        where = f"{base_source} {result.section}[{result.index}]"
        if result.got is None:
            why = result.error or "the model cannot decide it"
            warnings.append(
                f"{where}: cannot check {result.src} -> {result.target} (expected "
                f"{result.expected}) before the control plane does: {why}"
            )
            continue
        problems.append(ConfigProblem(BASE_KEY, _broken_test_message(where, result, before)))
    return problems, warnings


def _broken_test_message(
    where: str, result: SelfTestResult, before: Mapping[str, SelfTestResult]
) -> str:
    held = not any(
        b.section == result.section
        and b.index == result.index
        and b.target == result.target
        and not b.holds
        for b in before.values()
    )
    cause = (
        "coral-infra's rules merged into it break it"
        if held
        else "it fails on the base policy already"
    )
    return (
        f"{where}: {result.src} -> {result.target} expects {result.expected} but the merged "
        f"policy gives {result.got}: {cause}, and Tailscale runs these tests on every policy "
        "update, so `up` would be refused; fix the test or the rule that decides it"
    )


def render_policy(
    owner: Environment,
    environments: Sequence[Environment],
    base: Mapping[str, Any] | None = None,
    base_source: str = DEFAULT_BASE,
) -> RenderedPolicy:
    """Merge the owner's and its environments' rules and self-tests into `base`.

    Every section of `base` is kept. Our `ssh` rules go first (first match wins in Tailscale
    SSH, and they only match our tags); an identical rule already in `base` (a base file copied
    from the live policy) is not duplicated. Self-tests use the owner's
    `coral:tailnet.policy.tests` users: `allowed` as the tailnet owner, `denied` as a plain
    member. Every problem is raised at once as a SettingsError.
    """
    problems = environment_problems(owner, environments)
    tests = owner.tailnet.policy.tests
    if tests is None and owner.tailnet.policy.owner:  # settings require it; for type narrowing
        problems.append(ConfigProblem(f"{NAMESPACE}:tailnet.policy.tests", "required on the owner"))
    if problems or tests is None:
        raise SettingsError(problems, f"the tailnet policy of stack {owner.stack!r}")
    base_document = dict(base) if base is not None else DEFAULT_POLICY
    document = copy.deepcopy(base_document)
    everyone = [owner, *environments]
    for env in everyone:
        _merge_tag_owners(document, env, base_source, problems)
    for env in everyone:
        problems += _reference_problems(document, env)
    problems += widening_problems(
        base_document, base_source, everyone, owner.tailnet.policy.acknowledged_base_ssh
    )

    our_ssh = [ssh_rule(env.tailnet) for env in everyone]
    their_ssh = [
        r for r in _list_section(document, "ssh", base_source, problems) if not contains(our_ssh, r)
    ]
    document["ssh"] = our_ssh + their_ssh
    acls = _list_section(document, "acls", base_source, problems)
    acls += [r for r in map(network_rule, (e.tailnet for e in everyone)) if not contains(acls, r)]
    document["acls"] = acls

    # What our rules alone decide (with the user's groups): the intended outcome of each test.
    intended = {k: v for k, v in document.items() if k not in ("acls", "grants", "ssh")}
    intended["acls"] = [network_rule(env.tailnet) for env in everyone]
    intended["ssh"] = our_ssh
    roles = {tests.allowed: OWNER_ROLE, tests.denied: MEMBER_ROLE}
    ssh_tests: list[dict[str, Any]] = []
    net_tests: list[dict[str, Any]] = []
    warnings: list[str] = []
    for env in everyone:
        test_users: tuple[tuple[str, Literal["allowed", "denied"]], ...] = (
            (tests.allowed, "allowed"),
            (tests.denied, "denied"),
        )
        for user, role in test_users:
            ssh_test, net_test, notes = _self_tests(env, user, role, intended, document, roles)
            ssh_tests += [ssh_test] if ssh_test else []
            net_tests += [net_test] if net_test else []
            warnings += notes
    theirs = {s: _list_section(document, s, base_source, problems) for s in ("sshTests", "tests")}
    if not problems:
        broken, undecided = base_test_problems(base_document, document, base_source, roles)
        problems += broken
        warnings += undecided
    if problems:
        raise SettingsError(problems, f"the tailnet policy of stack {owner.stack!r}")
    for section, ours in (("sshTests", ssh_tests), ("tests", net_tests)):
        entries = theirs[section] + [t for t in ours if not contains(theirs[section], t)]
        if entries:
            document[section] = entries
    failures = evaluate_tests(
        {"sshTests": ssh_tests, "tests": net_tests, **_rules(document)}, roles
    )
    if failures:  # the tests were built from the same evaluator: this is a bug, not user input
        raise AssertionError(f"rendered self-tests do not hold: {failures}")
    return RenderedPolicy(document, tuple(warnings))


def _rules(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("sshTests", "tests")}


def _self_tests(
    env: Environment,
    user: str,
    role: Literal["allowed", "denied"],
    intended: Mapping[str, Any],
    merged: Mapping[str, Any],
    roles: Mapping[str, str],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """One user's sshTests and tests entries for one environment, and what was left out."""
    tag = env.tailnet.machine_tag
    where = f"stack {env.stack!r} ({tag})"
    probes = list(
        dict.fromkeys(
            [u for u in env.tailnet.ssh.users if u != "autogroup:nonroot"]
            + ["root", NONROOT_PROBE_USER]
        )
    )
    wanted = {u: ssh_decision(intended, user, tag, u, roles) for u in probes}
    if role == "allowed" and all(d == "deny" for d in wanted.values()):
        return (
            None,
            None,
            [
                f"{where}: policy.tests.allowed {user!r} is not one of ssh.src "
                f"{env.tailnet.ssh.src} (as the tailnet owner); no tests written for them"
            ],
        )
    notes: list[str] = []
    if role == "denied" and wanted["root"] != "deny":
        notes.append(
            f"{where}: policy.tests.denied {user!r} may SSH as root under ssh.src "
            f"{env.tailnet.ssh.src} (as a plain member); pick a user who must not"
        )
    ssh_test: dict[str, list[str]] = {"accept": [], "check": [], "deny": []}
    for unix_user, decision in wanted.items():
        actual = ssh_decision(merged, user, tag, unix_user, roles)
        if decision is None or decision != actual:
            notes.append(
                f"{where}: not testing that {user} gets {decision} as {unix_user!r}: the "
                f"merged policy gives {actual or 'an outcome the evaluator cannot decide'}"
            )
        elif role == "allowed" or decision == "deny":
            ssh_test[decision].append(unix_user)
    net_test: dict[str, list[str]] = {"accept": [], "deny": []}
    undecided: dict[str, list[str]] = {}
    for port in MACHINE_PORTS:
        want = network_allowed(intended, user, tag, port, roles)
        actual_net = network_allowed(merged, user, tag, port, roles)
        verdict = "accept" if want else "deny"
        if want is None or want != actual_net:
            undecided.setdefault(verdict, []).append(str(port))
        elif role == "allowed" or verdict == "deny":
            net_test[verdict].append(f"{tag}:{port}")
    for verdict, ports in undecided.items():
        notes.append(
            f"{where}: not testing that {user} is {'allowed' if verdict == 'accept' else 'denied'}"
            f" {tag}:{','.join(ports)}: the base policy's acls/grants decide otherwise or cannot "
            "be evaluated (Tailscale's default allow-all rule lets every member reach every "
            "port; narrow it to have this tested)"
        )
    ssh_entry = {"src": user, "dst": [tag], **{k: v for k, v in ssh_test.items() if v}}
    net_entry = {"src": user, **{k: v for k, v in net_test.items() if v}}
    return (
        ssh_entry if len(ssh_entry) > 2 else None,
        net_entry if len(net_entry) > 1 else None,
        notes,
    )


def read_base_policy(
    base_file: str | None, project_dir: Path = PROJECT_ROOT
) -> tuple[dict[str, Any] | None, str]:
    """The owner's base policy (`baseFile`, relative to the project root) and its name."""
    if base_file is None:
        return None, DEFAULT_BASE
    path = Path(base_file) if Path(base_file).is_absolute() else project_dir / base_file
    if not path.is_file():
        raise SettingsError(
            [
                ConfigProblem(
                    BASE_KEY,
                    f"no file {path}; keep the tailnet's existing policy there (start from "
                    "policy/tailnet.hujson) or unset baseFile",
                )
            ],
            "the tailnet policy",
        )
    try:
        document = hujson.loads(path.read_text(), str(base_file))
    except ValueError as error:
        raise SettingsError([ConfigProblem(BASE_KEY, str(error))], "the tailnet policy") from None
    if not isinstance(document, dict):
        raise SettingsError(
            [ConfigProblem(BASE_KEY, f"{base_file}: a policy file is an object ({{...}})")],
            "the tailnet policy",
        )
    return document, str(base_file)


def render_owner_policy(owner: Environment, project_dir: Path = PROJECT_ROOT) -> RenderedPolicy:
    """The owner's document, its environments and base file read from the project; every
    problem (missing environments, clashes, the merge) raised at once as a SettingsError."""
    environments, problems = load_environments(owner.tailnet, project_dir)
    try:
        base, source = read_base_policy(owner.tailnet.policy.base_file, project_dir)
    except SettingsError as error:
        problems += error.problems
        base, source = None, DEFAULT_BASE
    if problems:
        problems += environment_problems(owner, environments)
        raise SettingsError(problems, f"the tailnet policy of stack {owner.stack!r}")
    return render_policy(owner, environments, base, source)


def policy_for_stack(stack: str, project_dir: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The full policy document the given owner stack would apply, from the stack files."""
    settings = load_stack(stack, project_dir)
    if not settings.tailnet.policy.owner:
        raise SettingsError(
            [
                ConfigProblem(
                    f"{NAMESPACE}:tailnet.policy.owner",
                    f"stack {stack!r} does not own the tailnet policy (owner is false); render "
                    "the owner stack instead, or set owner: true on the one stack per tailnet "
                    "that writes it",
                )
            ],
            f"stack {stack!r}",
        )
    return render_owner_policy(Environment.from_settings(stack, settings), project_dir).document
