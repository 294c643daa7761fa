"""Every setting the program reads from stack config, validated before anything is created.

Stack config lives in ``stacks/Pulumi.<stack>.yaml`` under the ``coral:`` namespace. The same
models serve the Pulumi program (config from the engine, values as JSON strings) and the offline
tools (the YAML file itself), so a config that renders offline is the config ``pulumi up`` sees.

Errors are collected for the whole config and raised together as one :class:`SettingsError`,
each naming the key path as a user would type it (``coral:machines[0].hostname``), what was
given and what is allowed: a user fixes every mistake in one round instead of one per run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

NAMESPACE = "coral"
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

_TAG = re.compile(r"^tag:[A-Za-z][A-Za-z0-9-]*$")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s\"'\\]+@[^@\s\"'\\]*$")
_GROUP = re.compile(r"^group:[A-Za-z0-9][A-Za-z0-9._-]*$")
_PORT = re.compile(r"^(\d{1,5})/(tcp|http)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_LOGIN_SERVER = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_KEY_DESCRIPTION = re.compile(r"^[A-Za-z0-9 -]{1,50}$")
_UNSAFE_VALUE_CHARS = ('"', "'", "\\", "\n", "\r", "\t", "`")
_SSH_SOURCES = ("autogroup:owner", "autogroup:admin", "autogroup:member", "autogroup:tagged")
MAX_CHECK_PERIOD_HOURS = 168
MAX_KEY_EXPIRY_DAYS = 90
# Env names the program sets itself on every pod; a user value would silently lose.
RESERVED_ENV = frozenset(
    {
        "TAILSCALE_AUTHKEY",
        "TS_AUTHKEY",
        "TS_AUTH_KEY",
        "TS_HOSTNAME",
        "CORAL_IDLE_STOP",
        "CORAL_RUNPOD_API_URL",
    }
)
IDLE_STOP_MINIMUM = "15m"
"""The shortest idleStop: a pod takes minutes to start again, and a shorter one stops between
two working sessions."""
SANDBOX_IDLE_STOP_MINIMUM_S = 10
"""The minimum when the RunPod API is on loopback (RUNPOD_API_BASE_URL), which only a local
stand-in is: lets the sandbox's tests watch an idle stop fire; never RunPod's own API."""
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _Model(BaseModel):
    """Stack keys are camelCase like Pulumi's own; unknown keys are typos and rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, validate_default=True
    )


# --- single-value rules: each names what is allowed ---------------------------------------


def _tag(value: str) -> str:
    if not _TAG.match(value):
        raise ValueError(
            f"got {value!r}; a tag is 'tag:' followed by a letter, then letters, digits or "
            "hyphens (e.g. 'tag:coral-machine')"
        )
    return value


def _hostname(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"got {value!r}; a hostname is one DNS label: 1-63 lowercase letters, digits or "
            "hyphens, not starting or ending with a hyphen (e.g. 'coral-machine')"
        )
    return value


def _ssh_source(value: str) -> str:
    if value in _SSH_SOURCES or _GROUP.match(value) or _TAG.match(value) or _EMAIL.match(value):
        return value
    raise ValueError(
        f"got {value!r}; an SSH source is one of {', '.join(_SSH_SOURCES)}, a 'group:name', "
        "a 'tag:name' or a user's login like 'alice@example.com' ('*', hosts and IPs are not "
        "allowed by Tailscale)"
    )


def _ssh_user(value: str) -> str:
    if value in ("root", "autogroup:nonroot") or _UNIX_USER.match(value):
        return value
    raise ValueError(
        f"got {value!r}; an SSH user is 'root', 'autogroup:nonroot' or a Unix user name "
        "(lowercase letters, digits, '_' or '-', starting with a letter or '_')"
    )


def _user_login(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"got {value!r}; expected a tailnet user's login like 'bob@example.com'")
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or "//" in value or any(c in value for c in _UNSAFE_VALUE_CHARS):
        raise ValueError(f"got {value!r}; the mount path must be absolute, e.g. '/workspace'")
    return value


def _port(value: str) -> str:
    match = _PORT.match(value)
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise ValueError(
            f"got {value!r}; a port is 'NUMBER/tcp' or 'NUMBER/http' with NUMBER in 1-65535"
        )
    return value


def _plain_text(value: str) -> str:
    """Values travel inside RunPod's GraphQL query text, where these characters break it."""
    if not value.strip() or any(c in value for c in _UNSAFE_VALUE_CHARS):
        raise ValueError(
            f"got {value!r}; must be non-empty and contain no quotes, backslashes, backticks, "
            "tabs or newlines (they break RunPod API requests)"
        )
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"got {value!r}; env names are identifiers: letters, digits and '_', not starting "
            "with a digit"
        )
    if value in RESERVED_ENV:
        raise ValueError(
            f"{value} is set by coral-infra itself (the auth key comes from the tailnet "
            "component); remove it from env"
        )
    return value


