"""The RunPod stand-in: one in-memory RunPod account (standins/runpod_account.py) served on
127.0.0.1 over both of RunPod's wire formats, on one host as at api.runpod.io, so one base URL
(RUNPOD_API_BASE_URL) serves both:

- GraphQL at `/graphql` (what the runpod SDK 1.12 speaks): standins/runpod_graphql.py;
- REST API v2 under `/v2`: standins/runpod_rest_v2.py, every request and response checked
  against RunPod's published OpenAPI document (standins/runpod_openapi.py).

Why a server and not mocks: the adapter's escaping, retries, timeouts and error mapping can
only be proven against real HTTP exchanges. This module is the server, its routing, the calls
log (each call with the API it came through) and the injected faults.

Faults (`inject(op, kind)`; `op` is a GraphQL top-level field such as
"podFindAndDeployOnDemand" or a v2 operationId such as "createPod"):

- rate_limit: 429 (GraphQL: plain text; v2: problem body, `Retry-After` = ceil(delay) s).
- server_error: 500 with RunPod's generic "Something went wrong" (v2: problem body).
- html_502: 502 with an HTML page, as a proxy in front of the API answers (not JSON; not the
  API's answer, so not checked against the OpenAPI document).
- slow: the request is applied, the answer comes after `delay` seconds.
- lost_response: the request is applied, the connection drops without an answer.
- applied_late: the connection drops at once without an answer; the request is applied only
  after `delay` seconds, so a client that looks the name up at once does not see it yet.
- no_capacity: the create answers RunPod's capacity error (GraphQL: an error in a 200
  answer; v2: 400 problem).
- no_free_gpu: the start/resume answers "not enough free GPUs" (as no_capacity).
- generic_for_gone: a request naming a pod that does not exist answers the generic
  "Something went wrong" (GraphQL: an error in a 200 answer; v2: 500 problem) instead of "not
  found"; only such a request consumes it.
- echo_request: an error whose text quotes the request back: the Authorization header (the
  API key) and the body (e.g. a `tskey-` auth key in the env) — for testing redaction
  (GraphQL: an error in a 200 answer; v2: 400 problem).

Run for a demo: `python -m standins.runpod_api --port 8765 --api-key KEY`, then point the SDK
or a v2 client at it with RUNPOD_API_BASE_URL=http://127.0.0.1:8765.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

from standins.pod_runtime import PodRuntime
from standins.runpod_account import RunPodAccount
from standins.runpod_openapi import Violation
from standins.runpod_records import DEFAULT_DATA_CENTERS, DEFAULT_GPU_TYPES, GpuTypeOffer

FaultKind = Literal[
    "rate_limit",
    "server_error",
    "html_502",
    "slow",
    "lost_response",
    "applied_late",
    "no_capacity",
    "no_free_gpu",
    "generic_for_gone",
    "echo_request",
]
Api = Literal["graphql", "v2"]

# What a proxy in front of the API answers when the API behind it is down.
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class Call:
    """One request as received: the operation (GraphQL top-level field or v2 operationId),
    the API it came through and its text (the GraphQL query; for v2 the method, the path with
    its query string and the body)."""

    op: str
    query: str
    api: Api = "graphql"
    at: float = field(default_factory=time.monotonic)
    """When it arrived (time.monotonic())."""


@dataclass
class Fault:
    op: str
    kind: FaultKind
    times: int
    delay: float
    api: Api | None = None


@dataclass
class _Traffic:
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)


@dataclass
class HttpRequest:
    method: str
    path: str
    query: str
    headers: Message
    body: bytes


@dataclass
class HttpReply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection without answering (lost response)."""
    stream: Iterator[bytes] | None = None
    """Chunks sent after `body` until exhausted or the client leaves (Server-Sent Events)."""


