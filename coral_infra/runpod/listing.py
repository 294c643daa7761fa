"""The account's pods and network volumes as one provider process listed them (`pods`,
`volumes`), reused for a create's lookup by name.

A create first looks its unique name up, to adopt what an earlier create whose answer was lost
left behind. RunPod can only list the whole account, and the engine runs a fleet's creates in
one provider process per deployment: one listing serves them all. It is reused for
`Timing.listing_ttl` seconds, by one caller at a time (the others wait for it rather than list
again), for the account and API it was read from; what this process terminates or deletes
leaves it at once. What it can miss is what appeared elsewhere within those seconds: a pod or
volume is only ever made under a stack's unique name by that stack's own resource, which is
not created twice in one deployment (a replacement deletes first). Every other lookup (a lost
create's recovery, deletes, refresh) lists afresh, and a fresh listing renews this one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from coral_infra.runpod import session
from coral_infra.runpod.model import PodInfo, VolumeInfo


class HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=HasId)


class Listing(Generic[T]):
    """One kind of thing the account holds, listed by `fetch`."""

    def __init__(self, fetch: Callable[[], list[T]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._items: list[T] = []
        self._source: tuple[str, str, str] | None = None
        self._at = 0.0

    def recent(self) -> list[T]:
        """The listing, reused when it is recent and from the same account and API."""
        with self._lock:
            fresh_enough = time.monotonic() - self._at <= session.timing.listing_ttl
            if self._source != session.account() or not fresh_enough:
                self._store(self._fetch())
            return list(self._items)

    def fresh(self) -> list[T]:
        """A new listing (which the next `recent` reuses)."""
        items = self._fetch()
        with self._lock:
            self._store(items)
        return list(items)

    def drop(self, item_id: str) -> None:
        """This process removed `item_id` from the account."""
        with self._lock:
            self._items = [item for item in self._items if item.id != item_id]

    def _store(self, items: list[T]) -> None:
        self._items, self._source, self._at = list(items), session.account(), time.monotonic()


def _list_pods() -> list[PodInfo]:
    wire = session.wire()
    return session.run("list pods", wire.list_pods)


def _list_volumes() -> list[VolumeInfo]:
    wire = session.wire()
    return session.run("list network volumes", wire.list_volumes)


pods = Listing(_list_pods)
"""The account's live pods: the pod operations' lookups by name, and which network volumes
pods use (a duplicate network volume in use is never deleted)."""
volumes = Listing(_list_volumes)
