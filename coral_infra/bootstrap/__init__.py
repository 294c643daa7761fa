"""The container bootstrap (start.sh) and the two ways it reaches a pod.

(a) A baked image: the Dockerfile beside this module copies start.sh in, installs the pinned
    tailscale with it and makes it the ENTRYPOINT.
(b) A stock RunPod image: the pod's start command (`dockerArgs`) decodes start.sh from an env
    var and runs it; start.sh downloads the pinned tailscale once, verifies its SHA-256 and caches
    it on the volume. RunPod's GraphQL API pastes values into the query unescaped, so neither the
    command nor any env value may hold a double quote, a backslash or a newline: the script
    travels base64-encoded. The program names the script by its digest (`script_digest`), and
    the pod provider puts the script itself into the pod's env (`script_env`) when it creates or
    edits the pod: tens of kilobytes per pod stay out of the program's memory and the state.

The auth key is never rendered here: the caller adds it as the secret env var AUTH_KEY_ENV.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from coral_infra.workspace import STATE_DIR

SCRIPT_PATH = Path(__file__).with_name("start.sh")
DOCKERFILE_PATH = Path(__file__).with_name("Dockerfile")

AUTH_KEY_ENV = "TAILSCALE_AUTHKEY"
SCRIPT_ENV = "CORAL_BOOTSTRAP_B64"
# start.sh reads its settings from TS_* (containerboot's names) and CORAL_* variables and the
# auth key from AUTH_KEY_ENV; pod_env sets several of them. A pod's own env must leave all of
# them to the program: a user value would silently change what the bootstrap does, or lose.
RESERVED_ENV_PREFIXES = ("TS_", "CORAL_")
IDLE_STOP_ENV = "CORAL_IDLE_STOP"
"""Seconds without activity after which the pod stops itself (coral:machines[].idleStop)."""
RUNPOD_API_URL_ENV = "CORAL_RUNPOD_API_URL"
"""Where the idle stop reaches RunPod's REST API; set only when the stack's RunPod API is not
RunPod's own (the sandbox's stand-in)."""
DEFAULT_STATE_DIR = STATE_DIR
DEFAULT_HOSTNAME = "coral-machine"
DEFAULT_SSHD_PORT = 2222
DEFAULT_SCRIPT_DEST = "/tmp/coral-start.sh"

# Characters that break RunPod's query text (see module docstring).
_API_UNSAFE = ('"', "\\", "\n", "\r")
# Words of the start command stay unquoted, so only characters no shell treats specially.
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_./:=@%+,-]+$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


DIGEST_PREFIX = "sha256:"


def script_text() -> str:
    return SCRIPT_PATH.read_text()


@functools.cache
def _script_bytes() -> bytes:
    return SCRIPT_PATH.read_bytes()


def _digest(script: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(script).hexdigest()


def script_digest() -> str:
    """start.sh named by its SHA-256 ("sha256:<hex>"): what the pod's inputs carry for it."""
    return _digest(_script_bytes())


def script_env() -> dict[str, str]:
    """The env var that carries start.sh into a pod (base64, see the module docstring)."""
    return {SCRIPT_ENV: base64.b64encode(_script_bytes()).decode("ascii")}


