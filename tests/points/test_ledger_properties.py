"""Random sequences of purchases (some paid partly with points), refunds, redemptions, adjustments, holds of the
checkout (captured whole or in part, voided, left to expire), expiry runs and clock moves (days and minutes)
against the real points service and PostgreSQL. After every step the ledger invariant is checked on the
database (``assert_balanced``) and every member's balance is compared with a model of the contract kept here
(lots with their dates, debts, holds): what each call answers, and what the balance shows.

The model settles a member (holds past their time back, pending lots matured, lots past their date expired)
whenever the service is bound to: at every call about the member and at every balance read. Right after a
clock move the balances are not read (reading one settles it), so the next call meets a member with
something due, as a client does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule
from sqlalchemy import select

from services.points import jobs
from services.points.models import Member
from shared.clock import clock, utcnow
from shared.messaging import events
from shared.runtime import Runtime
from tests.points.builders import enroll, now_purchase, program
from tests.points.ledger_checks import assert_balanced
from tests.support import deliver, outbox_events, recreate_schema, service_client, service_db_url, truncate_all

T = TypeVar("T")
MEMBERS = ["h-1", "h-2", "h-3"]
SEED = 200  # points each member gets by an adjustment at the start, so that holds have something to take
PENDING = timedelta(days=3)
EXPIRY = timedelta(days=20)
HOLD_LIFE = timedelta(minutes=15)
MIN_POINTS = 5  # redemption.min_points
MAX_SHARE_PCT = 50  # redemption.max_share, in percent
# point_value is the default 0.01: a point is worth one cent, so a hold of N points is worth N cents.
REDEMPTION = {"min_points": MIN_POINTS, "max_share": "0.5", "hold_minutes": 15, "point_value": "0.01",
              "earn_on_points_paid": False}


# The cents a purchase paid with points costs beyond what the points pay: often a whole number of points'
# worth, where the money part's points are a whole number too.
EXTRA = st.one_of(st.integers(min_value=-100, max_value=50_000), st.integers(min_value=0, max_value=500).map(
    lambda n: n * 100))


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class Loop:
    """A private event loop in a thread, so hypothesis' synchronous state machine can drive the async app."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


