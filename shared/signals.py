"""In-process notices of what a committed unit of work did, for the parts of the same process that wait on
it (the outbox relay, requests waiting on a redemption). A unit of work emits through its ``on_commit``
hooks, so nothing is announced for a transaction that rolled back."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Signal(Generic[T]):
    """Listeners are bound methods, held weakly: a listener whose object is gone (an app that stopped) is
    dropped without having to unsubscribe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[weakref.WeakMethod[Callable[[T], None]]] = []

    def subscribe(self, listener: Callable[[T], None]) -> None:
        self._listeners.append(weakref.WeakMethod(listener))

    def unsubscribe(self, listener: Callable[[T], None]) -> None:
        self._listeners = [ref for ref in self._listeners if ref() not in (None, listener)]

    def emit(self, value: T) -> None:
        alive = []
        for ref in self._listeners:
            listener = ref()
            if listener is not None:
                alive.append(ref)
                listener(value)
        self._listeners = alive

    def __repr__(self) -> str:
        return f"Signal({self.name!r})"
