"""Serving a Pulumi plugin stand-in the way the engine starts any plugin process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc


def serve_plugin(
    add_to_server: Callable[[Any, grpc.Server], None], servicer: Any, max_workers: int
) -> None:
    """Serves `servicer` on a free loopback port until the engine ends the process.

    The engine learns a plugin's port from the first line the plugin prints, so the port goes
    to stdout (flushed) before anything else.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # The engine ends plugins with a signal when it is done with them: a normal exit.
    with contextlib.suppress(KeyboardInterrupt):
        server.wait_for_termination()
