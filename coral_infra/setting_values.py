"""The values a stack setting may take: one rule per kind of value, each naming what is allowed.

Stack files are YAML, and YAML guesses types: `checkPeriod: 12` is a number, `DEBUG: true` in
`env` a boolean, `owner: "no"` a string. Each rule here takes what the file gave and, when it
is the wrong type, says how to write it (`"12h"`, quote it, true/false) instead of a bare type
error. The models in `settings.py` combine these rules; `settings.py` turns their errors into
key paths.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from coral_infra import bootstrap
from coral_infra.workspace import mount_path_problem

_TAG = re.compile(r"^tag:[A-Za-z][A-Za-z0-9-]*$")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s\"'\\]+@[^@\s\"'\\]*$")
_GROUP = re.compile(r"^group:[A-Za-z0-9][A-Za-z0-9._-]*$")
_PORT = re.compile(r"^(\d{1,5})/(tcp|http)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_UNSAFE_VALUE_CHARS = ('"', "'", "\\", "\n", "\r", "\t", "`")
SSH_AUTOGROUPS = ("autogroup:owner", "autogroup:admin", "autogroup:member", "autogroup:tagged")
NONROOT = "autogroup:nonroot"
# Domains reserved for examples and testing (RFC 2606, RFC 6761): no tailnet has such a user.
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
_EXAMPLE_TLDS = ("example", "test", "invalid", "localhost")


# --- what YAML made of the value ------------------------------------------------------------


def _yaml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _flag(value: Any) -> Any:
    """Booleans only: `"no"` or `"false"` in quotes is text, and reading it as false would
    quietly turn a setting off (or on) against what the file seems to say."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        raise ValueError(
            f"got {value!r}, which is text, not a boolean; write true or false without quotes"
        )
    raise ValueError(f"got {value!r} ({_yaml_type(value)}); write true or false")


def _text(value: Any) -> Any:
    """Env values, image names, ids: YAML turns unquoted true/false and numbers into other
    types (unquoted yes/no/on/off stay text, as the Pulumi CLI reads YAML 1.2)."""
    if isinstance(value, bool):
        text = str(value).lower()
        raise ValueError(
            f"got {text}, a boolean: YAML reads an unquoted true or false as one; quote it to "
            f'pass it as text: "{text}"'
        )
    if isinstance(value, int | float):
        raise ValueError(f'got {value!r}, a number; quote it to pass it as text: "{value}"')
    return value


