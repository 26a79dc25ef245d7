"""Program bodies and the points service's events, for tiers tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.clock import utcnow
from shared.messaging import events

LADDER = ["bronze", "silver", "gold"]


def days_from_now(days: float) -> datetime:
    return utcnow() + timedelta(days=days)


def tier(tier_id: str, threshold: str, multiplier: str = "1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"tier_id": tier_id, "name": tier_id.title(), "threshold": threshold,
                            "earn_multiplier": multiplier, "perks": []}
    body.update(fields)
    return body


def program(**fields: Any) -> dict[str, Any]:
    """bronze 0 (x1), silver 500 (x1.5), gold 1000 (x2) on a year of spend, kept a year."""
    body: dict[str, Any] = {
        "basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
        "tiers": [tier("bronze", "0"), tier("silver", "500", "1.5"), tier("gold", "1000", "2")],
    }
    body.update(fields)
    return body


def enrolled(member_id: str, status: str = "active", *, days_ago: float = 0) -> events.MemberEnrolled:
    return events.MemberEnrolled(member_id=member_id, status=status, enrolled_at=days_from_now(-days_ago))


def updated(member_id: str, status: str, *, days_ago: float = 0) -> events.MemberUpdated:
    return events.MemberUpdated(member_id=member_id, status=status, enrolled_at=days_from_now(-days_ago))


def purchase(
    purchase_id: str, member_id: str, total: str = "100.00", *, days_ago: float = 1, points: int | None = None
) -> events.PurchaseRecorded:
    return events.PurchaseRecorded(
        member_id=member_id, purchase_id=purchase_id, store_id="store-1", channel="pos",
        occurred_at=days_from_now(-days_ago), currency="USD", total=Decimal(total),
        points_earned=int(Decimal(total)) if points is None else points,
    )


def refund(
    refund_id: str, purchase_id: str, member_id: str, amount: str, *, points: int = 0
) -> events.PurchaseRefunded:
    return events.PurchaseRefunded(
        member_id=member_id, purchase_id=purchase_id, refund_id=refund_id, occurred_at=utcnow(), currency="USD",
        amount=Decimal(amount), points_reversed=points,
    )


def points_earned(purchase_id: str | None, member_id: str, points: int, *, days_ago: float = 1) -> events.PointsEarned:
    return events.PointsEarned(
        member_id=member_id, purchase_id=purchase_id, points=points, occurred_at=days_from_now(-days_ago),
        balance=events.BalanceSnapshot(available=points, pending=0),
    )


def points_reversed(refund_id: str, purchase_id: str, member_id: str, points: int) -> events.PointsReversed:
    return events.PointsReversed(
        member_id=member_id, purchase_id=purchase_id, refund_id=refund_id, points=points,
        balance=events.BalanceSnapshot(available=0, pending=0),
    )


def balance_event(
    kind: type[events.PointsEvent], member_id: str, available: int, pending: int = 0, *, held: int = 0,
    **fields: Any
) -> events.PointsEvent:
    """A points.* event of ``kind`` leaving the member with ``available``, ``pending`` and ``held`` points."""
    required: dict[type[events.PointsEvent], dict[str, Any]] = {
        events.PointsSpent: {"redemption_id": "r-1"}, events.PointsRefunded: {"redemption_id": "r-1"},
        events.PointsHeld: {"hold_id": "h-1", "expires_at": days_from_now(1 / 96)},
        events.PointsReleased: {"hold_id": "h-1", "reason": "voided"},
        events.PointsReversed: {"purchase_id": "p-x", "refund_id": "rf-x"},
        events.PointsAdjusted: {"adjustment_id": "a-1", "reason": "goodwill", "actor": "ops"},
        events.PointsTransferred: {"transfer_id": "t-1", "to_member_id": "C-9", "direction": "out"},
    }
    defaults = required.get(kind, {})
    return kind(member_id=member_id, points=10,
                balance=events.BalanceSnapshot(available=available, pending=pending, held=held),
                **(defaults | fields))
