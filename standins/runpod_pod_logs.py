"""Each pod's log as RunPod serves it through REST v2 (`GET /pods/{podId}/logs`): RunPod's own
lines about the pod (created, started, stopped, ...) and, for pods that really run
(standins/pod_runtime.py), the container's console output, each line stamped with a time
strictly increasing per pod, which is also the Server-Sent Events id a client resumes from.

Apart from the account (standins/runpod_account.py) because a log is a stream of its own: the
account only appends its lines as it acts on a pod, and reading one picks up the console's new
complete lines; neither touches pods, volumes or GPUs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from standins.pod_runtime import PodRuntime


@dataclass(frozen=True)
class LogLine:
    ts: str
    """RFC 3339 with microseconds, strictly increasing per pod: also the SSE event id."""
    source: Literal["container", "system"]
    line: str


@dataclass
class _PodLog:
    lines: list[LogLine] = field(default_factory=list)
    console_offset: int = 0


class PodLogs:
    """Every pod's log of one account; every method is safe to call from several threads."""

    def __init__(self, runtime: PodRuntime | None) -> None:
        self._runtime = runtime
        self._logs: dict[str, _PodLog] = {}
        self._lock = threading.Lock()

    def system(self, pod_id: str, line: str) -> None:
        """Appends one of RunPod's own lines: what it did to the pod."""
        with self._lock:
            self._append(pod_id, "system", line)

    def lines(self, pod_id: str) -> list[LogLine]:
        """The pod's log so far: RunPod's system lines and, for pods that really run, the
        container's console output (stamped when the stand-in first reads it)."""
        with self._lock:
            log = self._logs.setdefault(pod_id, _PodLog())
            if self._runtime is not None:
                path = self._runtime.log_path(pod_id)
                try:
                    with path.open("rb") as console:
                        console.seek(log.console_offset)
                        data = console.read()
                except FileNotFoundError:
                    data = b""
                complete = data[: data.rfind(b"\n") + 1]
                log.console_offset += len(complete)
                for raw in complete.splitlines():
                    self._append(pod_id, "container", raw.decode(errors="replace"))
            return list(log.lines)

    def _append(self, pod_id: str, source: Literal["container", "system"], line: str) -> None:
        log = self._logs.setdefault(pod_id, _PodLog())
        moment = datetime.now(UTC)
        if log.lines:
            previous = datetime.fromisoformat(log.lines[-1].ts)
            moment = max(moment, previous + timedelta(microseconds=1))
        log.lines.append(LogLine(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), source, line))