def digest_of_script_env(value: str) -> str | None:
    """The digest of the script a pod's SCRIPT_ENV value carries (None if it is not base64):
    how a pod read back from RunPod is compared with the program's `script_digest`."""
    try:
        return _digest(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


def _pinned(name: str) -> str:
    """Reads a pinned value out of start.sh, so the script stays the single source of truth."""
    match = re.search(rf'^readonly {name}="([^"]+)"$', script_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"start.sh does not define {name}")
    return match.group(1)


TAILSCALE_VERSION = _pinned("PINNED_TAILSCALE_VERSION")
TAILSCALE_SHA256_AMD64 = _pinned("PINNED_SHA256_AMD64")


def _check_api_safe(field: str, value: str) -> None:
    bad = [repr(c) for c in _API_UNSAFE if c in value]
    if bad:
        raise ValueError(
            f"{field} contains {', '.join(bad)}: RunPod's API cannot carry double quotes, "
            "backslashes or newlines in pod fields"
        )


def start_command(main_command: Sequence[str] = (), script_dest: str = DEFAULT_SCRIPT_DEST) -> str:
    """Renders the pod's start command: decode start.sh from SCRIPT_ENV and exec it.

    The bash -c body is in single quotes, so it means the same whether RunPod splits the command
    into words or hands it to a shell; the env var is expanded only inside the container.
    """
    for i, word in enumerate([script_dest, *main_command]):
        if not _SAFE_WORD.match(word):
            field = "script_dest" if i == 0 else f"main_command[{i - 1}]"
            raise ValueError(
                f"{field}={word!r} must be a non-empty word of letters, digits "
                "and _ . / : = @ % + , -"
            )
    run = " ".join(["exec", "bash", script_dest, *main_command])
    return f"bash -c 'printf %s ${SCRIPT_ENV} | base64 -d > {script_dest} && {run}'"


def pod_env(
    *,
    hostname: str = DEFAULT_HOSTNAME,
    state_dir: str = DEFAULT_STATE_DIR,
    sshd_port: int = DEFAULT_SSHD_PORT,
    userspace: bool | None = None,
    extra_up_args: Sequence[str] = (),
    include_script: bool = True,
    idle_stop_seconds: int | None = None,
    runpod_api_url: str | None = None,
) -> dict[str, str]:
    """The env vars a pod needs besides AUTH_KEY_ENV (which the caller adds as a secret).

    include_script=False is for the baked image, which already contains start.sh, and for the
    pod's inputs, which name the script by its digest (the pod provider adds it).
    idle_stop_seconds turns on the idle stop (None: off); runpod_api_url is where it stops the
    pod when that is not RunPod's own API.
    """
    if not _HOSTNAME.match(hostname):
        raise ValueError(
            f"hostname={hostname!r} must be a DNS label: lowercase letters, digits and '-', "
            "1-63 characters, not starting or ending with '-'"
        )
    if not state_dir.startswith("/") or not _SAFE_WORD.match(state_dir):
        raise ValueError(
            f"state_dir={state_dir!r} must be an absolute path of letters, digits and _ . / - "
            "(e.g. /workspace/deps/runtime/tailscale)"
        )
    if not 1 <= sshd_port <= 65535 or sshd_port == 22:
        raise ValueError(
            f"sshd_port={sshd_port} must be 1-65535 and not 22 "
            "(Tailscale SSH owns 22 on the tailnet)"
        )
    for i, arg in enumerate(extra_up_args):
        if not _SAFE_WORD.match(arg):
            raise ValueError(
                f"extra_up_args[{i}]={arg!r} must be one word of letters, digits and "
                "_ . / : = @ % + , - (it is split on whitespace)"
            )
    env = {
        "TS_HOSTNAME": hostname,
        "TS_STATE_DIR": state_dir,
        "CORAL_SSHD_PORT": str(sshd_port),
    }
    if userspace is not None:
        env["TS_USERSPACE"] = "true" if userspace else "false"
    if extra_up_args:
        env["TS_EXTRA_ARGS"] = " ".join(extra_up_args)
    if idle_stop_seconds is not None:
        if idle_stop_seconds < 1:
            raise ValueError(f"idle_stop_seconds={idle_stop_seconds} must be at least 1")
        env[IDLE_STOP_ENV] = str(idle_stop_seconds)
        if runpod_api_url is not None:
            env[RUNPOD_API_URL_ENV] = runpod_api_url
    if include_script:
        env.update(script_env())
    check_pod_fields(env)
    return env


def is_reserved_env(name: str) -> bool:
    """Whether the bootstrap or the program owns this env name (see RESERVED_ENV_PREFIXES)."""
    return name == AUTH_KEY_ENV or name.startswith(RESERVED_ENV_PREFIXES)


def check_pod_fields(env: Mapping[str, str]) -> None:
    """Refuses any env var whose name or value RunPod's API would mangle."""
    for name, value in env.items():
        _check_api_safe(f"env[{name!r}]", name)
        _check_api_safe(f"env[{name!r}]", value)
