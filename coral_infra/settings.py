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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from coral_infra.config_problems import (
    NAMESPACE,
    ConfigProblem,
    SettingsError,
    located_key,
    problems_from,
)
from coral_infra.machine_settings import (
    MachineSettings,
    RunPodSettings,
    VolumeSettings,
    idle_stop_minimum_seconds,
)
from coral_infra.setting_values import SettingsModel, parse_duration_hours
from coral_infra.stack_files import engine_config, read_config_file
from coral_infra.tailnet_settings import (
    AuthKeySettings,
    PolicySettings,
    PolicyTestUsers,
    SshSettings,
    TailnetSettings,
)

__all__ = [
    "NAMESPACE",
    "PROJECT_ROOT",
    "STACKS_DIR",
    "AuthKeySettings",
    "ConfigProblem",
    "MachineSettings",
    "ParsedConfig",
    "PolicySettings",
    "PolicyTestUsers",
    "RunPodSettings",
    "Settings",
    "SettingsError",
    "SshSettings",
    "TailnetSettings",
    "VolumeSettings",
    "idle_stop_minimum_seconds",
    "idle_stop_notes",
    "load_from_engine",
    "load_stack",
    "parse_duration_hours",
    "parse_settings",
    "read_settings",
    "read_stack_config",
    "shown_path",
    "stack_file",
    "stack_names",
]

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


class Settings(SettingsModel):
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
