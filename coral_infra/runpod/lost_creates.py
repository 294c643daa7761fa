"""A create whose answer was lost, for pods and network volumes alike.

RunPod may apply a create after the client stopped waiting for it, so a pod or network volume
create that may have been applied is never blindly sent again: its unique name is looked up
over `Timing.lookup_grace` (`await_late`), several things found under it are settled on one
with a warning (`warn`), and a create that still cannot tell fails saying what may exist and
how the next `pulumi up` adopts it (`may_exist`). The pod operations (`api`) and the network
volume operations (`network_volumes`) share this, so it lives below both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from coral_infra.runpod import session

T = TypeVar("T")
log = logging.getLogger("coral_infra.runpod")


def warn(message: str) -> str:
    log.warning(message)
    return message


def await_late(lookup: Callable[[], list[T]]) -> list[T]:
    """Look up over the lookup grace period until something appears (a late-applied create)."""
    deadline = time.monotonic() + session.timing.lookup_grace
    while True:
        found = lookup()
        if found or time.monotonic() + session.timing.lookup_interval > deadline:
            return found
        time.sleep(session.timing.lookup_interval)


def may_exist(what: str, name: str, where: str = "") -> str:
    return (
        f"RunPod may have created a {what} named {name!r}{where} from a request whose answer "
        "was lost; it is not in the stack's state: the next `pulumi up` finds it by that name "
        "and adopts it"
    )
