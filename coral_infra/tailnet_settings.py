"""The tailnet side of a stack's settings (`coral:tailnet`): the machine tag, who may SSH in and
how, the auth key, and who owns the tailnet policy. Part of `coral_infra.settings`, which reads
and reports a whole stack; every field says what it does and what is allowed."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from coral_infra.config_problems import PLACEHOLDER_LOGINS_ERROR
from coral_infra.setting_values import (
    NONROOT,
    CheckPeriodText,
    Flag,
    SettingsModel,
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

MAX_CHECK_PERIOD_HOURS = 168
MAX_KEY_EXPIRY_DAYS = 90
_LOGIN_SERVER = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_KEY_DESCRIPTION = re.compile(r"^[A-Za-z0-9 -]{1,50}$")


class SshSettings(SettingsModel):
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


class AuthKeySettings(SettingsModel):
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


class PolicyTestUsers(SettingsModel):
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


class PolicySettings(SettingsModel):
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


class TailnetSettings(SettingsModel):
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