def parse_duration_hours(value: str) -> float:
    """Parse a Go-style duration ('12h', '1h30m', '90m') as Tailscale's checkPeriod takes it."""
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(
            f"got {value!r}; a check period is a duration like '12h', '30m', '1h30m' or 'always'"
        )
    scale = {"h": 1.0, "m": 1 / 60, "s": 1 / 3600}
    return sum(float(n) * scale[u] for n, u in parts)


Tag = Annotated[str, AfterValidator(_tag)]
Hostname = Annotated[str, AfterValidator(_hostname)]
SshSource = Annotated[str, AfterValidator(_ssh_source)]
SshUser = Annotated[str, AfterValidator(_ssh_user)]
UserLogin = Annotated[str, AfterValidator(_user_login)]
MountPath = Annotated[str, AfterValidator(_absolute_path)]
Port = Annotated[str, AfterValidator(_port)]
PlainText = Annotated[str, AfterValidator(_plain_text)]
EnvName = Annotated[str, AfterValidator(_env_name)]
PositiveGb = Annotated[int, Field(gt=0, le=10_000, strict=True)]


# --- the tailnet side ---------------------------------------------------------------------


class SshSettings(_Model):
    """Who may open Tailscale SSH sessions on the machine, and how."""

    action: Literal["accept", "check"] = "accept"
    """`accept` lets the sources straight in; `check` asks them to re-authenticate in a browser
    every `checkPeriod` (the safer choice for prod)."""
    check_period: str | None = None
    """How long a `check` stays valid: a duration up to 168h, or 'always'. Only with `check`;
    defaults to Tailscale's 12h."""
    src: list[SshSource] = Field(default_factory=lambda: ["autogroup:owner"], min_length=1)
    """Who may connect: autogroups, groups, tags or user logins (never '*')."""
    users: list[SshUser] = Field(
        default_factory=lambda: ["root", "autogroup:nonroot"], min_length=1
    )
    """Which Unix users they may log in as."""

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

    @property
    def effective_check_period(self) -> str | None:
        """Tailscale applies 12h when a check rule names none; we state it explicitly."""
        if self.action != "check":
            return None
        return self.check_period or "12h"


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