def _duration_text(unit: str, example: str) -> Any:
    """A before-rule for durations: a bare number gets the unit the user probably meant."""

    def rule(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(
                f"got {str(value).lower()}, a boolean; write a duration like {example!r}"
            )
        if isinstance(value, int | float):
            seconds = value * (3600 if unit == "h" else 1)
            meant = f"{value:g} {'hours' if unit == 'h' else 'seconds'}"
            raise ValueError(
                f"got {value!r}, a number without a unit; write a duration in quotes: "
                f'"{format_duration(seconds)}" for {meant}'
            )
        return value

    return rule


def format_duration(seconds: float) -> str:
    """Go's duration notation, shortest form: 300 -> '5m', 43200 -> '12h', 90 -> '1m30s'."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def parse_duration_hours(value: str) -> float:
    """Parse a Go-style duration ('12h', '1h30m', '90m') as Tailscale's checkPeriod takes it."""
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(
            f"got {value!r}; a check period is a duration like '12h', '30m', '1h30m' or 'always'"
        )
    scale = {"h": 1.0, "m": 1 / 60, "s": 1 / 3600}
    return sum(float(n) * scale[u] for n, u in parts)


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


def is_group(value: str) -> bool:
    return bool(_GROUP.match(value))


def is_tag(value: str) -> bool:
    return bool(_TAG.match(value))


def _ssh_source(value: str) -> str:
    if value in SSH_AUTOGROUPS or is_group(value) or is_tag(value) or _EMAIL.match(value):
        return value
    raise ValueError(
        f"got {value!r}; an SSH source is one of {', '.join(SSH_AUTOGROUPS)}, a 'group:name', "
        "a 'tag:name' or a user's login like 'alice@example.com' ('*', hosts and IPs are not "
        "allowed by Tailscale)"
    )


def is_unix_user(value: str) -> bool:
    """A concrete login name (not `autogroup:nonroot`, which names no one in particular)."""
    return bool(_UNIX_USER.match(value))


def _ssh_user(value: str) -> str:
    if value in ("root", NONROOT) or is_unix_user(value):
        return value
    raise ValueError(
        f"got {value!r}; an SSH user is 'root', 'autogroup:nonroot' or a Unix user name "
        "(lowercase letters, digits, '_' or '-', starting with a letter or '_')"
    )


def _user_login(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"got {value!r}; expected a tailnet user's login like 'bob@corp.com'")
    return value


def is_reserved_example(login: str) -> bool:
    """A login under a domain reserved for examples (example.com, *.test, ...): placeholders."""
    domain = login.rpartition("@")[2].lower().rstrip(".")
    return (
        domain.endswith(tuple(f".{d}" for d in _EXAMPLE_DOMAINS))
        or domain in (_EXAMPLE_DOMAINS + _EXAMPLE_TLDS)
        or domain.rpartition(".")[2] in _EXAMPLE_TLDS
    )


def is_loopback_url(url: str | None) -> bool:
    """A control plane on this computer: only the local sandbox has one (a pod on RunPod can
    never reach the user's loopback)."""
    if url is None:
        return False
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mount_path(value: str) -> str:
    problem = mount_path_problem(value)
    if problem is not None:
        raise ValueError(problem)
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


# The setting that controls each env variable the program sets, to name instead of `env`: a
# setting of the same machine (relative) or of the stack (`coral:...`). Which names are
# reserved comes from the bootstrap (coral_infra.bootstrap.is_reserved_env); this map only says
# where to go instead. A reserved name missing here has no setting: the bootstrap owns it.
_AUTH_KEY_SETTING = "coral:tailnet.authKey"
RESERVED_ENV_SETTINGS = {
    bootstrap.AUTH_KEY_ENV: _AUTH_KEY_SETTING,
    "TS_AUTHKEY": _AUTH_KEY_SETTING,
    "TS_AUTH_KEY": _AUTH_KEY_SETTING,
    "TS_HOSTNAME": "hostname",
    "TS_USERSPACE": "userspaceNetworking",
    "TS_EXTRA_ARGS": "coral:tailnet.loginServer",
    bootstrap.SCRIPT_ENV: "bootstrap",
    bootstrap.IDLE_STOP_ENV: "idleStop",
    bootstrap.IDLE_STOP_SCRIPT_ENV: "idleStop",
    bootstrap.RUNPOD_API_URL_ENV: "coral:runpod",
}
RESERVED_ENV_ERROR = "reserved_env"


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"got {value!r}; env names are identifiers: letters, digits and '_', not starting "
            "with a digit"
        )
    if bootstrap.is_reserved_env(value):
        raise PydanticCustomError(
            RESERVED_ENV_ERROR, "{name} is set by coral-infra", {"name": value}
        )
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
Tag = Annotated[str, AfterValidator(_tag)]
Hostname = Annotated[str, AfterValidator(_hostname)]
SshSource = Annotated[str, AfterValidator(_ssh_source)]
SshUser = Annotated[str, AfterValidator(_ssh_user)]
UserLogin = Annotated[str, AfterValidator(_user_login)]
MountPath = Annotated[str, AfterValidator(_mount_path)]
Port = Annotated[str, AfterValidator(_port)]
PlainText = Annotated[str, BeforeValidator(_text), AfterValidator(_plain_text)]
EnvName = Annotated[str, AfterValidator(_env_name)]
PositiveGb = Annotated[int, Field(gt=0, le=10_000, strict=True)]
CheckPeriodText = Annotated[str, BeforeValidator(_duration_text("h", "12h"))]
WaitText = Annotated[str, BeforeValidator(_duration_text("s", "5m"))]
IdleText = Annotated[str, BeforeValidator(_duration_text("h", "2h"))]


class SettingsModel(BaseModel):
    """Stack keys are camelCase like Pulumi's own; unknown keys are typos and rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, validate_default=True
    )
