"""The dashboard's figures, pure: ISO weeks and their points, the Pareto curve. No I/O here;
``service.projections`` reads the rows and ``api.dashboard`` draws what these functions return.

- **Weeks** are ISO weeks in UTC, named by their Monday. A series covers a fixed number of weeks up to the
  current one, with zeros where nothing moved, so a quiet week shows as a gap rather than vanishing.
- **The Pareto curve** is the Lorenz curve of the scored members' revenue, highest first: at each share of
  members (0%, 5%, ... 100%) the share of revenue they make, the member at the mark counting with the
  fraction of them inside it. Its 20% point is the summary's ``top_20pct_revenue_share``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Literal

PointsKind = Literal["issued", "spent", "expired"]
POINTS_KINDS: tuple[PointsKind, ...] = ("issued", "spent", "expired")
CURVE_STEPS = 20  # one point every 5% of members


def week_of(moment: datetime) -> date:
    """The Monday (UTC) of the ISO week ``moment`` falls in."""
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def week_label(week: date) -> str:
    """``2026-W48``: the ISO year and week number, which differ from the calendar's around New Year."""
    year, number, _ = week.isocalendar()
    return f"{year}-W{number:02d}"


@dataclass(frozen=True)
class WeekPoints:
    week: date
    issued: int = 0
    spent: int = 0
    expired: int = 0

    @property
    def label(self) -> str:
        return week_label(self.week)


def weekly_points(rows: Iterable[tuple[date, str, int]], until: datetime, weeks: int) -> list[WeekPoints]:
    """The ``weeks`` ISO weeks that end with the one ``until`` falls in, oldest first, each with its points
    by kind from ``rows`` of (Monday, kind, points); rows outside those weeks or of other kinds are left out."""
    last = week_of(until)
    mondays = [last - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    totals: dict[date, dict[str, int]] = {monday: dict.fromkeys(POINTS_KINDS, 0) for monday in mondays}
    for week, kind, points in rows:
        if week in totals and kind in totals[week]:
            totals[week][kind] += points
    return [WeekPoints(monday, **totals[monday]) for monday in mondays]


@dataclass(frozen=True)
class CurvePoint:
    members_share: Decimal  # the top share of members, 0 to 1
    revenue_share: Decimal  # the share of revenue they make, 0 to 1


def pareto_curve(revenues: Sequence[Decimal], steps: int = CURVE_STEPS) -> list[CurvePoint]:
    """The Lorenz curve at ``steps`` + 1 evenly spaced shares of members; empty without revenue. Negative
    revenue (refunds beyond the window's purchases) counts as none, as in the Pareto share."""
    ordered = sorted((max(r, Decimal(0)) for r in revenues), reverse=True)
    running = [Decimal(0), *accumulate(ordered)]
    total = running[-1]
    if total <= 0:
        return []
    points = []
    for step in range(steps + 1):
        fraction = Decimal(step) / Decimal(steps)
        top = fraction * len(ordered)
        whole = int(top)
        made = running[whole]
        if whole < len(ordered):
            made += (top - whole) * ordered[whole]
        points.append(CurvePoint(fraction, made / total))
    return points


def percent(share: Decimal | float | None) -> str:
    """A share as the page prints it: ``62.5%``; an em dash when there is none."""
    if share is None:
        return "\u2014"
    return f"{Decimal(str(share)) * 100:.1f}%"
