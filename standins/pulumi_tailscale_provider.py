"""A stand-in for the pulumi-tailscale resource provider plugin (`pulumi-resource-tailscale`):
the gRPC servicer the engine talks to.

Why a stand-in: the real plugin is the Go module github.com/pulumi/pulumi-tailscale/provider
(bridging github.com/tailscale/terraform-provider-tailscale), and the module proxy reachable
here serves neither (403 for every version, commit and version list), so it cannot be built.
This plugin speaks the same gRPC provider protocol for the tokens the pinned Python package
pulumi-tailscale==0.29.2 registers and that this project uses, with the same property names,
defaults, replace rules and Tailscale API v2 calls as the Terraform provider.

This module is the protocol, the same for every resource: plugin info and configuration, the
engine's requests and answers (Structs, secrets in the config, previews, a resource gone on
read) and failures as gRPC statuses. What each resource and function does is in
standins/pulumi_tailscale_resources.py, the API calls in standins/tailscale_api_client.py.
tools/build-pulumi.sh runs this module (`main`) as the plugin.

Credentials come from the provider config (`tailscale:apiKey`, `tailscale:baseUrl`,
`tailscale:tailnet`) or TAILSCALE_API_KEY / TAILSCALE_BASE_URL / TAILSCALE_TAILNET, like the
real provider. The API key is sent as HTTP Basic `<key>:` and never written to outputs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from standins import pulumi_tailscale_resources as resources
from standins.plugin_server import serve_plugin
from standins.tailscale_api_client import DEFAULT_BASE_URL, ApiError, Client, Diagnostic

VERSION = "0.29.2"
# How the engine marks a secret value inside a Struct (sdk/go/common/resource/sig).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"


def _to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def _to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(dict(values))
    return result


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self) -> None:
        self._client: Client | None = None

    # ------------------------------------------------------------------ plugin and config

    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetSchema(self, request: Any, context: Any) -> Any:
        return provider_pb2.GetSchemaResponse(
            schema=json.dumps({"name": "tailscale", "version": VERSION})
        )

    def CheckConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> Any:
        variables = dict(request.variables)
        args = _to_dict(request.args) if request.HasField("args") else {}

        def setting(name: str, env: str, default: str = "") -> str:
            value = args.get(name) or variables.get(f"tailscale:config:{name}")
            if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE:
                value = value.get("value")
            return str(value or os.environ.get(env) or default)

        self._client = Client(
            base_url=setting("baseUrl", "TAILSCALE_BASE_URL", DEFAULT_BASE_URL),
            tailnet=setting("tailnet", "TAILSCALE_TAILNET", "-"),
            api_key=setting("apiKey", "TAILSCALE_API_KEY"),
        )
        return provider_pb2.ConfigureResponse(
            acceptSecrets=False, supportsPreview=True, acceptResources=False
        )

    def _api(self, context: Any) -> Client:
        if self._client is None or not self._client.api_key:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "tailscale: no credentials: set tailscale:apiKey (as a secret) or "
                "TAILSCALE_API_KEY",
            )
        assert self._client is not None
        return self._client

    def _guard(self, context: Any, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except ApiError as error:
            context.abort(grpc.StatusCode.UNKNOWN, f"tailscale API: {error}")
        except Diagnostic as error:
            context.abort(grpc.StatusCode.UNKNOWN, str(error))
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    # --------------------------------------------------------------------------- resources

    def Check(self, request: Any, context: Any) -> Any:
        def check() -> Any:
            token, kind = resources.kind_of(request.urn)
            inputs = {**kind.defaults, **_to_dict(request.news)}
            failures = [
                provider_pb2.CheckFailure(property=p, reason=r)
                for p, r in resources.check_inputs(token, inputs)
            ]
            return provider_pb2.CheckResponse(inputs=_to_struct(inputs), failures=failures)

        return self._guard(context, check)

    def Diff(self, request: Any, context: Any) -> Any:
        def diff() -> Any:
            token, kind = resources.kind_of(request.urn)
            news = _to_dict(request.news)
            olds = _to_dict(request.old_inputs) if request.HasField("old_inputs") else {}
            keys = set(olds) | set(news)
            if not olds:
                # Only the old state (inputs plus outputs such as `key`): compare the inputs.
                olds, keys = _to_dict(request.olds), set(news)
            changed = sorted(key for key in keys if olds.get(key) != news.get(key))
            replaces = [key for key in changed if key in kind.replace_on]
            if resources.invalid_key_replaced(token, _to_dict(request.olds), news):
                changed, replaces = [*changed, "id"], [*replaces, "id"]
            detailed = {
                key: provider_pb2.PropertyDiff(
                    kind=provider_pb2.PropertyDiff.UPDATE_REPLACE
                    if key in replaces
                    else provider_pb2.PropertyDiff.UPDATE,
                    inputDiff=True,
                )
                for key in changed
            }
            return provider_pb2.DiffResponse(
                changes=provider_pb2.DiffResponse.DIFF_SOME
                if changed
                else provider_pb2.DiffResponse.DIFF_NONE,
                diffs=changed,
                replaces=replaces,
                detailedDiff=detailed,
                hasDetailedDiff=True,
            )

        return self._guard(context, diff)

    def Create(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: resources.kind_of(request.urn))
        inputs = _to_dict(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(properties=_to_struct(inputs))
        client = self._api(context)
        resource_id, outputs = self._guard(context, lambda: resources.write(client, token, inputs))
        return provider_pb2.CreateResponse(id=resource_id, properties=_to_struct(outputs))

    def Update(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: resources.kind_of(request.urn))
        news = _to_dict(request.news)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=_to_struct(news))
        client = self._api(context)
        olds = _to_dict(request.olds)
        _id, outputs = self._guard(
            context, lambda: resources.write(client, token, news, update=True, olds=olds)
        )
        return provider_pb2.UpdateResponse(properties=_to_struct(outputs))

    def Read(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: resources.kind_of(request.urn))
        client = self._api(context)
        state = _to_dict(request.properties)
        inputs = _to_dict(request.inputs) if request.HasField("inputs") else {}

        def read() -> Any:
            try:
                found = resources.read(client, token, request.id, state, inputs)
            except ApiError as error:
                if error.status == 404:
                    return provider_pb2.ReadResponse()
                raise
            return provider_pb2.ReadResponse(
                id=request.id, properties=_to_struct(found), inputs=_to_struct(inputs or found)
            )

        return self._guard(context, read)

    def Delete(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: resources.kind_of(request.urn))
        client = self._api(context)
        state = _to_dict(request.properties)
        self._guard(context, lambda: resources.delete(client, token, request.id, state))
        return empty_pb2.Empty()

    # ----------------------------------------------------------------------------- invokes

    def Invoke(self, request: Any, context: Any) -> Any:
        args = _to_dict(request.args)
        client = self._api(context)
        if request.tok not in resources.FUNCTIONS:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"unknown function {request.tok}")
        function = resources.FUNCTIONS[request.tok]
        result = self._guard(context, lambda: function(client, args))
        return provider_pb2.InvokeResponse(**{"return": _to_struct(result)})


def main() -> None:
    serve_plugin(
        provider_pb2_grpc.add_ResourceProviderServicer_to_server, Provider(), max_workers=8
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
