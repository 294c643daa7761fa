"""Which stack writes a tailnet's policy, and what the stacks sharing that tailnet must agree on.

Tailscale has one policy file per tailnet and the `Acl` resource replaces all of it, so exactly
one stack (the *owner*, `coral:tailnet.policy.owner: true`) writes it, rendering its own rules
and those of every stack in its `environments`. These checks read the project's stack files
(`stacks/Pulumi.*.yaml`), so a second owner, an environment that does not exist, or two stacks
sharing a tag or a hostname are reported by `make render` and before `pulumi up` creates
anything.

Which stacks share a tailnet is read from the files: the control plane
(`coral:tailnet.loginServer`, unset = Tailscale's) and `tailscale:tailnet` (unset = `-`, the
credential's own tailnet). Stacks deployed with different credentials to different tailnets
say so with `tailscale:tailnet`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral_infra.policy.rules import Environment
from coral_infra.settings import (
    NAMESPACE,
    PROJECT_ROOT,
    ConfigProblem,
    ParsedConfig,
    SettingsError,
    TailnetSettings,
    read_settings,
    read_stack_config,
    shown_path,
    stack_file,
    stack_names,
)

TAILSCALE_CONTROL_PLANE = "Tailscale's control plane"
OWNER_KEY = f"{NAMESPACE}:tailnet.policy.owner"
ENVIRONMENTS_KEY = f"{NAMESPACE}:tailnet.policy.environments"


@dataclass(frozen=True)
class TailnetIdentity:
    """Which tailnet a stack deploys to, as far as its stack file says."""

    control_plane: str
    tailnet: str

    @classmethod
    def of(cls, config: Mapping[str, Any], tailnet: TailnetSettings | None) -> TailnetIdentity:
        server = tailnet.login_server if tailnet is not None else None
        name = config.get("tailscale:tailnet")
        return cls(server or TAILSCALE_CONTROL_PLANE, name if isinstance(name, str) else "-")

    def __str__(self) -> str:
        return f"tailnet {self.tailnet!r} on {self.control_plane}"


@dataclass(frozen=True)
class StackFile:
    """One stack file of the project, parsed as far as it is valid."""

    name: str
    config: Mapping[str, Any]
    parsed: ParsedConfig

    @property
    def identity(self) -> TailnetIdentity:
        return TailnetIdentity.of(self.config, self.parsed.tailnet)

    @property
    def is_owner(self) -> bool:
        if self.parsed.tailnet is not None:
            return self.parsed.tailnet.policy.owner
        tailnet = self.config.get(f"{NAMESPACE}:tailnet")
        policy = tailnet.get("policy") if isinstance(tailnet, dict) else None
        return isinstance(policy, dict) and policy.get("owner") is True

    @property
    def environments(self) -> list[str]:
        if self.parsed.tailnet is None:
            return []
        return list(self.parsed.tailnet.policy.environments)


def read_stack_file(name: str, project_dir: Path = PROJECT_ROOT) -> StackFile:
    """A stack's file; SettingsError when there is none."""
    config, secure = read_stack_config(name, project_dir)
    return StackFile(name, config, read_settings(config, secret_keys=secure))


def project_stacks(project_dir: Path = PROJECT_ROOT) -> list[StackFile]:
    """Every stack file of the project that can be read (one that cannot is reported when
    that stack itself is rendered or run)."""
    stacks = []
    for name in stack_names(project_dir):
        try:
            stacks.append(read_stack_file(name, project_dir))
        except SettingsError:
            continue
    return stacks


# --- the owner's view ----------------------------------------------------------------------


def load_environments(
    owner: TailnetSettings, project_dir: Path = PROJECT_ROOT
) -> tuple[list[Environment], list[ConfigProblem]]:
    """The stacks the owner renders rules for, from their files; each one that is missing or
    invalid is a problem under its `environments` entry."""
    environments: list[Environment] = []
    problems: list[ConfigProblem] = []
    for index, name in enumerate(owner.policy.environments):
        key = f"{ENVIRONMENTS_KEY}[{index}]"
        path = stack_file(name, project_dir)
        shown = shown_path(path, project_dir)
        if not path.is_file():
            known = ", ".join(stack_names(project_dir)) or "none"
            problems.append(
                ConfigProblem(
                    key, f"no stack {name!r}: there is no file {shown}; stacks here: {known}"
                )
            )
            continue
        stack = read_stack_file(name, project_dir)
        settings = stack.parsed.settings
        if settings is None:
            listed = "; ".join(str(p) for p in stack.parsed.problems)
            problems.append(
                ConfigProblem(
                    key,
                    f"stack {name!r} cannot be rendered: {len(stack.parsed.problems)} problem(s) "
                    f"in {shown}: {listed}",
                )
            )
            continue
        environments.append(Environment.from_settings(name, settings, listed_at=index))
    return environments, problems


