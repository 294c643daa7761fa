"""Every setting the program reads from stack config, validated before anything is created.

Stack config lives in ``stacks/Pulumi.<stack>.yaml`` under the ``coral:`` namespace. The same
models serve the Pulumi program (config from the engine, values as JSON strings) and the offline
tools (the YAML file itself), so a config that renders offline is the config ``pulumi up`` sees.

Errors are collected for the whole config and raised together as one :class:`SettingsError`,
each naming the key path as a user would type it (``coral:machines[0].hostname``), what was
given and what is allowed: a user fixes every mistake in one round instead of one per run.
The checks that need more than one stack file or the providers' rules run after these, in
`coral_infra.preflight`, and land in the same report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from coral_infra.config_problems import (
    NAMESPACE,
    PLACEHOLDER_LOGINS_ERROR,
    ConfigProblem,
    SettingsError,
    located_key,
    problems_from,
)
from coral_infra.setting_values import (
    NONROOT,
    CheckPeriodText,
    EnvName,
    Flag,
    Hostname,
    IdleText,
    MountPath,
    PlainText,
    Port,
    PositiveGb,
    SshSource,
    SshUser,
    Tag,
    UserLogin,
    WaitText,
    is_loopback_url,
    is_reserved_example,
    is_unix_user,
    parse_duration_hours,
)
from coral_infra.stack_files import engine_config, read_config_file
from coral_infra.workspace import WORKSPACE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = PROJECT_ROOT / "stacks"

# Config keys that hold credentials: they must be set with `pulumi config set --secret`, so a
# stack file may only carry them as `secure:` ciphertext.
SECRET_KEYS = frozenset(
    {
        f"{NAMESPACE}:runpodApiKey",
        "tailscale:apiKey",
        "tailscale:oauthClientSecret",
    }
)
MAX_CHECK_PERIOD_HOURS = 168
MAX_KEY_EXPIRY_DAYS = 90
_LOGIN_SERVER = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_KEY_DESCRIPTION = re.compile(r"^[A-Za-z0-9 -]{1,50}$")
IDLE_STOP_MINIMUM = "15m"
"""The shortest idleStop: a pod takes minutes to start again, and a shorter one stops between
two working sessions."""
SANDBOX_IDLE_STOP_MINIMUM_S = 10
"""The minimum when the RunPod API is on loopback (RUNPOD_API_BASE_URL), which only a local
stand-in is: lets the sandbox's tests watch an idle stop fire; never RunPod's own API."""


class _Model(BaseModel):
    """Stack keys are camelCase like Pulumi's own; unknown keys are typos and rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, validate_default=True
    )


# --- the tailnet side ---------------------------------------------------------------------


