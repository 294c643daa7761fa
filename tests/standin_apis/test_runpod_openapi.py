"""The stand-in checks v2 exchanges against RunPod's published OpenAPI document: bad requests
get RunPod's problems and are recorded, and so is any response that would break the document
(standins/runpod_openapi.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from standins.runpod_api import RunPodStandin
from standins.runpod_openapi import DOCUMENT_PATH, Violation
from tests.standin_apis.runpod_client import RunPodClient, pod_body

SHARED_COPY = Path(__file__).resolve().parents[2].parent / "shared" / "runpod" / "openapi-v2.json"


def test_the_vendored_document_is_runpods_unchanged() -> None:
    document = json.loads(DOCUMENT_PATH.read_text())
    assert document["openapi"].startswith("3.1") and document["info"]["version"] == "2.0.0"
    if not SHARED_COPY.exists():
        pytest.skip(f"no team copy at {SHARED_COPY} to compare with")
    assert DOCUMENT_PATH.read_bytes() == SHARED_COPY.read_bytes()


def test_an_unknown_field_is_a_422_naming_it(runpod: RunPodStandin, client: RunPodClient) -> None:
    response = client.v2("POST", "/v2/pods", pod_body(bogus=1, gpu={"id": "x", "zz": 2}))
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "Request validation failed.",
        "errors": [
            "$.gpu: additional properties 'zz' not allowed",
            "$: additional properties 'bogus' not allowed",
        ],
    }
    assert runpod.pods() == []
    assert runpod.openapi_violations() == [
        Violation(
            "request",
            "createPod",
            "POST",
            "/v2/pods",
            None,
            (
                "$.gpu: additional properties 'zz' not allowed",
                "$: additional properties 'bogus' not allowed",
            ),
        )
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"image": "i", "gpu": {"id": "x"}}, "$: 'name' is a required property"),
        (pod_body(disk="20"), "$.disk: '20' is not of type 'integer'"),
        (pod_body(cloud="ALL"), "$.cloud: 'ALL' is not one of ['SECURE', 'COMMUNITY']"),
        (
            pod_body(mounts={"persistent": {"size": 5, "path": "/w"}}),
            "$.mounts.persistent.size: 5 is less than the minimum of 10",
        ),
    ],
)
def test_a_body_against_the_document_is_a_422_naming_the_field(
    client: RunPodClient, body: dict[str, Any], error: str
) -> None:
    response = client.v2("POST", "/v2/pods", body)
    assert (response.status_code, response.json()["errors"]) == (422, [error])


def test_a_malformed_body_is_a_400(runpod: RunPodStandin, client: RunPodClient) -> None:
    response = client.v2("POST", "/v2/pods", data=b'{"name": ')
    assert response.status_code == 400
    assert response.json() == {
        "title": "Bad Request",
        "status": 400,
        "detail": "request body is not valid JSON",
    }
    assert [v.errors for v in runpod.openapi_violations()] == [("request body is not valid JSON",)]


def test_auth_failures_are_401_problems_without_rate_limit_headers(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    missing = client.v2("GET", "/v2/pods", api_key=None)
    wrong = client.v2("GET", "/v2/pods", api_key="rpa_WRONG")
    assert missing.json() == {
        "title": "Unauthorized",
        "status": 401,
        "detail": "missing bearer token",
    }
    assert wrong.json() == {"title": "Unauthorized", "status": 401, "detail": "invalid API key"}
    assert "RateLimit" not in wrong.headers
    ok = client.v2("GET", "/v2/pods")
    assert ok.headers["RateLimit-Policy"].startswith('"minute";q=600;w=60')
    assert ok.headers["RateLimit"].startswith('"minute";r=')
    # A missing token breaks the document's security requirement; a wrong key does not.
    assert [(v.op, v.errors) for v in runpod.openapi_violations()] == [
        ("listPods", ("missing bearer token",))
    ]


def test_paths_and_methods_outside_the_document(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    assert client.v2("GET", "/v2/nowhere").status_code == 404
    wrong_method = client.v2("PUT", "/v2/pods")
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "GET, POST"
    unserved = client.v2("GET", "/v2/templates")
    assert unserved.status_code == 501
    assert unserved.json()["detail"] == "listTemplates is not served by the RunPod stand-in"
    assert [v.op for v in runpod.openapi_violations()] == ["<unknown>", "<unknown>"]
    assert [c.op for c in runpod.calls] == ["<unknown>", "<unknown>", "listTemplates"]
    assert {c.api for c in runpod.calls} == {"v2"}


def test_a_response_that_breaks_the_document_is_recorded(
    runpod: RunPodStandin, client: RunPodClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod_id = client.v2("POST", "/v2/pods", pod_body()).json()["id"]
    real_view = runpod._rest_v2.pod_view

    def broken_view(pod: Any, status: Any = None) -> dict[str, Any]:
        view = real_view(pod, status)
        del view["actions"]
        return view | {"status": "SLEEPING", "cost": "free"}

    monkeypatch.setattr(runpod._rest_v2, "pod_view", broken_view)
    response = client.v2("GET", f"/v2/pods/{pod_id}")
    assert response.status_code == 200  # sent as it is, and recorded
    [violation] = runpod.openapi_violations()
    assert (violation.direction, violation.op, violation.status) == ("response", "getPod", 200)
    assert set(violation.errors) == {
        "$: 'actions' is a required property",
        "$.cost: 'free' is not of type 'number'",
        "$.status: 'SLEEPING' is not one of "
        "['PROVISIONING', 'STARTING', 'RUNNING', 'EXITED', 'ERROR', 'TERMINATED']",
    }
