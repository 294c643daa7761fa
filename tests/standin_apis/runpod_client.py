"""A bare HTTP client for both of the RunPod stand-in's APIs (v2 JSON and GraphQL queries), and
the request bodies and event reading the stand-in's tests share."""

from __future__ import annotations

import json
from typing import Any

import requests

RUNPOD_API_KEY = "rpa_STANDIN_TEST_KEY_0123456789"


class RunPodClient:
    """Speaks to the stand-in as any HTTP client would: v2 JSON and GraphQL queries."""

    def __init__(self, url: str, api_key: str | None = RUNPOD_API_KEY) -> None:
        self.url = url
        self.api_key = api_key

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {} if api_key is None else {"Authorization": f"Bearer {api_key}"}

    def v2(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        api_key: str | None = "",
        data: bytes | None = None,
        timeout: float = 10.0,
        stream: bool = False,
    ) -> requests.Response:
        key = self.api_key if api_key == "" else api_key
        headers = self.headers(key)
        if data is not None:
            headers["Content-Type"] = "application/json"
        return requests.request(
            method,
            f"{self.url}{path}",
            json=body,
            data=data,
            params=params,
            headers=headers,
            timeout=timeout,
            stream=stream,
        )

    def graphql(self, query: str, *, api_key: str | None = "") -> dict[str, Any]:
        key = self.api_key if api_key == "" else api_key
        response = requests.post(
            f"{self.url}/graphql", json={"query": query}, headers=self.headers(key), timeout=10
        )
        return dict(response.json())

    def deploy_graphql(self, name: str, **extra: str) -> dict[str, Any]:
        """podFindAndDeployOnDemand as the runpod SDK writes it (inline input)."""
        fields = {
            "name": name,
            "imageName": "ghcr.io/coral/machine:1.0",
            "gpuTypeId": "NVIDIA GeForce RTX 4090",
            "dataCenterId": "EU-RO-1",
            "ports": "2222/tcp,11111/tcp",
            "volumeMountPath": "/workspace",
            **extra,
        }
        inline = ", ".join(f"{key}: {json.dumps(value)}" for key, value in fields.items())
        result = self.graphql(
            f"mutation {{ podFindAndDeployOnDemand(input: {{ {inline}, cloudType: SECURE, "
            f"gpuCount: 1, "
            f'volumeInGb: 20, containerDiskInGb: 10, env: [{{key: "A", value: "b"}}] }}) '
            f"{{ id desiredStatus }} }}"
        )
        assert "errors" not in result, result
        return dict(result["data"]["podFindAndDeployOnDemand"])


def pod_body(name: str = "coral-machine-test", **extra: Any) -> dict[str, Any]:
    """A createPod body as a v2 client sends it."""
    return {
        "name": name,
        "image": "ghcr.io/coral/machine:1.0",
        "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1},
        "cloud": "SECURE",
        "dataCenterIds": ["EU-RO-1"],
        "mounts": {"persistent": {"size": 20, "path": "/workspace"}},
        "env": {"CORAL_HOSTNAME": "coral-machine"},
        "ports": ["2222/tcp"],
        "disk": 20,
        **extra,
    }


def read_events(response: requests.Response, count: int) -> list[dict[str, Any]]:
    """The first `count` Server-Sent Events of a streamed response: id and JSON data each."""
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    for raw in response.iter_lines(chunk_size=1, decode_unicode=True):
        if raw.startswith("id: "):
            event["id"] = raw.removeprefix("id: ")
        elif raw.startswith("data: "):
            event["data"] = json.loads(raw.removeprefix("data: "))
        elif raw == "" and event:
            events.append(event)
            event = {}
            if len(events) == count:
                break
    response.close()
    return events
