"""One HTTP exchange with RunPod, whichever wire format rides on it (httpx2, pinned).

What every RunPod API shares is decided here once: Bearer auth with the key from `api`, the
host from RUNPOD_API_BASE_URL, one call's timeout, and what a status means before any body is
read — 401 is a rejected key, 429 waits for its Retry-After, 5xx and broken connections are
transient, and an answer that is not JSON (an HTML 502 page from a proxy) is described by its
HTTP status, never by a JSON decoding error. The wire formats read the rest of the answer.

Why not the runpod SDK's transport for GraphQL too: it hides the HTTP status of a non-JSON
answer behind a JSONDecodeError, fixes its timeout at 30 s and ignores Retry-After.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from coral_infra.runpod import api, session

USER_AGENT = "coral-infra/0.1 (Pulumi dynamic provider)"
# httpx2 logs every request at INFO; a provider's stderr reaches the engine's output, and the
# runpod SDK configures the root logger on import: keep requests out of `pulumi up`'s output.
logging.getLogger("httpx2").setLevel(logging.WARNING)
_CLIENTS: dict[str, httpx2.Client] = {}
_CLIENTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Answer:
    """RunPod's answer: the status and the body, parsed when it is JSON."""

    status: int
    reason: str
    content_type: str
    body: Any
    """The parsed JSON body, or None when the body is empty or not JSON."""
    is_json: bool

    def describe(self) -> str:
        """The status, and an RFC 9457 problem's title, detail and per-field errors."""
        text = f"HTTP {self.status} {self.reason}".rstrip()
        problem = self.body if isinstance(self.body, dict) else {}
        title, detail = problem.get("title"), problem.get("detail")
        if detail or title:
            text += f": {detail or title}"
        errors = problem.get("errors")  # a problem's per-field errors, or GraphQL's errors
        if isinstance(errors, list) and errors:
            items = (e.get("message", e) if isinstance(e, dict) else e for e in errors)
            text += " (" + "; ".join(str(item) for item in items) + ")"
        if not self.is_json and self.content_type:
            text += f" (the answer was {self.content_type}, not JSON)"
        return text


def _client() -> httpx2.Client:
    base = api.base_url()
    with _CLIENTS_LOCK:
        if base not in _CLIENTS:
            _CLIENTS[base] = httpx2.Client(base_url=base, follow_redirects=False)
        return _CLIENTS[base]


def _headers(accept: str = "application/json") -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api.require_key()}",
        "User-Agent": USER_AGENT,
        "Accept": accept,
    }


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a 429 asks to wait: delta-seconds or an HTTP date (RFC 9110)."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _failed(op: str, exc: httpx2.HTTPError, changes_state: bool) -> api.TransientError:
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        return api.TransientError(f"{op}: could not connect to RunPod", maybe_applied=False)
    if isinstance(exc, httpx2.TimeoutException):
        return api.TransientError(
            f"{op}: no answer within {session.timing.call_timeout:g} s", maybe_applied=changes_state
        )
    return api.TransientError(
        f"{op}: the connection broke before RunPod answered ({type(exc).__name__})",
        maybe_applied=changes_state,
    )


def _answer(response: httpx2.Response) -> Answer:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    text = response.text
    try:
        body, is_json = (json.loads(text), True) if text.strip() else (None, True)
    except ValueError:
        body, is_json = None, False
    return Answer(response.status_code, response.reason_phrase, content_type, body, is_json)


def _checked(op: str, answer: Answer, headers: Mapping[str, str], changes_state: bool) -> Answer:
    if answer.status == 401:
        raise api.RunPodAuthError(
            f"RunPod rejected the API key during {op} ({answer.describe()}): check the secret "
            f"stack config {api.API_KEY_CONFIG} or {api.API_KEY_ENV}"
        )
    if answer.status == 429:
        raise api.TransientError(
            f"{op}: rate limited ({answer.describe()})",
            maybe_applied=False,
            retry_after=retry_after(headers),
        )
    if answer.status >= 500 or (200 <= answer.status < 300 and not answer.is_json):
        raise api.TransientError(f"{op}: {answer.describe()}", maybe_applied=changes_state)
    return answer


def send(
    op: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    changes_state: bool | None = None,
) -> Answer:
    """One request. Transport failures, 401, 429, 5xx and non-JSON successes raise; any other
    status is returned for the wire format to read. `changes_state` (default: not a GET) says
    whether a lost answer may hide a change RunPod made."""
    changes_state = method != "GET" if changes_state is None else changes_state
    try:
        response = _client().request(
            method,
            path,
            json=body,
            params=params,
            headers=_headers(),
            timeout=session.timing.call_timeout,
        )
    except httpx2.HTTPError as exc:
        raise _failed(op, exc, changes_state) from None
    return _checked(op, _answer(response), response.headers, changes_state)


@contextmanager
def events(
    op: str, path: str, params: Mapping[str, str], idle: float
) -> Iterator[Iterator[httpx2.ServerSentEvent]]:
    """A Server-Sent Events stream; it ends when the server closes it or after `idle` seconds
    without an event (a log stream stays open for new lines). The answer itself may take
    `timing.call_timeout`, like any call."""
    try:
        with _client().sse(
            path,
            params=params,
            headers=_headers("text/event-stream"),
            timeout=session.timing.call_timeout,
        ) as source:
            response = source.response
            if response.status_code != 200 or not response.headers.get(
                "content-type", ""
            ).startswith("text/event-stream"):
                response.read()
                answer = _checked(op, _answer(response), response.headers, False)
                raise from_status(op, answer)
            # From here on a read waits at most `idle`: the transport takes the read timeout
            # from the request when the body starts (httpcore2); were that to change, reads
            # would wait `call_timeout` instead: slower, still bounded.
            timeouts = dict(response.request.extensions.get("timeout") or {})
            response.request.extensions["timeout"] = {**timeouts, "read": idle}
            yield _until_idle(iter(source))
    except httpx2.HTTPError as exc:
        raise _failed(op, exc, False) from None


def _until_idle(source: Iterator[httpx2.ServerSentEvent]) -> Iterator[httpx2.ServerSentEvent]:
    try:
        yield from source
    except httpx2.ReadTimeout:
        return


def from_status(op: str, answer: Answer) -> api.RunPodError:
    """The error for a 4xx answer that no wire format reads more closely."""
    text = f"RunPod rejected {op}: {answer.describe()}"
    if answer.status == 404:
        return api.RunPodNotFoundError(text)
    if answer.status == 422:
        return api.InvalidValueError(text)
    return api.RunPodRequestError(text)
