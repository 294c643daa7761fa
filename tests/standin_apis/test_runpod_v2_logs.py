"""v2 pod logs as Server-Sent Events, on pods that are records only (RunPod's system lines);
pods that really run serve their console too (tests/standin_apis/test_pod_runtime.py)."""

from __future__ import annotations

import time

from standins.runpod_api import RunPodStandin
from tests.standin_apis.runpod_client import RunPodClient, pod_body, read_events


def test_system_lines_stream_with_backfill_and_then_live(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    pod_id = client.v2("POST", "/v2/pods", pod_body()).json()["id"]
    client.v2("POST", f"/v2/pods/{pod_id}/action", {"action": "stop"})
    stream = client.v2(
        "GET", f"/v2/pods/{pod_id}/logs", params={"tail": "1"}, timeout=5, stream=True
    )
    assert stream.status_code == 200
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert (stream.headers["Cache-Control"], stream.headers["X-Accel-Buffering"]) == (
        "no-cache",
        "no",
    )
    time.sleep(0.3)
    client.v2("POST", f"/v2/pods/{pod_id}/action", {"action": "start"})
    backfill, live = read_events(stream, 2)
    assert backfill["data"]["line"] == "stop pod" and live["data"]["line"] == "start pod"
    assert backfill["data"]["source"] == "system" and backfill["id"] == backfill["data"]["ts"]
    assert live["id"] > backfill["id"]

    everything = client.v2("GET", f"/v2/pods/{pod_id}/logs", timeout=5, stream=True)
    lines = [e["data"]["line"] for e in read_events(everything, 3)]
    assert lines == ["create pod: NVIDIA GeForce RTX 4090 x1 in EU-RO-1", "stop pod", "start pod"]
    resumed = client.v2(
        "GET",
        f"/v2/pods/{pod_id}/logs",
        params={"since": backfill["id"]},
        timeout=5,
        stream=True,
    )
    assert [e["data"]["line"] for e in read_events(resumed, 1)] == ["start pod"]
    assert runpod.openapi_violations() == []


def test_tail_zero_and_source_filter_and_gone_pods(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    runpod.log_follow_seconds = 0.3
    pod_id = client.v2("POST", "/v2/pods", pod_body()).json()["id"]
    nothing = client.v2("GET", f"/v2/pods/{pod_id}/logs", params={"tail": "0"}, timeout=5)
    assert nothing.content == b""  # closed after log_follow_seconds without a line
    container_only = client.v2(
        "GET", f"/v2/pods/{pod_id}/logs", params={"source": "container"}, timeout=5
    )
    assert container_only.content == b""  # a pod without a runtime has no console
    too_many = client.v2("GET", f"/v2/pods/{pod_id}/logs", params={"tail": "5001"})
    assert too_many.status_code == 422
    client.v2("DELETE", f"/v2/pods/{pod_id}")
    assert client.v2("GET", f"/v2/pods/{pod_id}/logs").status_code == 404
