"""The stack's claim on a pod's unique name, so that `destroy` terminates every pod carrying it.

Why a resource of its own: a create that fails leaves nothing in state (pulumi/pulumi#5210).
When its outcome was unknown and RunPod could not be asked afterwards either, a pod may exist
that the stack never recorded; the next `up` adopts it by name, but a `destroy` would not know
it. The name is registered before the pod, which depends on it, so `destroy` deletes the pod
first and this claim last, and the claim's delete terminates every live pod still carrying the
name. Nothing else about it calls RunPod.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic as dyn

from coral_infra.runpod import api
from coral_infra.runpod.props import has_control_chars, is_unknown


class PodNameProvider(dyn.ResourceProvider):
    """A name held in state; its delete sweeps RunPod for pods carrying it."""

    def configure(self, req: dyn.ConfigureRequest) -> None:
        api.configure_from_stack(req.config)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        name = news.get("name")
        failures = []
        if not is_unknown(name) and (
            not isinstance(name, str) or not name.strip() or has_control_chars(name)
        ):
            failures.append(
                dyn.CheckFailure(
                    "name", "name must be a non-empty string without control characters"
                )
            )
        return dyn.CheckResult({"name": name}, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        changed = is_unknown(news.get("name")) or olds.get("name") != news.get("name")
        return dyn.DiffResult(changes=changed, replaces=["name"] if changed else [])

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        return dyn.CreateResult(str(props["name"]), {"name": props["name"]})

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        return dyn.ReadResult(id_, {"name": props.get("name", id_)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        name = str(props.get("name") or id_)
        for pod in api.find_pods_by_name(name):
            api.terminate_pod(pod.id)
            api.log.warning(
                "terminated pod %s: it carried the stack's pod name %r but was not in the "
                "stack's state (a create whose answer was lost)",
                pod.id,
                name,
            )


class PodName(dyn.Resource, module="runpod", name="PodName"):
    """A pod's unique name, held by the stack for as long as the pod may exist."""

    name: pulumi.Output[str]

    def __init__(
        self, resource_name: str, name: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(PodNameProvider(), resource_name, {"name": name}, opts)
