"""RunPod's published OpenAPI document for REST API v2, as the stand-in's referee.

`runpod-openapi-v2.json` beside this module is RunPod's own OpenAPI 3.1 document, unchanged
(runpod/docs `api-reference-v2/openapi.json`, commit a900806, 2026-08-20; tests compare it with
the team's copy in shared/runpod/ when that is present). Nothing here restates a schema: every
v2 request the stand-in receives and every response it sends goes through `openapi-core`
(jsonschema's 2020-12 validator underneath) against that document:

- a request that breaks it is answered with RunPod's problem body — 401 without a bearer
  token, 400 for a body that is not JSON, 422 naming each failing field (`errors`, in the
  document's own example form "$: additional properties 'bogus' not allowed") — and recorded;
- a response that breaks it is recorded (and logged on stderr) before it is sent.

`violations()` lists both; tests of a client assert it is empty. Requests are checked as
received at the document's server (https://api.runpod.io), whatever port the stand-in is on.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.exceptions import MediaTypeDeserializeError
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.validation.request.exceptions import (
    MissingRequestBodyError,
    ParameterValidationError,
    SecurityValidationError,
)
from openapi_core.validation.response.exceptions import MissingData
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from werkzeug.datastructures import Headers, ImmutableMultiDict

if TYPE_CHECKING:
    from standins.runpod_api import HttpReply, HttpRequest

DOCUMENT_PATH = Path(__file__).with_name("runpod-openapi-v2.json")
SERVER_URL = "https://api.runpod.io"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Violation:
    """One exchange that broke the document: who broke it, where, and the validator's words."""

    direction: Literal["request", "response"]
    op: str
    """The operationId, or "<unknown>" for a path or method the document does not have."""
    method: str
    path: str
    status: int | None
    """The response's status (None for a request)."""
    errors: tuple[str, ...]


@dataclass
class Problem:
    """An RFC 9457 problem body as the document's ErrorResponse defines it."""

    status: int
    detail: str
    errors: list[str] | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return body


@dataclass
class CheckedRequest:
    """A v2 request after validation: its operation and values (defaults applied)."""

    op: str
    path_params: dict[str, Any]
    query: dict[str, Any]
    body: Any
    problem: Problem | None
    """The answer to send instead of handling the request, when it broke the document."""


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text())
    return loaded


@cache
def _openapi() -> OpenAPI:
    """The document, itself checked by openapi-spec-validator when loaded (once a process)."""
    config = Config(
        extra_media_type_deserializers={
            PROBLEM_JSON: json.loads,
            "text/event-stream": lambda data: data.decode(),
        }
    )
    return OpenAPI.from_dict(document(), config=config)


class _Request:
    """An HttpRequest as openapi-core's Request protocol reads it."""

    def __init__(self, request: HttpRequest) -> None:
        self.host_url = SERVER_URL
        self.path = request.path
        self.method = request.method.lower()
        self.body = request.body or None
        self.content_type = request.headers.get("Content-Type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(_query_pairs(request.query)),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
            path={},
        )


class _Response:
    def __init__(self, reply: HttpReply) -> None:
        self.status_code = reply.status
        self.data = reply.body or None
        self.content_type = reply.content_type or ""
        self.headers = Headers(list(reply.headers.items()))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True)


