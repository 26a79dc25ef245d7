"""The correlation id that follows a purchase from its HTTP request through every event it causes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextvars import ContextVar

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# While a consumer hands a batch of events to one use case, what it writes about a member carries the
# correlation id of that member's event in the batch, not one id for the whole batch.
subject_correlations: ContextVar[Mapping[str, str] | None] = ContextVar("subject_correlations", default=None)


def current_correlation_id() -> str:
    value = correlation_id.get()
    if value is None:
        value = str(uuid.uuid4())
        correlation_id.set(value)
    return value


def correlation_for(member_id: str) -> str:
    """The correlation id of what is written about ``member_id`` now."""
    by_subject = subject_correlations.get()
    if by_subject is not None and member_id in by_subject:
        return by_subject[member_id]
    return current_correlation_id()