def clashes(first: Environment, second: Environment) -> list[tuple[str, str]]:
    """What two stacks on one tailnet share that they must not: ("machineTag", tag) and
    ("hostname", name) pairs."""
    found = []
    if first.tailnet.machine_tag == second.tailnet.machine_tag:
        found.append(("machineTag", first.tailnet.machine_tag))
    found += [("hostname", h) for h in sorted(set(first.hostnames) & set(second.hostnames))]
    return found


def clash_message(first: Environment, second: Environment, kind: str, value: str) -> str:
    if kind == "machineTag":
        return (
            f"stacks {first.stack!r} and {second.stack!r} both use machine tag {value!r}; give "
            "each stack its own coral:tailnet.machineTag (their SSH rules and keys would mix)"
        )
    return (
        f"stacks {first.stack!r} and {second.stack!r} both have a machine named {value!r} on "
        f"one tailnet; the second would join as '{value}-1': give each machine its own "
        "coral:machines[].hostname"
    )


def own_key(env: Environment, kind: str, value: str) -> str:
    """A clash located on a stack's own setting, in its own report."""
    if kind == "hostname":
        return f"{NAMESPACE}:machines[{env.hostnames.index(value)}].hostname"
    return f"{NAMESPACE}:tailnet.machineTag"


def environment_problems(
    owner: Environment, environments: Sequence[Environment]
) -> list[ConfigProblem]:
    """What the owner and its environments must agree on: each listed once, none an owner
    itself, no machine tag or hostname shared by two stacks."""
    problems: list[ConfigProblem] = []
    if not owner.tailnet.policy.owner:
        problems.append(
            ConfigProblem(
                OWNER_KEY,
                f"stack {owner.stack!r} is not the policy owner (owner is false); only the owner "
                "renders the tailnet policy",
            )
        )
    seen: set[str] = set()
    distinct: list[Environment] = []
    for env in environments:
        if env.stack == owner.stack or env.stack in seen:
            problems.append(
                ConfigProblem(
                    env.key("policy.environments"),
                    f"names {env.stack!r} twice (or the owner itself); list each other stack once",
                )
            )
            continue
        seen.add(env.stack)
        if env.tailnet.policy.owner:
            problems.append(
                ConfigProblem(
                    env.key("policy.environments"),
                    f"stack {env.stack!r} is itself a policy owner; a tailnet has exactly one "
                    f"owner: set owner: false on {env.stack!r} or remove it from the list",
                )
            )
        distinct.append(env)
    everyone = [owner, *distinct]
    for index, first in enumerate(everyone):
        for second in everyone[index + 1 :]:
            for kind, value in clashes(first, second):
                # The owner comes first: a clash it is part of lands on its own setting.
                key = own_key(first, kind, value) if first is owner else second.key(kind)
                problems.append(ConfigProblem(key, clash_message(first, second, kind, value)))
    return problems


def other_owner_problems(
    stack: str, identity: TailnetIdentity, project_dir: Path = PROJECT_ROOT
) -> list[ConfigProblem]:
    """Another stack file claiming to own the same tailnet's policy: each `up` would overwrite
    the other's document."""
    others = [
        s.name
        for s in project_stacks(project_dir)
        if s.name != stack and s.is_owner and s.identity == identity
    ]
    if not others:
        return []
    return [
        ConfigProblem(
            OWNER_KEY,
            f"stack {stack!r} and {', '.join(map(repr, others))} all own the policy of "
            f"{identity}: a tailnet has one policy file and each owner's `up` would overwrite "
            "the other's; keep owner: true on one stack and list the others in its "
            "coral:tailnet.policy.environments (or, if they are different tailnets, set "
            "tailscale:tailnet in each stack file)",
        )
    ]


# --- a non-owner's view ----------------------------------------------------------------------


def find_owner(
    stack: str, identity: TailnetIdentity, project_dir: Path = PROJECT_ROOT
) -> StackFile | None:
    """The stack file that owns this stack's tailnet policy and lists it in `environments`."""
    for candidate in project_stacks(project_dir):
        if (
            candidate.is_owner
            and candidate.identity == identity
            and stack in candidate.environments
        ):
            return candidate
    return None


def owner_stack_settings(owner: StackFile) -> Environment:
    """The owner as an Environment; SettingsError when its own file has problems."""
    settings = owner.parsed.settings
    if settings is None:
        raise SettingsError(owner.parsed.problems, f"the owner stack {owner.name!r}")
    return Environment.from_settings(owner.name, settings)
