"""Expiry reminders: ``points.expiring`` once per lot, ``expiry_reminder_days`` before it expires, about what is
left of it; never about pending points or a suspended member's; once also when two runs race or one dies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.points.jobs import settle_due_members
from services.points.service import reminders
from tests.points.builders import available, buy, enroll, program
from tests.points.ledger_checks import assert_balanced
from tests.support import outbox_events

DAY = timedelta(days=1)


async def put_program(client: httpx.AsyncClient, **settings: Any) -> None:
    answer = await client.put("/v1/program", json=program(**settings))
    assert answer.status_code in (200, 201), answer.text


async def reminded(app: FastAPI) -> list[tuple[str, int, str]]:
    return [(e["subject"], e["data"]["points"], e["data"]["expires_at"])
            for e in await outbox_events(app, "points.expiring")]


async def test_each_lot_is_reminded_of_once_before_it_expires_about_what_is_left_of_it(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]) -> None:
    await put_program(client, expiry_days=60, expiry_reminder_days=7)
    db = app.state.runtime.db
    for member_id in ("M-1", "M-2", "M-3"):
        await enroll(client, member_id)
    await buy(client, "p-1", "M-1", "100.00")
    await buy(client, "p-2", "M-2", "30.00")
    await buy(client, "p-3", "M-3", "40.00")
    travel(10 * DAY)
    await buy(client, "p-4", "M-1", "25.00")  # a second lot, expiring ten days after the first
    spent = await client.post("/v1/members/M-1/adjustments",
                              json={"adjustment_id": "adj-1", "points": -30, "reason": "correction"})
    assert spent.status_code == 201, spent.text  # taken from the soonest-expiring lot: 70 of it left
    suspended = await client.put("/v1/members/M-3", json={"status": "suspended"})
    assert suspended.status_code == 200, suspended.text
    assert await reminders.send_reminders(db) == 0  # 50 days before the first expiry

    travel(43 * DAY + timedelta(minutes=1))  # day 53: the first lots expire in under 7 days
    assert await reminders.send_reminders(db) == 2
    first = await reminded(app)
    assert sorted((member, points) for member, points, _ in first) == [("M-1", 70), ("M-2", 30)]
    assert await reminders.send_reminders(db) == 0  # once per lot

    travel(10 * DAY)  # day 63: the first lots have expired, the second comes due
    await settle_due_members(db)  # as the minute job does first
    assert await reminders.send_reminders(db) == 1
    assert (await reminded(app))[2][:2] == ("M-1", 25)
    assert sorted(e["subject"] for e in await outbox_events(app, "points.expired")) == ["M-1", "M-2", "M-3"]
    assert await available(client, "M-1") == 25
    for member_id in ("M-1", "M-2", "M-3"):
        await assert_balanced(app, member_id)


async def test_two_runs_at_once_and_a_run_that_dies_send_each_reminder_once(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    await put_program(client, expiry_days=30, expiry_reminder_days=5)
    db = app.state.runtime.db
    members = [f"R-{n}" for n in range(12)]
    for member_id in members:
        await enroll(client, member_id)
        await buy(client, f"p-{member_id}", member_id, "10.00")
    travel(26 * DAY)
    real, calls = reminders.remind_member, 0

    async def dies_on_the_fourth(*args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("killed")
        return await real(*args)

    monkeypatch.setattr(reminders, "remind_member", dies_on_the_fourth)
    with pytest.raises(RuntimeError):
        await reminders.send_reminders(db)
    assert len(await reminded(app)) == 3  # the dead member's transaction left nothing
    monkeypatch.setattr(reminders, "remind_member", real)
    sent = await asyncio.gather(reminders.send_reminders(db), reminders.send_reminders(db))
    assert sum(sent) == 9
    assert sorted(member for member, _, _ in await reminded(app)) == sorted(members)


async def test_pending_points_wait_and_no_setting_sends_none(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]) -> None:
    db = app.state.runtime.db
    await put_program(client, expiry_days=20, pending_days=16, expiry_reminder_days=10)
    await enroll(client, "P-1")
    await buy(client, "p-1", "P-1", "10.00")
    travel(11 * DAY)  # inside the reminder window, still inside the return window
    assert await reminders.send_reminders(db) == 0
    travel(6 * DAY)  # released (by the minute job, before it reminds): now it is points the member can spend
    await settle_due_members(db)
    assert await reminders.send_reminders(db) == 1
    await put_program(client, expiry_days=20, pending_days=16)  # 0: no reminders
    await buy(client, "p-2", "P-1", "10.00")
    travel(17 * DAY)
    await settle_due_members(db)
    assert await reminders.send_reminders(db) == 0
    assert len(await reminded(app)) == 1


@pytest.mark.parametrize("days", [30, 31, -1, "1_0", 1.5, True])
async def test_a_reminder_that_is_not_before_the_expiry_is_422_and_changes_nothing(
        client: httpx.AsyncClient, days: Any) -> None:
    await put_program(client, expiry_days=30, expiry_reminder_days=3)
    answer = await client.put("/v1/program", json=program(expiry_days=30, expiry_reminder_days=days))
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/program")).json()["expiry_reminder_days"] == 3
