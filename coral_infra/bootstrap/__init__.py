"""The container bootstrap (start.sh, idle_stop.sh beside it) and the two ways it reaches a pod.

start.sh brings the pod onto the tailnet and runs its main command; idle_stop.sh is the idle
stop's watcher, a concept of its own that start.sh sources from beside itself only when the
pod has the idle stop on (CORAL_IDLE_STOP), so it shares start.sh's log and settings helpers.

(a) A baked image: the Dockerfile beside this module copies both files in side by side,
    installs the pinned tailscale with start.sh and makes start.sh the ENTRYPOINT.
(b) A stock RunPod image: the pod's start command (`dockerArgs`) decodes start.sh from an env
    var (SCRIPT_ENV) and runs it; start.sh downloads the pinned tailscale once, verifies its
    SHA-256 and caches it on the volume. A pod with the idle stop also carries idle_stop.sh in
    an env var of its own (IDLE_STOP_SCRIPT_ENV), which start.sh writes beside itself at every
    start: the start command stays the same, and a pod without the idle stop carries neither
    the watcher nor one more of RunPod's 50 env variables. RunPod's GraphQL API pastes values
    into the query unescaped, so neither the command nor any env value may hold a double
    quote, a backslash or a newline: the files travel base64-encoded. The program names the
    files a pod carries by one digest (`script_digest`), and the pod provider puts the files
    themselves into the pod's env (`script_env_of`) when it creates or edits the pod: tens of
    kilobytes per pod stay out of the program's memory and the state, and a change to either
    file edits the pods that carry it.

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
IDLE_STOP_SCRIPT_PATH = Path(__file__).with_name("idle_stop.sh")
"""start.sh sources it by this name from its own directory (image and inject mode alike)."""
DOCKERFILE_PATH = Path(__file__).with_name("Dockerfile")

AUTH_KEY_ENV = "TAILSCALE_AUTHKEY"
SCRIPT_ENV = "CORAL_BOOTSTRAP_B64"
IDLE_STOP_SCRIPT_ENV = "CORAL_IDLE_STOP_B64"
SCRIPT_FILES = {SCRIPT_ENV: SCRIPT_PATH, IDLE_STOP_SCRIPT_ENV: IDLE_STOP_SCRIPT_PATH}
"""The files an injected pod can carry, each base64-encoded in an env var of its own."""
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
def _file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def injected_files(*, idle_stop: bool) -> dict[str, Path]:
    """What an injected pod carries, by env var: start.sh, and idle_stop.sh only with the idle
    stop on (a pod without it never runs the watcher, so a change to it leaves that pod be)."""
    names = (SCRIPT_ENV, IDLE_STOP_SCRIPT_ENV) if idle_stop else (SCRIPT_ENV,)
    return {name: SCRIPT_FILES[name] for name in names}


def _digest(files: Mapping[str, bytes]) -> str:
    """One SHA-256 for the files, as a shell prints it in this directory: `sha256sum start.sh
    idle_stop.sh | sha256sum` (`sha256sum start.sh | sha256sum` without the watcher). Each
    file's own SHA-256 and name, in SCRIPT_FILES' order, so a change to either file, or one
    file more or fewer, is another digest."""
    listing = "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  {path.name}\n"
        for name, path in SCRIPT_FILES.items()
        if name in files
    )
    return DIGEST_PREFIX + hashlib.sha256(listing.encode()).hexdigest()


def script_digest(*, idle_stop: bool) -> str:
    """The files an injected pod carries named by one digest ("sha256:<hex>"): what the pod's
    inputs carry for them (`bootstrap_script`)."""
    return _digest(
        {name: _file_bytes(path) for name, path in injected_files(idle_stop=idle_stop).items()}
    )


def injected_files_of(digest: str | None) -> dict[str, Path]:
    """The files `digest` (a `script_digest`, or None: nothing injected) names, by env var.
    Raises ValueError for a digest that names no files of this checkout."""
    if digest is None:
        return {}
    for idle_stop in (False, True):
        if script_digest(idle_stop=idle_stop) == digest:
            return injected_files(idle_stop=idle_stop)
    raise ValueError(
        f"bootstrap_script {digest} is not coral_infra/bootstrap/start.sh as this checkout has "
        f"it ({script_digest(idle_stop=False)}; with idle_stop.sh "
        f"{script_digest(idle_stop=True)})"
    )


def _encoded(files: Mapping[str, Path]) -> dict[str, str]:
    return {
        name: base64.b64encode(_file_bytes(path)).decode("ascii") for name, path in files.items()
    }


def script_env(*, idle_stop: bool) -> dict[str, str]:
    """The env vars that carry the injected files into a pod (base64, see the module docstring)."""
    return _encoded(injected_files(idle_stop=idle_stop))


def script_env_of(digest: str | None) -> dict[str, str]:
    """The env vars carrying the files `digest` names (`injected_files_of`): how the pod
    provider, given only the digest, fills the pod's env."""
    return _encoded(injected_files_of(digest))


def digest_of_script_env(env: Mapping[str, object]) -> str | None:
    """The digest of the files a pod's env carries (its SCRIPT_FILES variables), None when it
    carries none or a value is not base64: how a pod read back from RunPod is compared with
    the program's `script_digest`."""
    files: dict[str, bytes] = {}
    for name in SCRIPT_FILES:
        if name not in env:
            continue
        value = env[name]
        if not isinstance(value, str):
            return None
        try:
            files[name] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return _digest(files) if files else None


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
    """Renders the pod's start command: decode start.sh from SCRIPT_ENV and exec it (start.sh
    itself writes idle_stop.sh beside it from IDLE_STOP_SCRIPT_ENV, where the pod carries it).

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

    include_script=False is for the baked image, which already contains the files, and for the
    pod's inputs, which name them by their digest (the pod provider adds them).
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
        env.update(script_env(idle_stop=idle_stop_seconds is not None))
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
