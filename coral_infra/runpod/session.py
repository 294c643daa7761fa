"""How this process talks to RunPod, whichever wire format: which API and key, how long to
wait, how often to retry, and what an error may say.

- The API key is in a module-level holder, never on a provider instance (providers are
  dill-pickled into Pulumi state), and no error text holds it or a Tailscale auth key, even
  when RunPod quotes the request back: `RunPodError` redacts its own message.
- Transient failures (429 after its Retry-After, 5xx, connection errors, timeouts, answers
  that are not JSON) are retried with exponential backoff, bounded in attempts and time; a
  `recover` step lets a create find what a lost attempt made instead of sending it twice.
- Values are checked before anything is sent (ids, integers, text a wire format can carry).

`coral_infra/runpod/api.py` re-exports all of it: the providers import only `api`. Tests make
the waits tiny by replacing `timing` here.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, TypeVar, cast

from coral_infra.runpod.model import WireFormat

T = TypeVar("T")

API_KEY_CONFIG = "coral:runpodApiKey"
API_CONFIG = "coral:runpod"
"""Stack config `coral:runpod: {api: v2|graphql}`: the wire format (settings.RunPodSettings)."""
API_KEY_ENV = "RUNPOD_API_KEY"
BASE_URL_ENV = "RUNPOD_API_BASE_URL"
"""Overrides the host of both APIs (the SDK reads it too); the sandbox points it at the stand-in."""
DEFAULT_BASE_URL = "https://api.runpod.io"
AUTH_KEY_ENV = "TAILSCALE_AUTHKEY"
WIRE_FORMATS = {"v2": "coral_infra.runpod.rest_v2", "graphql": "coral_infra.runpod.graphql"}
DEFAULT_API = "v2"

# RunPod ids: short lowercase alphanumerics ("3tv4hh0d0g3hyb"), or prefixed as in the REST v2
# examples ("pod_abc123", "vol_xyz"). No other character: GraphQL pastes ids into query text.
ID_RE = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$")
_AUTH_KEY_RE = re.compile(r"tskey-[A-Za-z0-9_-]+")
# Shorter values are not keys (Tailscale's are ~60 characters): redacting them would mangle
# messages, and `tskey-…` is redacted whatever its length.
_MIN_SECRET_LENGTH = 8


# The engine calls provider methods from several threads at once; concurrent first imports of
# modules can deadlock in importlib (_DeadlockError), so they go one at a time.
_IMPORT_LOCK = threading.RLock()


def import_module(name: str) -> ModuleType:
    """A module imported on first use, one thread at a time (see `_IMPORT_LOCK`)."""
    with _IMPORT_LOCK:
        return importlib.import_module(name)


def wire() -> WireFormat:
    """The wire format of the API this process uses, imported on its first call."""
    return cast(WireFormat, import_module(WIRE_FORMATS[_credentials.api]))


@dataclass(frozen=True)
class Timing:
    """Every wait of the adapter, bounded; tests swap in tiny values via `timing`."""

    call_timeout: float = 30.0
    """Seconds one HTTP call may take."""
    attempts: int = 5
    """Tries per operation on transient failures, the first one included."""
    base_delay: float = 1.0
    """First backoff delay in seconds; doubles per retry up to `max_delay`."""
    max_delay: float = 16.0
    retry_budget: float = 120.0
    """Total seconds one operation may spend retrying (lookups for a lost create excluded)."""
    lookup_grace: float = 90.0
    """Seconds a create whose outcome is unknown is looked for by name before it is sent again:
    RunPod may apply a request after the client stopped waiting for it."""
    lookup_interval: float = 5.0
    poll_interval: float = 5.0
    """Seconds between status reads while waiting for a pod to run."""
    start_deadline: float = 900.0
    """Seconds a new or edited pod has to reach RUNNING (engine timeouts do not reach
    dynamic providers, so the deadline lives here)."""
    listing_ttl: float = 15.0
    """Seconds a provider process reuses its listing of the account's pods or volumes for a
    create's lookup by name (coral_infra/runpod/listing.py)."""
    log_idle: float = 2.0
    """Seconds without a new log line after which the pod's log stream counts as read."""
    online_deadline: float = 300.0
    """Seconds a started pod's bootstrap has, once the pod runs, to report its device online
    on the tailnet (coral_infra/runpod/lifecycle.py)."""


timing = Timing()


class _Credentials:
    """Module-level holder, so nothing secret is an attribute of a pickled provider."""

    api_key: str | None = None
    api: str = DEFAULT_API
    secrets: frozenset[str] = frozenset()
    """Auth keys this process sent to RunPod: redacted from every error, whatever their form."""


_credentials = _Credentials()


def remember_secret(value: str) -> None:
    """Redact `value` (an auth key sent to RunPod) from every error from now on."""
    if len(value) >= _MIN_SECRET_LENGTH:
        _credentials.secrets = _credentials.secrets | {value}


def redact(text: str) -> str:
    """`text` without the API key, any auth key sent to RunPod, or anything like `tskey-…`."""
    for secret in sorted({_credentials.api_key or "", *_credentials.secrets}, key=len)[::-1]:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _AUTH_KEY_RE.sub("tskey-[redacted]", text)