class Harness:
    def __init__(self) -> None:
        self.loop = Loop()
        self._context = service_client("points")
        self.app, self.client = self.loop.run(self._context.__aenter__())
        self.loop.run(self._stop_scheduled_jobs())
        self.loop.run(truncate_all(service_db_url("points")))

    async def _stop_scheduled_jobs(self) -> None:
        """The app runs the expiry job every 60 real seconds; here it would settle members at moments the
        model cannot know (between a clock move and the next step), so the machine runs it as a step instead."""
        runtime: Runtime = self.app.state.runtime
        for task in runtime._tasks:
            if task.get_name().endswith("-job"):
                task.cancel()

    def close(self) -> None:
        self.loop.run(self._context.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def harness(pg: None, _migrated: set[str]) -> Iterator[Harness]:
    running = Harness()
    if "points" not in _migrated:
        running.loop.run(recreate_schema(service_db_url("points"), "points"))
        _migrated.add("points")
    yield running
    running.close()
    clock.offset = timedelta(0)


# --- the model ---------------------------------------------------------------------------------------------
# Times are the clock's offset: every step of an example runs within a few real seconds, and the clock only
# moves by whole minutes, so "due" is decided by the offsets alone (a lot made at offset o expires at the
# first moment whose offset is o + 20 days or later, and so on).


@dataclass(eq=False)
class ModelLot:
    remaining: int
    pending: bool
    available_at: timedelta
    expires_at: timedelta


@dataclass(eq=False)
class ModelHold:
    member: str
    points: int
    parts: list[tuple[ModelLot, int]]  # soonest-expiring first, as the lots were taken
    expires_at: timedelta
    status: str = "held"
    captured: int = 0
    purchase_id: str | None = None


@dataclass(eq=False)
class ModelPurchase:
    member: str
    cents: int
    earned: int
    lot: ModelLot | None
    paid_points: int = 0  # captured points of the hold that paid part of it
    refunded_cents: int = 0
    reversed: int = 0
    returned: int = 0


@dataclass(eq=False)
class ModelMember:
    available: int = 0
    pending: int = 0
    held: int = 0
    lots: list[ModelLot] = field(default_factory=list)  # in the order they were made: soonest-expiring first


def repaid(points: int, available: int) -> int:
    """What points becoming available keep once a debt (available below zero) is repaid."""
    return points - min(points, max(-available, 0))


class Model:
    """The contract's balance arithmetic, written independently of the service's."""

    def __init__(self) -> None:
        self.members = {member: ModelMember() for member in MEMBERS}
        self.holds: dict[str, ModelHold] = {}  # in the order they were taken (= the order of their expiry)
        self.purchases: dict[str, ModelPurchase] = {}

    def figures(self, member: str) -> tuple[int, int, int]:
        m = self.members[member]
        return m.available, m.pending, m.held

    def open_holds(self, member: str) -> list[ModelHold]:
        return [hold for hold in self.holds.values() if hold.member == member and hold.status == "held"]

    def settle(self, member: str, now: timedelta) -> None:
        """Holds past their time go back (in the order they were taken), then matured pending lots become
        available (repaying a debt first), then what is left in lots past their date expires."""
        m = self.members[member]
        for hold in self.open_holds(member):
            if hold.expires_at <= now:
                self.end(hold, "expired")
        for lot in m.lots:
            if lot.pending and lot.available_at <= now:
                released = lot.remaining
                m.pending -= released
                lot.remaining = repaid(released, m.available)
                m.available += released
                lot.pending = False
        for lot in m.lots:
            if not lot.pending and lot.remaining > 0 and lot.expires_at <= now:
                m.available -= lot.remaining
                lot.remaining = 0

    def credit_pending(self, member: str, points: int, now: timedelta) -> ModelLot:
        m = self.members[member]
        lot = ModelLot(points, True, now + PENDING, now + EXPIRY)
        m.pending += points
        m.lots.append(lot)
        return lot

    def credit_available(self, member: str, points: int, now: timedelta) -> None:
        m = self.members[member]
        m.lots.append(ModelLot(repaid(points, m.available), False, now, now + EXPIRY))
        m.available += points

    def _from_lots(self, member: str, points: int) -> list[tuple[ModelLot, int]]:
        parts, left = [], points
        for lot in self.members[member].lots:
            if left <= 0:
                break
            if not lot.pending and lot.remaining > 0:
                part = min(lot.remaining, left)
                lot.remaining -= part
                left -= part
                parts.append((lot, part))
        return parts

    def take(self, member: str, points: int, first: ModelLot | None = None) -> None:
        """A debit: a refund's own pending lot first, then the available lots soonest-expiring first;
        what they cannot cover is a debt."""
        m = self.members[member]
        left = points
        if first is not None and first.pending and first.remaining > 0:
            part = min(first.remaining, left)
            first.remaining -= part
            m.pending -= part
            left -= part
        if left > 0:
            self._from_lots(member, left)
            m.available -= left

    def reserve(self, member: str, points: int) -> list[tuple[ModelLot, int]]:
        m = self.members[member]
        assert m.available >= points
        parts = self._from_lots(member, points)
        m.available -= points
        m.held += points
        return parts

    def end(self, hold: ModelHold, status: str, captured: int = 0) -> None:
        """Spend ``captured`` of the hold's points (its first parts) and give the rest back to their lots."""
        m = self.members[hold.member]
        left = captured
        for lot, part in hold.parts:
            spent = min(part, left)
            left -= spent
            back = part - spent
            if back:
                lot.remaining += repaid(back, m.available)
                m.available += back
        m.held -= hold.points
        hold.status = status
        hold.captured = captured


# --- the machine -------------------------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    harness: Harness
    purchases = Bundle("purchases")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        clock.offset = timedelta(0)
        self.run(truncate_all(service_db_url("points")))
        self.counter = 0
        self.model = Model()
        self.unread = False  # the clock moved and no balance was read since
        body = program(pending_days=3, expiry_days=20, redemption=REDEMPTION)
        assert self.call("PUT", "/v1/program", json=body).status_code == 200
        for member in MEMBERS:
            assert self.call("PUT", f"/v1/members/{member}", json={}).status_code == 201
            assert self.call("POST", f"/v1/members/{member}/adjustments", json={
                "adjustment_id": self.next_id("seed"), "points": SEED, "reason": "seed"}).status_code == 201
            self.model.credit_available(member, SEED, self.now)

    @property
    def app(self) -> FastAPI:
        return self.harness.app

    @property
    def now(self) -> timedelta:
        return clock.offset

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.harness.loop.run(coro)

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.harness.client.request(method, url, **kwargs))

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def settle(self, member: str) -> None:
        self.model.settle(member, self.now)

    def refused(self, answer: httpx.Response, status: int, slug: str) -> None:
        assert answer.status_code == status and answer.json()["type"] == f"/problems/{slug}", answer.text

    def shown_like_model(self, member: str, balance: dict[str, Any]) -> None:
        """A balance in an answer (``held`` when it has one) is the model's."""
        available, pending, held = self.model.figures(member)
        assert balance["available"] == available and balance["pending"] == pending, (member, balance,
                                                                                     self.model.figures(member))
        assert balance.get("held", held) == held, (member, balance, self.model.figures(member))

    # --- what the first version already did ---

    @rule(target=purchases, member=st.sampled_from(MEMBERS), cents=st.integers(min_value=1, max_value=50_000))
    def purchase(self, member: str, cents: int) -> str:
        pid = self.next_id("p")
        answer = self.call("POST", "/v1/purchases", json=now_purchase(pid, member, money(cents)))
        assert answer.status_code == 201, answer.text
        self.settle(member)
        earned = cents // 100
        lot = self.model.credit_pending(member, earned, self.now) if earned else None
        self.model.purchases[pid] = ModelPurchase(member, cents, earned, lot)
        assert answer.json()["points_earned"] == earned
        self.shown_like_model(member, answer.json()["balance"])
        return pid

    @rule(pid=purchases, share=st.integers(min_value=1, max_value=100))
    def refund(self, pid: str, share: int) -> None:
        bought = self.model.purchases[pid]
        amount = max(bought.cents * share // 100, 1)
        answer = self.call("POST", f"/v1/purchases/{pid}/refunds", json={
            "refund_id": self.next_id("r"), "amount": money(amount), "occurred_at": utcnow().isoformat()})
        if amount > bought.cents - bought.refunded_cents:
            self.refused(answer, 422, "refund-exceeds-purchase")
            return
        assert answer.status_code == 201, answer.text
        self.settle(bought.member)
        refunded = bought.refunded_cents + amount
        full = refunded >= bought.cents
        reversed_ = max((bought.earned if full else bought.earned * refunded // bought.cents) - bought.reversed, 0)
        returned = max((bought.paid_points if full else bought.paid_points * refunded // bought.cents)
                       - bought.returned, 0)
        bought.refunded_cents, bought.reversed, bought.returned = refunded, bought.reversed + reversed_, \
            bought.returned + returned
        if returned:  # the share of the points that paid it comes back, as a new lot
            self.model.credit_available(bought.member, returned, self.now)
        if reversed_:
            self.model.take(bought.member, reversed_, first=bought.lot)
        body = answer.json()
        assert (body["points_reversed"], body["points_returned"]) == (reversed_, returned), (body, bought)
        self.shown_like_model(bought.member, body["balance"])

    @rule(member=st.sampled_from(MEMBERS), cost=st.integers(min_value=1, max_value=400))
    def redeem(self, member: str, cost: int) -> None:
        self.run(deliver(self.app, events.RedemptionRequested(
            member_id=member, redemption_id=self.next_id("x"), reward_id="gift", points_cost=cost)))
        # A redemption never takes the balance below zero: paid only when the points are available, as of
        # now (a hold whose time is up gave its points back already).
        # Regression (redemptions.pay_redemptions, fixed): a member is settled first only when a *lot* is due,
        # never when only a hold is past its time, so the hold's points still count as held and a redemption
        # they would pay is declined. Smallest reproduction (test_a_redemption_counts_a_hold_past_its_time):
        # adjust +100, POST /v1/holds 70 points, clock +16 minutes, redemption.requested of 50 points:
        # declined (insufficient-points), the balance then shows 100 available instead of 50.
        self.settle(member)
        if self.model.members[member].available >= cost:
            self.model.take(member, cost)

    @rule(member=st.sampled_from(MEMBERS), minutes=st.integers(min_value=1, max_value=30),
          share=st.integers(min_value=1, max_value=120))
    def redeem_later(self, member: str, minutes: int, share: int) -> None:
        """A redemption arriving a while after the member was last seen (a hold's time may be up by then),
        of a share of what the member has available (over 100: more than that)."""
        self.travel_minutes(minutes)
        back = sum(hold.points for hold in self.model.open_holds(member) if hold.expires_at <= self.now)
        self.redeem(member, max(1, max(self.model.members[member].available + back, 0) * share // 100))

    @rule(member=st.sampled_from(MEMBERS), points=st.integers(min_value=-300, max_value=300).filter(bool))
    def adjust(self, member: str, points: int) -> None:
        answer = self.call("POST", f"/v1/members/{member}/adjustments", json={
            "adjustment_id": self.next_id("a"), "points": points, "reason": "property test"})
        self.settle(member)
        if points < 0 and self.model.members[member].available < -points:
            self.refused(answer, 422, "insufficient-points")
            return
        assert answer.status_code == 201, answer.text
        if points > 0:
            self.model.credit_available(member, points, self.now)
        else:
            self.model.take(member, -points)
        assert answer.json()["balance_after"] == sum(self.model.figures(member))

    @rule()
    def run_expiry(self) -> None:
        self.run(jobs.settle_due_members(self.app.state.runtime.db))
        for member in MEMBERS:
            self.settle(member)

    @rule(days=st.integers(min_value=1, max_value=15))
    def travel(self, days: int) -> None:
        clock.offset += timedelta(days=days)
        self.unread = True

    # --- the checkout ---

    @rule(minutes=st.integers(min_value=1, max_value=30))
    def travel_minutes(self, minutes: int) -> None:
        """Moves the clock within a hold's life (15 minutes) or past it."""
        clock.offset += timedelta(minutes=minutes)
        self.unread = True

    def take_hold(self, member: str, share: int, order_cents: int | None) -> str | None:
        """A hold of ``share`` percent of what the model says is available (over 100: more than that)."""
        self.settle(member)
        points = max(1, max(self.model.members[member].available, 0) * share // 100)
        hold_id = self.next_id("hold")
        body: dict[str, Any] = {"hold_id": hold_id, "member_id": member, "points": points}
        if order_cents is not None:
            body["order_total"] = money(order_cents)
        answer = self.call("POST", "/v1/holds", json=body)
        if points < MIN_POINTS or (order_cents is not None and points * 100 > order_cents * MAX_SHARE_PCT):
            self.refused(answer, 422, "validation-error")
            return None
        if self.model.members[member].available < points:
            self.refused(answer, 422, "insufficient-points")
            return None
        assert answer.status_code == 201, answer.text
        self.model.holds[hold_id] = ModelHold(member, points, self.model.reserve(member, points),
                                              self.now + HOLD_LIFE)
        shown = answer.json()
        assert (shown["status"], shown["points"], shown["value"]) == ("held", points, money(points))
        assert shown["balance"]["available"] >= 0  # a hold never takes the balance below zero
        self.shown_like_model(member, shown["balance"])
        return hold_id

    @rule(target=holds, member=st.sampled_from(MEMBERS), share=st.integers(min_value=1, max_value=120),
          order_cents=st.none() | st.integers(min_value=1, max_value=100_000))
    def hold(self, member: str, share: int, order_cents: int | None) -> Any:
        hold_id = self.take_hold(member, share, order_cents)
        return multiple() if hold_id is None else hold_id

    @rule(hold_id=holds, share=st.none() | st.integers(min_value=1, max_value=110),
          link=st.sampled_from(["none", "new", "same"]))
    def capture(self, hold_id: str, share: int | None, link: str) -> None:
        """All of a hold (no ``points``) or a share of it; with no purchase id, a new one, or the one it has."""
        hold = self.model.holds[hold_id]
        points = None if share is None else max(1, hold.points * share // 100)
        purchase_id = None if link == "none" else (hold.purchase_id if link == "same" and hold.purchase_id
                                                   else self.next_id("p"))
        body: dict[str, Any] = {}
        if points is not None:
            body["points"] = points
        if purchase_id is not None:
            body["purchase_id"] = purchase_id
        answer = self.call("POST", f"/v1/holds/{hold_id}/capture", json=body)
        self.settle(hold.member)
        wanted = hold.points if points is None else points
        if hold.status == "captured":
            if wanted != hold.captured or purchase_id not in (None, hold.purchase_id):
                self.refused(answer, 409, "idempotency-conflict")
            else:  # a repeat answers as the first capture did
                assert answer.status_code == 200, answer.text
                assert (answer.json()["status"], answer.json()["points"]) == ("captured", hold.captured)
            return
        if hold.status == "expired":
            self.refused(answer, 409, "hold-expired")
            return
        if hold.status == "voided":
            self.refused(answer, 409, "hold-not-active")
            return
        if wanted > hold.points:
            self.refused(answer, 422, "validation-error")
            return
        assert answer.status_code == 200, answer.text
        before = self.model.members[hold.member].available
        hold.purchase_id = purchase_id
        self.model.end(hold, "captured", wanted)
        self.settle(hold.member)  # a part given back to a lot past its date expires at once
        shown = answer.json()
        assert (shown["status"], shown["points"], shown["held_points"]) == ("captured", wanted, hold.points)
        if before >= 0:  # a capture never takes the balance below zero (only a refund makes a debt)
            assert shown["balance"]["available"] >= 0 and shown["balance"]["held"] >= 0, shown
        self.shown_like_model(hold.member, shown["balance"])

    @rule(hold_id=holds)
    def void(self, hold_id: str) -> None:
        hold = self.model.holds[hold_id]
        answer = self.call("POST", f"/v1/holds/{hold_id}/void")
        self.settle(hold.member)
        if hold.status == "voided":  # a repeat answers as the first void did
            assert answer.status_code == 200 and answer.json()["status"] == "voided", answer.text
        elif hold.status == "captured":
            self.refused(answer, 409, "hold-not-active")
        elif hold.status == "expired":
            self.refused(answer, 409, "hold-expired")
        else:
            assert answer.status_code == 200 and answer.json()["status"] == "voided", answer.text
            self.model.end(hold, "voided")
            self.settle(hold.member)
            self.shown_like_model(hold.member, answer.json()["balance"])

    @rule(hold_id=holds)
    def show_hold(self, hold_id: str) -> None:
        hold = self.model.holds[hold_id]
        answer = self.call("GET", f"/v1/holds/{hold_id}")
        self.settle(hold.member)  # a hold past its time is given back on the way
        assert answer.status_code == 200, answer.text
        shown = answer.json()
        assert shown["status"] == hold.status, (shown, hold)
        assert shown["points"] == (hold.captured if hold.status == "captured" else hold.points)
        assert shown["purchase_id"] == hold.purchase_id

    def pay(self, hold_id: str, extra: int, foreign: bool, same_id: bool) -> str | None:
        """A purchase paid partly with the hold's points: its total is what they are worth plus ``extra``
        cents (below it: refused). ``foreign``: posted for another member; ``same_id``: with the purchase id
        a capture gave the hold (if any, and no purchase has it yet)."""
        hold = self.model.holds[hold_id]
        member = MEMBERS[(MEMBERS.index(hold.member) + 1) % len(MEMBERS)] if foreign else hold.member
        reuse = same_id and hold.purchase_id is not None and hold.purchase_id not in self.model.purchases
        pid = hold.purchase_id if reuse and hold.purchase_id else self.next_id("p")
        paid = hold.captured if hold.status == "captured" else hold.points  # points, each worth a cent
        cents = max(paid + extra, 1)
        answer = self.call("POST", "/v1/purchases", json=now_purchase(
            pid, member, money(cents), points_paid={"hold_id": hold_id}))
        self.settle(member)
        if member != hold.member:
            self.refused(answer, 422, "validation-error")
            return None
        if hold.status in ("expired", "voided"):
            self.refused(answer, 409, "hold-expired" if hold.status == "expired" else "hold-not-active")
            return None
        if paid > cents:
            self.refused(answer, 422, "validation-error")
            return None
        if hold.purchase_id not in (None, pid):  # one hold pays one purchase
            self.refused(answer, 409, "hold-not-active")
            return None
        assert answer.status_code == 201, answer.text
        hold.purchase_id = pid
        if hold.status == "held":
            self.model.end(hold, "captured", hold.points)
        # The earning base is the total minus the value of the points paid.
        # Regression (domain.net_of_points_paid, fixed): the money part is computed as total x ((total - paid) /
        # total) in 28-digit decimals, which falls just short of a whole number (0.9999...) and is floored a
        # point too low. Smallest reproduction (in test_quote_properties.py,
        # test_a_purchase_paid_with_points_earns_on_the_whole_money_part): adjust +22, POST /v1/holds 22 points
        # (0.22), POST /v1/purchases total "1.22" with points_paid: 0 points earned, where the 1.00 paid in money
        # earns 1. The quote shows the same wrong figure.
        earned = (cents - paid) // 100
        assert answer.json()["points_earned"] == earned, (answer.json(), cents, paid)
        lot = self.model.credit_pending(member, earned, self.now) if earned else None
        self.model.purchases[pid] = ModelPurchase(member, cents, earned, lot, paid_points=hold.captured)
        self.shown_like_model(member, answer.json()["balance"])
        return pid

    @rule(target=purchases, hold_id=holds, extra=EXTRA,
          who=st.integers(min_value=0, max_value=5), same_id=st.booleans())
    def pay_with_hold(self, hold_id: str, extra: int, who: int, same_id: bool) -> Any:
        pid = self.pay(hold_id, extra, foreign=who == 0, same_id=same_id)
        return multiple() if pid is None else pid

    @rule(target=purchases, member=st.sampled_from(MEMBERS), share=st.integers(min_value=1, max_value=100),
          extra=EXTRA.filter(lambda n: n >= 0))
    def hold_and_pay(self, member: str, share: int, extra: int) -> Any:
        """The checkout as a till runs it: hold, then post the purchase naming the hold."""
        hold_id = self.take_hold(member, share, None)
        pid = None if hold_id is None else self.pay(hold_id, extra, foreign=False, same_id=False)
        return multiple() if pid is None else pid

    # --- after every step ---

    @invariant()
    def balances_match_the_model(self) -> None:
        """Each member's balance is the model's: what is stored right after a clock move (a read would
        settle it), else what a balance read shows; and the ledger invariant holds on the database."""
        for member in MEMBERS:
            assert self.model.members[member].held == sum(h.points for h in self.model.open_holds(member)) >= 0
        if self.unread:
            stored = self.run(self.stored())
            for member in MEMBERS:
                assert stored[member] == self.model.figures(member), (member, stored, self.model.figures(member))
            self.unread = False
        else:
            client = self.harness.client
            answers = self.run(gather(*(client.get(f"/v1/members/{m}/balance") for m in MEMBERS)))
            for member, answer in zip(MEMBERS, answers, strict=True):
                assert answer.status_code == 200, answer.text
                self.settle(member)
                self.shown_like_model(member, answer.json())
        self.run(gather(*(assert_balanced(self.app, member) for member in MEMBERS)))

    async def stored(self) -> dict[str, tuple[int, int, int]]:
        runtime: Runtime = self.app.state.runtime
        async with runtime.db.read() as session:
            rows = (await session.execute(select(Member).where(Member.member_id.in_(MEMBERS)))).scalars()
            return {row.member_id: (row.available, row.pending, row.held) for row in rows}


async def gather(*calls: Awaitable[T]) -> list[T]:
    return list(await asyncio.gather(*calls))


# Regression (redemptions.pay_redemptions, fixed): a member is settled before a redemption is paid only when one
# of the member's *lots* is due, never when only a hold is past its time; so the points of a hold that went
# back by itself (contract: "a hold that is neither captured nor voided by expires_at goes back by itself")
# still count as held and a redemption they would pay is declined. Smallest reproduction: adjust +100; POST
# /v1/holds {"points": 70}; 16 minutes later (hold_minutes 15) redemption.requested of 50 points: declined
# (points.spend_declined, insufficient-points), and the next balance read shows 100 available, 0 held. Every
# other use case settles the holds first (members.locked_member, the purchase's fast path, the balance read).
# The state machine below finds it too (rule ``redeem_later``). Fixed by settling members who hold points.
async def test_a_redemption_counts_a_hold_past_its_time(client: httpx.AsyncClient, app: FastAPI,
                                                        travel: Callable[[timedelta], None]) -> None:
    await enroll(client, "C-1")
    assert (await client.post("/v1/members/C-1/adjustments", json={
        "adjustment_id": "seed", "points": 100, "reason": "seed"})).status_code == 201
    assert (await client.post("/v1/holds", json={"hold_id": "h-1", "member_id": "C-1", "points": 70})
            ).status_code == 201
    travel(timedelta(minutes=16))
    await deliver(app, events.RedemptionRequested(member_id="C-1", redemption_id="x-1", reward_id="gift",
                                                  points_cost=50))
    assert [e["data"]["reason"] for e in await outbox_events(app, "points.spend_declined")] == []
    shown = (await client.get("/v1/members/C-1/balance")).json()
    assert (shown["available"], shown["held"]) == (50, 0), shown
    await assert_balanced(app, "C-1")


@pytest.mark.slow
def test_ledger_invariant_holds_under_random_sequences(harness: Harness) -> None:
    LedgerMachine.harness = harness
    machine = LedgerMachine.TestCase
    machine.settings = settings(max_examples=50, stateful_step_count=30, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    machine().runTest()
