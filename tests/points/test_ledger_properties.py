"""Random sequences of purchases, refunds, redemptions, adjustments, expiry runs and clock moves against
the real points service and PostgreSQL; the ledger invariant is checked after every step."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from services.points import jobs
from shared.clock import clock, utcnow
from shared.messaging import events
from tests.points.builders import now_purchase, program
from tests.points.ledger_checks import assert_balanced
from tests.support import deliver, recreate_schema, service_client, service_db_url, truncate_all

T = TypeVar("T")
MEMBERS = ["h-1", "h-2", "h-3"]


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
        self.loop.run(truncate_all(service_db_url("points")))

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


class LedgerMachine(RuleBasedStateMachine):
    harness: Harness
    purchases = Bundle("purchases")

    def __init__(self) -> None:
        super().__init__()
        clock.offset = timedelta(0)
        self.run(truncate_all(service_db_url("points")))
        self.counter = 0
        assert self.call("PUT", "/v1/program", json=program(pending_days=3, expiry_days=20)).status_code == 200
        for member in MEMBERS:
            assert self.call("PUT", f"/v1/members/{member}", json={}).status_code == 201

    @property
    def app(self) -> FastAPI:
        return self.harness.app

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.harness.loop.run(coro)

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.harness.client.request(method, url, **kwargs))

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def available(self, member: str) -> int:
        points: int = self.call("GET", f"/v1/members/{member}/balance").json()["available"]
        return points

    @rule(target=purchases, member=st.sampled_from(MEMBERS), cents=st.integers(min_value=1, max_value=50_000))
    def purchase(self, member: str, cents: int) -> tuple[str, int]:
        pid = self.next_id("p")
        answer = self.call("POST", "/v1/purchases", json=now_purchase(pid, member, f"{cents / 100:.2f}"))
        assert answer.status_code == 201, answer.text
        return pid, cents

    @rule(bought=purchases, share=st.integers(min_value=1, max_value=100))
    def refund(self, bought: tuple[str, int], share: int) -> None:
        pid, cents = bought
        amount = max(cents * share // 100, 1)
        answer = self.call("POST", f"/v1/purchases/{pid}/refunds", json={
            "refund_id": self.next_id("r"), "amount": f"{amount / 100:.2f}", "occurred_at": utcnow().isoformat()})
        assert answer.status_code in (201, 422), answer.text
        if answer.status_code == 422:
            assert answer.json()["type"] == "/problems/refund-exceeds-purchase"

    @rule(member=st.sampled_from(MEMBERS), cost=st.integers(min_value=1, max_value=400))
    def redeem(self, member: str, cost: int) -> None:
        before = self.available(member)
        self.run(deliver(self.app, events.RedemptionRequested(
            member_id=member, redemption_id=self.next_id("x"), reward_id="gift", points_cost=cost)))
        after = self.available(member)
        if before >= cost:
            assert after == before - cost >= 0
        else:
            assert after == before, "a redemption never takes the balance below zero"

    @rule(member=st.sampled_from(MEMBERS), points=st.integers(min_value=-300, max_value=300).filter(bool))
    def adjust(self, member: str, points: int) -> None:
        answer = self.call("POST", f"/v1/members/{member}/adjustments", json={
            "adjustment_id": self.next_id("a"), "points": points, "reason": "property test"})
        assert answer.status_code in (201, 422), answer.text

    @rule()
    def run_expiry(self) -> None:
        self.run(jobs.settle_due_members(self.app.state.runtime.db))

    @rule(days=st.integers(min_value=1, max_value=15))
    def travel(self, days: int) -> None:
        clock.offset += timedelta(days=days)

    @invariant()
    def ledger_matches_balances(self) -> None:
        for member in MEMBERS:
            self.run(assert_balanced(self.app, member))


@pytest.mark.slow
def test_ledger_invariant_holds_under_random_sequences(harness: Harness) -> None:
    LedgerMachine.harness = harness
    machine = LedgerMachine.TestCase
    machine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    machine().runTest()