class RunPodError(Exception):
    """An API failure with a message safe to show: it never holds the API key or an auth key."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class RunPodAuthError(RunPodError):
    """The API key is missing or RunPod rejected it."""


class RunPodCapacityError(RunPodError):
    """RunPod has no free GPU matching the request (deploy or resume)."""


class RunPodNotFoundError(RunPodError):
    """The pod or network volume does not exist (any more)."""


class RunPodUnavailableError(RunPodError):
    """RunPod kept failing transiently until the retry budget ran out."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        """Whether an attempt may have been carried out although its answer was lost."""


class RunPodRequestError(RunPodError):
    """RunPod rejected the request (an error that retrying will not fix)."""


class InvalidValueError(RunPodError, ValueError):
    """A value that cannot be sent safely or makes no sense to RunPod."""


class TransientError(Exception):
    """A failure worth retrying, raised by the wire formats and never shown as it is."""

    def __init__(
        self, reason: str, *, maybe_applied: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.maybe_applied = maybe_applied
        """Whether the request may have been carried out although its answer was lost."""
        self.retry_after = retry_after
        """Seconds RunPod asked to wait (a 429's Retry-After)."""


# --- configuration --------------------------------------------------------------------------


class ConfigSource(Protocol):
    """Stack config by namespaced key: the providers' `req.config` or the engine's map."""

    def get(self, key: str) -> Any: ...


def configure(config_api_key: object, api: object = DEFAULT_API) -> None:
    """Use the key from stack config `coral:runpodApiKey`, else env `RUNPOD_API_KEY`, and the
    wire format `api` ("v2" or "graphql").

    A missing key is only an error at the first API call, because configure also runs for
    previews that call no API.
    """
    if api not in WIRE_FORMATS:
        raise InvalidValueError(
            f"{API_CONFIG}.api: got {api!r}; allowed: {', '.join(WIRE_FORMATS)}"
        )
    key = config_api_key or os.environ.get(API_KEY_ENV) or None
    _credentials.api_key = key if isinstance(key, str) else None
    _credentials.api = str(api)
    _credentials.secrets = frozenset()


def configure_from_stack(config: ConfigSource) -> None:
    """`configure` from a whole stack config (values as the engine passes them: JSON text)."""
    configure(config.get(API_KEY_CONFIG), api_choice(config.get(API_CONFIG)))


def api_choice(raw: object) -> str:
    """The wire format a `coral:runpod` value names (the program validated it already)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidValueError(f"{API_CONFIG}: got {raw!r}; expected {{api: v2}}") from None
    if raw is None:
        return DEFAULT_API
    if not isinstance(raw, Mapping):
        raise InvalidValueError(f"{API_CONFIG}: got {raw!r}; expected {{api: v2}}")
    return str(raw.get("api", DEFAULT_API))


def current_api() -> str:
    """The wire format in use: "v2" or "graphql"."""
    return _credentials.api


def has_key() -> bool:
    return bool(_credentials.api_key)


def require_key() -> str:
    if not _credentials.api_key:
        raise RunPodAuthError(
            "no RunPod API key: set it with `pulumi config set --secret coral:runpodApiKey "
            f"<key>` or the environment variable {API_KEY_ENV}"
        )
    return _credentials.api_key


def base_url() -> str:
    """The API host, read on every call like the SDK does."""
    return (os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def account() -> tuple[str, str, str]:
    """Which account and API the calls go to now: the wire format, the host and the key's
    SHA-256 (what a cache of the account's answers is kept for; never the key itself)."""
    key_hash = hashlib.sha256((_credentials.api_key or "").encode()).hexdigest()
    return (_credentials.api, base_url(), key_hash)


# --- values: nothing is sent unchecked -------------------------------------------------------


def check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string, got {type(value).__name__}")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise InvalidValueError(f"{what} contains an unpaired surrogate character")
    return value


def check_int(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not ID_RE.match(value):
        raise InvalidValueError(
            f"{what} must be a RunPod id (letters and digits, e.g. 'abc123' or 'pod_abc123'), "
            f"got {value!r}"
        )
    return value


# --- retries --------------------------------------------------------------------------------


def _backoff_delays() -> list[float]:
    delays, delay = [], timing.base_delay
    for _ in range(max(timing.attempts - 1, 0)):
        delays.append(delay)
        delay = min(delay * 2, timing.max_delay)
    return delays


def with_retries(
    op: str, attempt: Callable[[], T], recover: Callable[[], T | None] | None = None
) -> T:
    """Run `attempt`, retrying transient failures within `timing`'s bounds.

    `recover` runs before each retry after a failure that may have been applied: if it finds
    what the lost attempt did, that is the result and nothing is sent twice. The time it takes
    (a create's lookup grace) does not count against the retry budget.
    """
    deadline = time.monotonic() + timing.retry_budget
    delays = _backoff_delays()
    tries, maybe_applied = 0, False
    while True:
        tries += 1
        try:
            return attempt()
        except TransientError as exc:
            maybe_applied = maybe_applied or exc.maybe_applied
            wait = max(delays[0], exc.retry_after or 0.0) if delays else None
            if wait is None or time.monotonic() + wait > deadline:
                asked = f" (RunPod asked to wait {exc.retry_after:g} s)" if exc.retry_after else ""
                raise RunPodUnavailableError(
                    f"RunPod API unavailable for {op} after {tries} attempt(s): {exc}{asked}",
                    maybe_applied=maybe_applied,
                ) from None
            delays.pop(0)
            time.sleep(wait)
            if recover is not None and exc.maybe_applied:
                started = time.monotonic()
                found = recover()
                deadline += time.monotonic() - started
                if found is not None:
                    return found


def run(op: str, attempt: Callable[[], T]) -> T:
    return with_retries(op, attempt)
