"""The one clock of every service, so tests can make days pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time for every service, with an offset that tests move to make days pass."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


clock = Clock()


def utcnow() -> datetime:
    return clock.now()
