"""How a credit moves a member's figures (``domain.credit_figures``, which both ``ledger.credit`` and the
purchase's fast path write): plain Python, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.points.domain import EARNING_KINDS, CreditFigures, credit_figures, lot_remaining

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


def credit(points: int, *, available: int = 0, pending: int = 0, lifetime_earned: int = 0, kind: str = "earn",
           available_at: datetime | None = None) -> CreditFigures:
    return credit_figures(kind, points, available=available, pending=pending, lifetime_earned=lifetime_earned,
                          now=NOW, available_at=available_at)


def test_a_credit_without_a_window_is_available_now() -> None:
    figures = credit(40, available=10, pending=5, lifetime_earned=100)
    assert figures == CreditFigures(available=50, pending=5, lifetime_earned=140, remaining=40, lot_pending=False,
                                    available_at=NOW)
    assert figures.balance_after == 55


def test_a_credit_inside_its_window_is_pending_and_keeps_all_its_points() -> None:
    later = NOW + timedelta(days=14)
    figures = credit(40, available=-15, pending=5, available_at=later)
    assert figures == CreditFigures(available=-15, pending=45, lifetime_earned=40, remaining=40, lot_pending=True,
                                    available_at=later)


def test_a_window_already_over_makes_the_points_available_with_its_date() -> None:
    earlier = NOW - timedelta(days=1)
    figures = credit(40, available_at=earlier)
    assert (figures.available, figures.pending, figures.lot_pending, figures.available_at) == (40, 0, False, earlier)
    assert credit(40, available_at=NOW).lot_pending is False


def test_a_debt_is_repaid_first() -> None:
    assert credit(40, available=-15).remaining == 25 and credit(40, available=-15).available == 25
    everything = credit(10, available=-15)
    assert (everything.available, everything.remaining) == (-5, 0)


def test_only_earning_kinds_count_in_lifetime_earned() -> None:
    for kind in ("earn", "bonus"):
        assert credit(30, kind=kind, lifetime_earned=7).lifetime_earned == 37
    for kind in ("adjust", "refund", "transfer_in"):
        assert credit(30, kind=kind, lifetime_earned=7).lifetime_earned == 7


def test_lot_remaining_keeps_what_a_debt_leaves() -> None:
    assert [lot_remaining(10, available) for available in (5, 0, -3, -10, -25)] == [10, 10, 7, 0, 0]


windows = st.one_of(st.none(), st.integers(min_value=-30, max_value=30).map(lambda days: NOW + timedelta(days=days)))
kinds = st.sampled_from(["earn", "bonus", "adjust", "refund", "transfer_in"])


@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=-10_000, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=100_000),
    kinds,
    windows,
)
def test_a_credit_keeps_the_ledger_invariant(
    points: int, available: int, pending: int, lifetime_earned: int, kind: str, available_at: datetime | None
) -> None:
    """Before the credit the lots are as the ledger keeps them (pending lots hold ``pending``, the others
    ``max(available, 0)``, the ledger sums to ``available + pending``); after it, with the new lot, still."""
    pending_lots, other_lots, ledger_sum = pending, max(available, 0), available + pending
    figures = credit(points, available=available, pending=pending, lifetime_earned=lifetime_earned, kind=kind,
                     available_at=available_at)
    if figures.lot_pending:
        pending_lots += figures.remaining
    else:
        other_lots += figures.remaining
    ledger_sum += points
    assert figures.pending == pending_lots
    assert max(figures.available, 0) == other_lots
    assert figures.balance_after == ledger_sum == figures.available + figures.pending
    assert 0 <= figures.remaining <= points
    assert figures.lot_pending == (available_at is not None and available_at > NOW)
    assert figures.available_at == (available_at or NOW)
    assert figures.lifetime_earned == lifetime_earned + (points if kind in EARNING_KINDS else 0)