class PolicySettings(_Model):
    """Who writes the tailnet-wide policy: exactly one stack per tailnet owns it."""

    owner: bool = False
    """True on the one stack that writes the tailnet policy; others only verify their rules
    are present in the live policy and fail with the fix if not."""
    base_file: str | None = None
    """The tailnet's existing policy (HuJSON), kept in this repo; our rules are merged into it
    and every section of it is kept. Unset: Tailscale's default policy is the base."""
    environments: list[str] = Field(default_factory=list)
    """Other stacks on the same tailnet whose tags and SSH rules the owner renders too."""
    overwrite_existing: bool = False
    """Only when adopting a tailnet whose policy was edited before: let the first `up`
    replace it (after merging it into `baseFile`)."""
    tests: PolicyTestUsers | None = None
    """Users for the policy's self-tests; required on the owner stack."""

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
        if not self.owner and (self.environments or self.base_file or self.overwrite_existing):
            raise ValueError(
                "environments, baseFile and overwriteExisting only apply to the policy owner "
                "(set owner: true on exactly one stack per tailnet)"
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
    magic_dns: bool | None = None
    """MagicDNS is tailnet-wide: unset leaves it alone; true/false manages it (never turned off
    on destroy)."""
    login_server: str | None = None
    """The control plane machines log in to: unset for Tailscale's own; a URL such as
    'https://headscale.example.com' for a self-hosted one (the local sandbox uses this)."""
    device_wait: str = "5m"
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


# --- the RunPod side ----------------------------------------------------------------------


class VolumeSettings(_Model):
    """Where `/workspace` (and with it the tailnet identity) lives."""

    kind: Literal["network", "pod"] = "network"
    """'network': a network volume that outlives terminate and GPU changes (needs
    dataCenter); 'pod': the pod's own volume, lost on terminate (fine for dev)."""
    size_gb: PositiveGb = 50
    """Size in GB; a network volume can only grow."""
    mount_path: MountPath = "/workspace"
    """Absolute path in the container; the Tailscale state lives below it."""
    retain_on_destroy: bool = False
    """Keep the network volume (and the identity) when the stack is destroyed."""


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
    '{{ RUNPOD_SECRET_name }}' references for those)."""
    bootstrap: Literal["inject", "image"] = "inject"
    """'inject': the start command brings Tailscale into a stock image; 'image': the image was
    built from coral_infra/bootstrap/Dockerfile and starts it itself."""
    idle_stop: str | None = None
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


# --- loading and error reporting ----------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in stack config, located as the user would type the key."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class SettingsError(ValueError):
    """All problems of one stack config, raised before any resource is registered."""

    def __init__(self, problems: Iterable[ConfigProblem], source: str = "stack config") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through `list[...]` and `... | None`; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if getattr(annotation, "__origin__", None) is dict:
        return None
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _walk(loc: tuple[int | str, ...]) -> tuple[str, type[BaseModel] | None]:
    """Follow an error location through the models: the key path as the user spells it
    (`coral:machines[0].dataCenter`) and the model at its end (None inside plain values)."""
    path = NAMESPACE
    model: type[BaseModel] | None = Settings
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if part == "[key]":  # pydantic's marker for a bad dict key: the key is already named
            continue
        field = None
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        name = (field.alias or part) if field is not None else part
        path += f":{name}" if index == 0 else f".{name}"
        model = _inner_model(field.annotation) if field is not None else None
    return path, model


def _key_path(loc: tuple[int | str, ...]) -> str:
    """('machines', 0, 'data_center') -> 'coral:machines[0].dataCenter'."""
    return _walk(loc)[0]


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a model accepts at the location of an unknown key, for the error message."""
    model = _walk(loc[:-1])[1]
    if model is None:
        return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _problems_from(error: ValidationError) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = _key_path(loc)
        if item["type"] == "extra_forbidden":
            # The unknown key itself is spelled as the user typed it, never "corrected".
            key = f"{_key_path(loc[:-1])}.{loc[-1]}"
            allowed = ", ".join(_allowed_keys(loc)) or "none"
            message = f"unknown key {str(loc[-1])!r} (a typo?); allowed here: {allowed}"
        elif item["type"] == "value_error":
            message = str(item["ctx"]["error"])
        else:
            message = f"got {item.get('input')!r}; {item['msg'][0].lower()}{item['msg'][1:]}"
        problems.append(ConfigProblem(key, message))
    return problems


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
                    _key_path(("machines", index, "hostname")),
                    f"{name!r} is already the hostname of machines[{seen[name]}]; each machine "
                    f"needs its own (a second device with one name becomes '{name}-1')",
                )
            )
        else:
            seen[name] = index
    return problems


def parse_settings(
    config: Mapping[str, Any],
    *,
    secret_keys: Iterable[str] = (),
    source: str = "stack config",
) -> Settings:
    """Validate a whole stack config (namespaced keys -> values) into :class:`Settings`.

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
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        problems += [
            p
            for p in _problems_from(error)
            if p.key != f"{NAMESPACE}:machines" or "machines" in raw
        ]
    if problems or settings is None:
        raise SettingsError(problems, source)
    return settings


def idle_stop_minimum_seconds() -> int:
    """The shortest idleStop allowed: 15m, or 10s with a loopback RunPod API (a stand-in)."""
    host = urlsplit(os.environ.get("RUNPOD_API_BASE_URL") or "").hostname
    if host in _LOOPBACK_HOSTS:
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


def stack_file(stack: str) -> Path:
    """Where a stack's config lives (`stackConfigDir: stacks` in Pulumi.yaml)."""
    return STACKS_DIR / f"Pulumi.{stack}.yaml"


def read_stack_config(stack: str) -> tuple[dict[str, Any], set[str]]:
    """A stack file's config and which of its keys hold `secure:` ciphertext."""
    path = stack_file(stack)
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("*.yaml"))
        raise SettingsError(
            [ConfigProblem("stack", f"no file {path}; stacks here: {', '.join(known) or 'none'}")],
            source=f"stack {stack!r}",
        )
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    secure = {k for k, v in config.items() if isinstance(v, dict) and set(v) == {"secure"}}
    return config, secure


def load_stack(stack: str) -> Settings:
    """Settings of a stack straight from its file, for offline tools and the policy owner."""
    config, secure = read_stack_config(stack)
    return parse_settings(config, secret_keys=secure, source=str(stack_file(stack)))


def load_from_engine() -> Settings:
    """Settings of the stack the Pulumi engine is running, read once at program start.

    The whole config map is read (not key by key through `pulumi.Config`) so that a typo'd
    key is reported instead of silently ignored.
    """
    from pulumi.runtime import config as engine_config

    config = {**engine_config.get_config_env(), **engine_config.CONFIG.get()}
    secret = set(engine_config.get_config_secret_keys_env())
    secret |= {key for key in config if engine_config.is_config_secret(key)}
    return parse_settings(config, secret_keys=secret, source="the stack's config")