class SshSettings(_Model):
    """Who may open Tailscale SSH sessions on the machine, and how."""

    action: Literal["accept", "check"] = "accept"
    """`accept` lets the sources straight in; `check` asks them to re-authenticate in a browser
    every `checkPeriod` (the safer choice for prod)."""
    check_period: CheckPeriodText | None = None
    """How long a `check` stays valid: a duration up to 168h, or 'always'. Only with `check`;
    defaults to Tailscale's 12h."""
    src: list[SshSource] = Field(default_factory=lambda: ["autogroup:owner"], min_length=1)
    """Who may connect: autogroups, groups, tags or user logins (never '*')."""
    users: list[SshUser] = Field(default_factory=list)
    """Which Unix users they may log in as. Default: `root` only with `check` (production, as
    the setup document says), `root` and `autogroup:nonroot` with `accept`. The SSH config
    block logs in as `root` when it is listed, else as the first user named here."""

    @model_validator(mode="before")
    @classmethod
    def _default_users_follow_action(cls, data: Any) -> Any:
        if isinstance(data, dict) and "users" not in data:
            check = data.get("action") == "check"
            return {**data, "users": ["root"] if check else ["root", NONROOT]}
        return data

    @field_validator("check_period")
    @classmethod
    def _check_period_fits_action(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("action") == "accept":
            raise ValueError(
                f"got {value!r} with action 'accept', which never re-authenticates; remove "
                "checkPeriod or set action: check"
            )
        if value != "always":
            hours = parse_duration_hours(value)
            if not 0 < hours <= MAX_CHECK_PERIOD_HOURS:
                raise ValueError(
                    f"got {value!r}; must be more than 0 and at most {MAX_CHECK_PERIOD_HOURS}h "
                    "(Tailscale's limit), or 'always'"
                )
        return value

    @field_validator("users")
    @classmethod
    def _someone_to_log_in_as(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("empty; list the Unix users the sources may log in as, e.g. [root]")
        if "root" not in value and not any(is_unix_user(u) for u in value):
            raise ValueError(
                f"got {value}: 'autogroup:nonroot' names no user the SSH config block and the "
                "`tailscale ssh` command can log in as; add that user by name (e.g. "
                "[autogroup:nonroot, ubuntu])"
            )
        return value

    @property
    def effective_check_period(self) -> str | None:
        """Tailscale applies 12h when a check rule names none; we state it explicitly."""
        if self.action != "check":
            return None
        return self.check_period or "12h"

    @property
    def login_user(self) -> str:
        """Who the SSH config block and the `tailscale ssh` command log in as: a user the
        policy lets in (root only when root is allowed)."""
        return "root" if "root" in self.users else next(u for u in self.users if is_unix_user(u))


class AuthKeySettings(_Model):
    """The reusable, pre-authorized, tagged auth key the pod logs in with the first time."""

    expiry_days: int = Field(default=90, ge=1, le=MAX_KEY_EXPIRY_DAYS, strict=True)
    """Days until the key expires (Tailscale allows at most 90). Only first logins need it."""
    description: str = "coral-machine auth key"
    """Shown in the admin console: at most 50 letters, digits, spaces or hyphens."""

    @field_validator("description")
    @classmethod
    def _description_allowed(cls, value: str) -> str:
        if not _KEY_DESCRIPTION.match(value):
            raise ValueError(
                f"got {value!r}; at most 50 characters, letters, digits, spaces or hyphens only"
            )
        return value


class PolicyTestUsers(_Model):
    """Real tailnet users the policy's own `sshTests`/`tests` are written for, so the control
    plane rejects any later edit that breaks the intended access or the intended denials."""

    allowed: UserLogin
    """A user who must get in (one of the SSH sources, e.g. the tailnet owner)."""
    denied: UserLogin
    """A plain member who must NOT get in as root."""

    @model_validator(mode="after")
    def _two_different_users(self) -> PolicyTestUsers:
        if self.allowed.lower() == self.denied.lower():
            raise ValueError(
                f"allowed and denied are both {self.allowed!r}: one user cannot be let in and "
                "kept out; name a user who may SSH in and a plain member who may not"
            )
        return self


class PolicySettings(_Model):
    """Who writes the tailnet-wide policy: exactly one stack per tailnet owns it."""

    owner: Flag = False
    """True on the one stack that writes the tailnet policy; others only verify their rules
    are present in the live policy and fail with the fix if not."""
    base_file: str | None = None
    """The tailnet's existing policy (HuJSON), kept in this repo; our rules are merged into it
    and every section of it is kept. Unset: Tailscale's default policy is the base."""
    environments: list[str] = Field(default_factory=list)
    """Other stacks on the same tailnet whose tags and SSH rules the owner renders too."""
    overwrite_existing: Flag = False
    """Only when adopting a tailnet whose policy was edited before: let the first `up`
    replace it (after merging it into `baseFile`)."""
    tests: PolicyTestUsers | None = None
    """Users for the policy's self-tests; required on the owner stack."""
    acknowledged_base_ssh: dict[Tag, list[SshSource]] = Field(default_factory=dict)
    """SSH sources the base policy's own rules may let onto a machine tag of these stacks
    beyond that stack's `coral:tailnet.ssh.src`, acknowledged on purpose, e.g.
    `{"tag:coral-dev": ["group:sre"]}`. Any other such rule is refused: it would widen access
    to the machines without the stack files saying so."""

    @field_validator("tests")
    @classmethod
    def _owner_needs_tests(
        cls, value: PolicyTestUsers | None, info: ValidationInfo
    ) -> PolicyTestUsers | None:
        if info.data.get("owner") and value is None:
            raise ValueError(
                "the policy owner needs tests: {allowed: <user who may SSH>, denied: <plain "
                "member>} so the control plane can check the intended access and denials"
            )
        return value

    @model_validator(mode="after")
    def _owner_only_keys(self) -> PolicySettings:
        owner_only = (
            self.environments
            or self.base_file
            or self.overwrite_existing
            or self.acknowledged_base_ssh
        )
        if not self.owner and owner_only:
            raise ValueError(
                "environments, baseFile, overwriteExisting and acknowledgedBaseSsh only apply to "
                "the policy owner (set owner: true on exactly one stack per tailnet)"
            )
        return self


class TailnetSettings(_Model):
    """The tailnet side of a stack: tag, SSH rules, auth key, policy ownership."""

    machine_tag: Tag = "tag:coral-machine"
    """The tag every machine of this stack carries; SSH rules and the auth key use it."""
    tag_owners: list[SshSource] = Field(default_factory=lambda: ["autogroup:admin"], min_length=1)
    """Who may apply the tag (tagOwners)."""
    ssh: SshSettings = Field(default_factory=SshSettings)
    auth_key: AuthKeySettings = Field(default_factory=AuthKeySettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    magic_dns: Flag | None = None
    """MagicDNS is tailnet-wide: unset leaves it alone; true/false manages it (never turned off
    on destroy)."""
    login_server: str | None = None
    """The control plane machines log in to: unset for Tailscale's own; a URL such as
    'https://headscale.example.com' for a self-hosted one. A loopback URL marks the local
    sandbox (`make demo`), the only stack allowed example logins in `policy.tests`."""
    device_wait: WaitText = "5m"
    """How long `up` waits for the pod's device to join the tailnet."""

    @field_validator("login_server")
    @classmethod
    def _login_server_is_url(cls, value: str | None) -> str | None:
        if value is not None and not _LOGIN_SERVER.match(value):
            raise ValueError(
                f"got {value!r}; a control plane URL like 'https://headscale.example.com' "
                "or 'http://127.0.0.1:8080' (http or https, host, optional port and path)"
            )
        return value

    @field_validator("device_wait")
    @classmethod
    def _wait_is_duration(cls, value: str) -> str:
        hours = parse_duration_hours(value)
        if not 0 < hours <= 1:
            raise ValueError(f"got {value!r}; a duration more than 0 and at most 1h, e.g. '5m'")
        return value

    @property
    def is_sandbox(self) -> bool:
        return is_loopback_url(self.login_server)

    @model_validator(mode="after")
    def _test_users_exist_somewhere(self) -> TailnetSettings:
        tests = self.policy.tests
        if tests is None or self.is_sandbox:
            return self
        placeholders = [u for u in (tests.allowed, tests.denied) if is_reserved_example(u)]
        if placeholders:
            raise PydanticCustomError(
                PLACEHOLDER_LOGINS_ERROR, "placeholder logins", {"logins": placeholders}
            )
        return self


# --- the RunPod side ----------------------------------------------------------------------


class VolumeSettings(_Model):
    """Where `/workspace` (and with it the tailnet identity) lives."""

    kind: Literal["network", "pod"] = "network"
    """'network': a network volume that outlives terminate and GPU changes (needs
    dataCenter); 'pod': the pod's own volume, lost on terminate (fine for dev)."""
    size_gb: PositiveGb = 50
    """Size in GB; a network volume can only grow."""
    mount_path: MountPath = WORKSPACE
    """Always `/workspace` (coral_infra/workspace.py says why); other paths are refused."""
    retain_on_destroy: Flag = False
    """Keep the network volume (and the identity) when the stack is destroyed."""

    @field_validator("retain_on_destroy")
    @classmethod
    def _only_network_volumes_outlive_the_pod(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("kind") == "pod":
            raise ValueError(
                "a pod volume (kind: pod) is deleted with its pod and cannot be retained; use "
                "kind: network (with dataCenter) to keep /workspace, or remove retainOnDestroy"
            )
        return value


class MachineSettings(_Model):
    """One GPU pod that joins the tailnet under `hostname`."""

    hostname: Hostname = "coral-machine"
    """The machine's name on the tailnet (MagicDNS name, SSH host)."""
    image: PlainText = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
    """Container image. With bootstrap 'inject' any image with bash and curl or wget."""
    gpu_type: PlainText = "NVIDIA GeForce RTX 4090"
    """RunPod GPU type id."""
    gpu_count: int = Field(default=1, ge=1, le=8, strict=True)
    """GPUs on the pod: 1-8 (every coral machine is a GPU pod)."""
    cloud_type: Literal["SECURE", "COMMUNITY", "ALL"] = "SECURE"
    volume: VolumeSettings = Field(default_factory=VolumeSettings)
    data_center: PlainText | None = None
    """RunPod data center id, e.g. 'EU-RO-1'; required with a network volume."""
    container_disk_gb: PositiveGb = 20
    """The container's own disk, lost on every restart."""
    ports: list[Port] = Field(default_factory=list)
    """Ports RunPod exposes publicly. Empty by default: the tailnet reaches every port."""
    env: dict[EnvName, PlainText] = Field(default_factory=dict)
    """Extra environment for the container (not secrets: use RunPod secrets
    '{{ RUNPOD_SECRET_name }}' references for those). Names the bootstrap or the program own
    (TAILSCALE_AUTHKEY, TS_*, CORAL_*) are refused: each has its own setting."""
    bootstrap: Literal["inject", "image"] = "inject"
    """'inject': the start command brings Tailscale into a stock image; 'image': the image was
    built from coral_infra/bootstrap/Dockerfile and starts it itself."""
    userspace_networking: Flag | None = None
    """tailscaled without a TUN device (Tailscale's userspace networking): unset lets the
    bootstrap decide (kernel networking when /dev/net/tun exists); true where pods share a
    network namespace, as in the local sandbox."""
    idle_stop: IdleText | None = None
    """Stop the pod after this long without activity, e.g. '2h' (at least 15m); unset (the
    default): never. Activity is an open Tailscale SSH or sshd session, or GPU utilisation above
    10% (a training job). The pod stops itself through RunPod's API with its own pod-scoped
    key; the volume and the tailnet identity stay, and `pulumi up` or `coral start` brings the
    machine back. Decisions are logged to idle.log beside tailscaled.log."""

    @field_validator("idle_stop")
    @classmethod
    def _idle_stop_is_a_sane_duration(cls, value: str | None) -> str | None:
        if value is None:
            return value
        minimum = idle_stop_minimum_seconds()
        shown = IDLE_STOP_MINIMUM if minimum > SANDBOX_IDLE_STOP_MINIMUM_S else f"{minimum}s"
        try:
            seconds = parse_duration_hours(value) * 3600
        except ValueError:
            raise ValueError(
                f"got {value!r}; an idle time is a duration like '2h', '90m' or '1h30m' "
                "(remove idleStop to never stop the pod)"
            ) from None
        if seconds < minimum:
            raise ValueError(
                f"got {value!r}; the shortest idle stop is {shown}: a pod takes minutes to "
                "start again, and a shorter idle time stops it between two sessions"
            )
        return value

    @property
    def idle_stop_seconds(self) -> int | None:
        """`idleStop` in whole seconds, or None when the pod never stops itself."""
        if self.idle_stop is None:
            return None
        return round(parse_duration_hours(self.idle_stop) * 3600)

    @field_validator("data_center")
    @classmethod
    def _network_volume_needs_data_center(
        cls, value: str | None, info: ValidationInfo
    ) -> str | None:
        volume = info.data.get("volume")
        if value is None and isinstance(volume, VolumeSettings) and volume.kind == "network":
            raise ValueError(
                "missing; a network volume is bound to one data center: set dataCenter (e.g. "
                "'EU-RO-1') or use volume.kind: pod"
            )
        return value


class RunPodSettings(_Model):
    """How the providers talk to RunPod (`coral:runpod`)."""

    api: Literal["v2", "graphql"] = "v2"
    """'v2' (default): RunPod's REST API v2. 'graphql': the API the runpod SDK speaks, which
    RunPod retires in early 2027; for a stack that must stay on it until then. Switching
    replaces and restarts nothing (coral_infra/runpod/api.py)."""


class Settings(_Model):
    """Everything one stack declares."""

    tailnet: TailnetSettings = Field(default_factory=TailnetSettings)
    machines: list[MachineSettings] = Field(min_length=1)
    """The fleet: one pod per entry, each with its own hostname."""
    runpod: RunPodSettings = Field(default_factory=RunPodSettings)


# --- error reporting ----------------------------------------------------------------------


def key_path(loc: tuple[int | str, ...]) -> str:
    """('machines', 0, 'data_center') -> 'coral:machines[0].dataCenter'."""
    return located_key(loc, Settings)


def _duplicate_hostnames(machines: Any) -> list[ConfigProblem]:
    """Checked on the raw input so it is reported together with every other mistake."""
    if not isinstance(machines, list):
        return []
    seen: dict[str, int] = {}
    problems = []
    for index, machine in enumerate(machines):
        name = machine.get("hostname", "coral-machine") if isinstance(machine, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(
                ConfigProblem(
                    key_path(("machines", index, "hostname")),
                    f"{name!r} is already the hostname of machines[{seen[name]}]; each machine "
                    f"needs its own (a second device with one name becomes '{name}-1')",
                )
            )
        else:
            seen[name] = index
    return problems


# --- reading a config ---------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedConfig:
    """A stack config as far as it is valid: the later checks (cross-stack, providers) still
    run on the parts that are, so one report holds every mistake."""

    settings: Settings | None
    tailnet: TailnetSettings | None
    machines: tuple[MachineSettings | None, ...]
    """One entry per `coral:machines[i]`, None where that machine has problems."""
    problems: tuple[ConfigProblem, ...]


# Tailnet settings the cross-stack policy checks do not read: when only these are wrong, those
# checks still run on the rest (the defaults in their place) and report in the same round.
_POLICY_NEUTRAL = (("authKey",), ("magicDns",), ("deviceWait",), ("ssh", "checkPeriod"))


def _without(raw: Any, path: tuple[int | str, ...]) -> Any:
    """`raw` (nested dicts) without the value at `path`."""
    if not path or not isinstance(raw, dict):
        return raw
    if len(path) == 1:
        return {k: v for k, v in raw.items() if k != path[0]}
    return {k: _without(v, path[1:]) if k == path[0] else v for k, v in raw.items()}


def _salvage(model: type[BaseModel], raw: Any, neutral: tuple[tuple[str, ...], ...] = ()) -> Any:
    """`raw` as a `model` if valid, or once its broken `neutral` settings are dropped; None
    when anything else is broken."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        dropped = raw
        for item in error.errors():
            prefix = next((n for n in neutral if tuple(item["loc"][: len(n)]) == n), None)
            if prefix is None:
                return None
            dropped = _without(dropped, prefix)
        try:
            return model.model_validate(dropped)
        except ValidationError:
            return None


def read_settings(config: Mapping[str, Any], *, secret_keys: Iterable[str] = ()) -> ParsedConfig:
    """Validate a whole stack config (namespaced keys -> values), keeping what is valid.

    Values may be objects (from a stack file) or JSON text (as the engine passes them).
    `secret_keys` are the keys the engine or the file marks secret; a credential key outside it
    was set in plaintext.
    """
    problems: list[ConfigProblem] = []
    raw: dict[str, Any] = {}
    known = set(Settings.model_fields) | {"runpodApiKey"}
    secret = set(secret_keys)
    for key, value in config.items():
        if key in SECRET_KEYS and key not in secret:
            problems.append(
                ConfigProblem(
                    key,
                    "is a credential stored in plaintext; remove it and run "
                    f"`pulumi config set --secret {key} <value>`",
                )
            )
        namespace, _, name = key.partition(":")
        if namespace != NAMESPACE:
            continue
        if name not in known:
            problems.append(
                ConfigProblem(
                    key,
                    f"unknown key {name!r} (a typo?); allowed: {', '.join(sorted(known))}",
                )
            )
            continue
        if name == "runpodApiKey":
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                problems.append(ConfigProblem(key, f"got {value!r}; expected an object or list"))
                continue
        raw[name] = value
    if "machines" not in raw and not any(p.key == f"{NAMESPACE}:machines" for p in problems):
        problems.append(
            ConfigProblem(
                f"{NAMESPACE}:machines", "missing; list at least one machine (hostname, image…)"
            )
        )
    problems += _duplicate_hostnames(raw.get("machines"))
    try:
        settings: Settings | None = Settings.model_validate(raw)
    except ValidationError as error:
        settings = None
        problems += [
            p
            for p in problems_from(error, Settings)
            if p.key != f"{NAMESPACE}:machines" or "machines" in raw
        ]
    if settings is not None and not problems:
        return ParsedConfig(settings, settings.tailnet, tuple(settings.machines), ())
    raw_machines = raw.get("machines")
    listed = raw_machines if isinstance(raw_machines, list) else []
    machines = tuple(_salvage(MachineSettings, m) for m in listed)
    tailnet = _salvage(TailnetSettings, raw.get("tailnet", {}), _POLICY_NEUTRAL)
    return ParsedConfig(None, tailnet, machines, tuple(problems))


def parse_settings(
    config: Mapping[str, Any],
    *,
    secret_keys: Iterable[str] = (),
    source: str = "stack config",
) -> Settings:
    """:func:`read_settings`, raising every problem at once as a :class:`SettingsError`."""
    parsed = read_settings(config, secret_keys=secret_keys)
    if parsed.problems or parsed.settings is None:
        raise SettingsError(parsed.problems, source)
    return parsed.settings


def idle_stop_minimum_seconds() -> int:
    """The shortest idleStop allowed: 15m, or 10s with a loopback RunPod API (a stand-in)."""
    if is_loopback_url(os.environ.get("RUNPOD_API_BASE_URL")):
        return SANDBOX_IDLE_STOP_MINIMUM_S
    return round(parse_duration_hours(IDLE_STOP_MINIMUM) * 3600)


def idle_stop_notes(settings: Settings) -> list[str]:
    """What a user with an idle stop should know about their machines (shown, not refused)."""
    return [
        f"{NAMESPACE}:machines[{index}].idleStop: {machine.hostname} keeps /workspace on its "
        "pod volume (volume.kind: pod). An idle stop keeps that data and the tailnet identity, "
        "but a stopped pod can only start again on its own host: if that host has no free GPU "
        "then, getting the machine back means a new pod with a fresh volume and a new tailnet "
        "device. Use volume.kind: network to keep the identity whatever the host."
        for index, machine in enumerate(settings.machines)
        if machine.idle_stop is not None and machine.volume.kind == "pod"
    ]


def stacks_dir(project_dir: Path = PROJECT_ROOT) -> Path:
    """The project's stack files (`stackConfigDir: stacks` in Pulumi.yaml)."""
    return STACKS_DIR if project_dir == PROJECT_ROOT else project_dir / "stacks"


def stack_file(stack: str, project_dir: Path = PROJECT_ROOT) -> Path:
    """Where a stack's config lives."""
    return stacks_dir(project_dir) / f"Pulumi.{stack}.yaml"


def shown_path(path: Path, project_dir: Path = PROJECT_ROOT) -> str:
    """A project file as messages name it: relative to the project, as the user edits it."""
    try:
        return str(path.relative_to(project_dir))
    except ValueError:
        return str(path)


def stack_names(project_dir: Path = PROJECT_ROOT) -> list[str]:
    """Every stack with a file in the project, sorted."""
    files = stacks_dir(project_dir).glob("Pulumi.*.yaml")
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in files)


def read_stack_config(
    stack: str, project_dir: Path = PROJECT_ROOT
) -> tuple[dict[str, Any], set[str]]:
    """A stack file's config and which of its keys hold `secure:` ciphertext."""
    path = stack_file(stack, project_dir)
    if not path.is_file():
        known = stack_names(project_dir)
        raise SettingsError(
            [ConfigProblem("stack", f"no file {path}; stacks here: {', '.join(known) or 'none'}")],
            source=f"stack {stack!r}",
        )
    try:
        return read_config_file(path)
    except ValueError as error:
        shown = shown_path(path, project_dir)
        raise SettingsError([ConfigProblem("stack file", str(error))], shown) from None


def load_stack(stack: str, project_dir: Path = PROJECT_ROOT) -> Settings:
    """Settings of a stack straight from its file, for offline tools and the policy owner."""
    config, secure = read_stack_config(stack, project_dir)
    source = shown_path(stack_file(stack, project_dir), project_dir)
    return parse_settings(config, secret_keys=secure, source=source)


def load_from_engine() -> Settings:
    """Settings of the stack the Pulumi engine is running, read once at program start."""
    config, secret = engine_config()
    return parse_settings(config, secret_keys=secret, source="the stack's config")