class RunPodStandin(RunPodAccount):
    """The server plus its in-memory account; use as a context manager."""

    def __init__(
        self,
        api_key: str = "standin-api-key",
        *,
        port: int = 0,
        boot_seconds: float = 0.0,
        gpu_types: tuple[GpuTypeOffer, ...] = DEFAULT_GPU_TYPES,
        data_centers: tuple[str, ...] = DEFAULT_DATA_CENTERS,
        runtime: PodRuntime | None = None,
    ) -> None:
        from standins import runpod_graphql, runpod_rest_v2

        super().__init__(
            api_key,
            boot_seconds=boot_seconds,
            gpu_types=gpu_types,
            data_centers=data_centers,
            runtime=runtime,
        )
        self._traffic = _Traffic()
        self._graphql = runpod_graphql.GraphQLApi(self)
        self._rest_v2 = runpod_rest_v2.RestV2Api(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RunPodStandin:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self.runtime is not None:
            self.runtime.close()

    def __enter__(self) -> RunPodStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls -----------------------------------------------------------------

    def inject(
        self,
        op: str,
        kind: FaultKind,
        *,
        times: int = 1,
        delay: float = 0.0,
        api: Api | None = None,
    ) -> None:
        """Make the next `times` requests of `op` (e.g. "podFindAndDeployOnDemand" or
        "createPod") fail as `kind` (see the module docstring); `api` narrows an op name both
        APIs share (createNetworkVolume, updateNetworkVolume, deleteNetworkVolume)."""
        with self._lock:
            self._traffic.faults.append(Fault(op, kind, times, delay, api))

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._traffic.calls)

    def count(self, op: str | None = None, *, api: Api | None = None) -> int:
        return sum(
            1
            for call in self.calls
            if (op is None or call.op == op) and (api is None or call.api == api)
        )

    def reset_calls(self) -> None:
        with self._lock:
            self._traffic.calls.clear()

    def openapi_violations(self) -> list[Violation]:
        """Every v2 request or response that broke RunPod's OpenAPI document (see
        standins/runpod_openapi.py `Violation`); empty when client and stand-in kept to it."""
        return self._rest_v2.document.violations()

    # --- calls and faults ---------------------------------------------------------------

    def record(self, call: Call) -> None:
        with self._lock:
            self._traffic.calls.append(call)

    def take_fault(
        self, ops: list[str], api: Api, *, kinds: tuple[FaultKind, ...] | None = None
    ) -> Fault | None:
        """Consumes one injected fault for these ops (of these kinds; by default any kind but
        generic_for_gone, which only a request naming a gone pod consumes)."""
        with self._lock:
            for fault in self._traffic.faults:
                wanted = fault.kind in kinds if kinds else fault.kind != "generic_for_gone"
                if (
                    fault.op in ops
                    and fault.times > 0
                    and wanted
                    and (fault.api is None or fault.api == api)
                ):
                    fault.times -= 1
                    return fault
        return None

    def apply_later(self, delay: float, action: Callable[[], object]) -> None:
        """Runs a request's effect after `delay` seconds (applied_late)."""
        timer = threading.Timer(delay, action)
        timer.daemon = True
        timer.start()

    # --- HTTP ---------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpReply:
        if request.path.rstrip("/") == "/graphql":
            return self._graphql.handle(request)
        if request.path.startswith("/v2/"):
            return self._rest_v2.handle(request)
        return HttpReply(404, b'{"error": "not found"}')

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the call log is the record."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                target = urlsplit(self.path)
                request = HttpRequest(
                    self.command, target.path, target.query, self.headers, self.rfile.read(length)
                )
                reply = standin.handle(request)
                if reply.drop:
                    self.close_connection = True  # the client never hears back
                    return
                self.send_response(reply.status)
                if reply.content_type is not None:
                    self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.stream is None:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                try:
                    self.wfile.write(reply.body)
                    for chunk in reply.stream or ():
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                if reply.stream is not None:
                    getattr(reply.stream, "close", lambda: None)()
                    # A body without a length ends with the connection (whatever the
                    # stream's own `Connection: keep-alive` header made send_header think).
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler


def echo(request: HttpRequest) -> str:
    """The request quoted back, as some servers do in their errors: the Authorization header
    (the API key) and the body (e.g. an auth key in the pod's env) included."""
    return (
        f"{request.method} {request.path} Authorization: {request.headers.get('Authorization')} "
        f"body: {request.body.decode(errors='replace')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=os.environ.get("RUNPOD_API_KEY", "standin-api-key"))
    parser.add_argument("--boot-seconds", type=float, default=2.0)
    args = parser.parse_args()
    standin = RunPodStandin(args.api_key, port=args.port, boot_seconds=args.boot_seconds)
    print(f"RunPod stand-in on {standin.url} (RUNPOD_API_BASE_URL={standin.url})", flush=True)
    try:
        standin._server.serve_forever()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