class OpenApiDocument:
    """Checks exchanges against the document and keeps the violations found."""

    def __init__(self) -> None:
        self._violations: list[Violation] = []
        self._lock = threading.Lock()

    def violations(self) -> list[Violation]:
        with self._lock:
            return list(self._violations)

    def operation(self, method: str, path: str) -> str | None:
        """The operationId of a request, or None if the document has no such operation."""
        try:
            found = APICallPathFinder(_openapi().spec).find(method.lower(), SERVER_URL + path)
        except PathError:
            return None
        return (found.operation / "operationId").read_str()

    def allowed_methods(self, path: str) -> list[str]:
        """The methods the document has for this path (empty if it has no such path)."""
        for template, item in document()["paths"].items():
            if _matches(template, path):
                return sorted(method.upper() for method in item if method != "parameters")
        return []

    def check_request(self, request: HttpRequest, op: str) -> CheckedRequest:
        result = _openapi().unmarshal_request(_Request(request))
        checked = CheckedRequest(
            op,
            dict(result.parameters.path),
            dict(result.parameters.query),
            result.body,
            None,
        )
        if not result.errors:
            checked.problem = self._unknown_query_parameters(request, op)
        else:
            checked.problem = _problem_for(list(result.errors))
        if checked.problem is not None:
            problem = checked.problem
            self._record("request", op, request, None, problem.errors or [problem.detail])
        return checked

    def check_response(self, request: HttpRequest, op: str, reply: HttpReply) -> list[str]:
        """The ways this response breaks the document (recorded); empty when it keeps to it.

        A streamed reply (Server-Sent Events) is checked once the stream ended, with all it
        sent as its body; a stream that sent nothing is an empty string, which the document's
        `type: string` allows (openapi-core would call it missing)."""
        result = _openapi().unmarshal_response(_Request(request), _Response(reply))
        errors = [
            message
            for error in result.errors
            if not (reply.stream is not None and isinstance(error, MissingData))
            for message in _messages(error)
        ]
        if errors:
            self._record("response", op, request, reply.status, errors)
            print(
                f"runpod stand-in: response violates the OpenAPI document: {request.method} "
                f"{request.path} -> {reply.status}: {'; '.join(errors)}",
                file=sys.stderr,
                flush=True,
            )
        return errors

    def record_request(self, request: HttpRequest, op: str, detail: str) -> None:
        """A request the stand-in refused before validating it (no such path, no token)."""
        self._record("request", op, request, None, [detail])

    def _record(
        self,
        direction: Literal["request", "response"],
        op: str,
        request: HttpRequest,
        status: int | None,
        errors: list[str],
    ) -> None:
        with self._lock:
            self._violations.append(
                Violation(direction, op, request.method, request.path, status, tuple(errors))
            )

    def _unknown_query_parameters(self, request: HttpRequest, op: str) -> Problem | None:
        """Query parameters the operation does not declare are refused by name (a client
        relying on a filter RunPod does not have would silently get everything)."""
        declared = {
            _resolve(parameter)["name"]
            for parameter in _operation_parameters(op)
            if _resolve(parameter)["in"] == "query"
        }
        unknown = sorted({name for name, _ in _query_pairs(request.query)} - declared)
        if not unknown:
            return None
        return Problem(
            422,
            "Request validation failed.",
            [f"query: unknown parameter '{name}' not allowed" for name in unknown],
        )


def _matches(template: str, path: str) -> bool:
    parts, wanted = template.strip("/").split("/"), path.strip("/").split("/")
    return len(parts) == len(wanted) and all(
        p == w or (p.startswith("{") and p.endswith("}"))
        for p, w in zip(parts, wanted, strict=True)
    )


def _operation_parameters(op: str) -> list[dict[str, Any]]:
    for item in document()["paths"].values():
        for method, operation in item.items():
            if method != "parameters" and operation.get("operationId") == op:
                return [*item.get("parameters", []), *operation.get("parameters", [])]
    return []


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follows a local `$ref` ("#/components/...") within the document."""
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _declared_properties(schema: dict[str, Any]) -> set[str]:
    """Every property name a schema declares, through allOf/anyOf/oneOf/if/then and $ref."""
    schema = _resolve(schema)
    names = set(schema.get("properties", {}))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(keyword, []):
            names |= _declared_properties(sub)
    for keyword in ("if", "then", "else"):
        if isinstance(schema.get(keyword), dict):
            names |= _declared_properties(schema[keyword])
    return names


def _schema_messages(error: Any) -> list[str]:
    """jsonschema's errors as "<json path>: <what is wrong>".

    An `unevaluatedProperties` error also fires on a parent whose branch failed for another
    reason (2020-12 drops a failing branch's annotations), listing declared properties as
    unexpected; it is kept only for the properties the schema does not declare at all."""
    path = error.json_path
    if error.validator in ("unevaluatedProperties", "additionalProperties") and isinstance(
        error.instance, dict
    ):
        declared = (
            _declared_properties(error.schema)
            if error.validator == "unevaluatedProperties"
            else set(error.schema.get("properties", {}))
        )
        unknown = [name for name in error.instance if name not in declared]
        if not unknown:
            return []
        quoted = ", ".join(f"'{name}'" for name in unknown)
        return [f"{path}: additional properties {quoted} not allowed"]
    return [f"{path}: {error.message}"]


def _messages(error: BaseException) -> list[str]:
    cause = error.__cause__
    if isinstance(cause, InvalidSchemaValue):
        prefix = (
            f"{error.location} parameter {error.name}: "
            if isinstance(error, ParameterValidationError)
            else ""
        )
        return [
            prefix + message
            for schema_error in cause.schema_errors
            for message in _schema_messages(schema_error)
        ]
    return [str(error) + (f": {cause}" if cause is not None else "")]


def _problem_for(errors: list[OpenAPIError]) -> Problem:
    if any(isinstance(error, SecurityValidationError) for error in errors):
        return Problem(401, "missing bearer token")
    for error in errors:
        if isinstance(error.__cause__, MediaTypeDeserializeError):
            return Problem(400, "request body is not valid JSON")
        if isinstance(error, MissingRequestBodyError):
            return Problem(400, "request body is required")
    messages = [message for error in errors for message in _messages(error)]
    return Problem(422, "Request validation failed.", messages)
