"""`loyalty demo`: the demo program applied, the generated members and purchases sent, a few redemptions,
then the segmentation run, so tiers, segments and analytics show real figures at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from ops.apply import apply_program
from ops.client import Api
from ops.demo_data import DemoData, comebacks, demo_program, generate

BATCH = 1000
CONCURRENCY = 8


class DemoFailed(Exception):
    pass


async def _gather_limited(calls: list[Callable[[], Any]], limit: int = CONCURRENCY) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Any]) -> Any:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


async def _tiers_caught_up(api: Api, data: DemoData, timeout: float, echo: Callable[[str], None]) -> None:
    """tiers learns of purchases from Kafka, a little after points answered. Events of one member keep
    their order in one partition, so once tiers counts the full spend of every member of the last batch,
    every partition those members live on is consumed past all that was sent before."""
    last = {body["member_id"] for body in data.purchases[-BATCH:]}
    expected = {m.member_id: m.spend for m in data.members if m.member_id in last}
    deadline = time.monotonic() + timeout
    while expected:
        async def check(member_id: str) -> str | None:
            answer = await api.request("tiers", "GET", f"/v1/members/{member_id}/tier",
                                       ok_statuses=frozenset({404}))
            seen = answer.status_code == 200 and Decimal(answer.json()["qualifying_value"]) >= expected[member_id]
            return member_id if seen else None

        done = await _gather_limited([partial(check, member_id) for member_id in expected])
        for member_id in filter(None, done):
            expected.pop(member_id)
        if not expected:
            return
        if time.monotonic() > deadline:
            raise DemoFailed(f"tiers has not caught up within {timeout:.0f}s ({len(expected)} members behind); "
                             "is its consumer running? Segments can be run later: loyalty jobs segments")
        echo(f"waiting for tiers to catch up ({len(expected)} members behind)")
        await asyncio.sleep(1)


async def run_demo(api: Api, *, members: int, seed: int, now: datetime | None = None,
                   echo: Callable[[str], None] = print, wait_timeout: float = 120) -> dict[str, Any]:
    """Returns the analytics summary it printed."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    data = generate(members, seed, now)
    echo(f"demo: {len(data.members)} members ({', '.join(f'{n} {p}' for p, n in data.by_profile.items())}), "
         f"{len(data.purchases)} purchases over a year, {len(data.redemptions)} redemptions")
    await apply_program(api, demo_program(now),  # the changes' headlines; `loyalty apply` shows every field
                        echo=lambda line: None if line.startswith("    ") else echo(f"  {line}"))

    await _gather_limited([partial(api.send, "points", "PUT", f"/v1/members/{m.member_id}", m.body)
                           for m in data.members])
    echo(f"members enrolled ({time.monotonic() - started:.0f}s)")

    refused: list[str] = []
    spends = {m.member_id: m for m in data.members}
    for start in range(0, len(data.purchases), BATCH):
        batch = data.purchases[start:start + BATCH]
        answer = await api.send("points", "POST", "/v1/purchases/batch", {"purchases": batch})
        for body, result in zip(batch, answer["results"], strict=True):
            if result["status"] >= 400:  # not counted by tiers either
                spends[body["member_id"]].spend -= Decimal(body["total"])
                refused.append(f"{body['purchase_id']}: {result['body'].get('detail')}")
        echo(f"purchases {min(start + BATCH, len(data.purchases))}/{len(data.purchases)} "
             f"({time.monotonic() - started:.0f}s)")
    if refused:
        echo(f"{len(refused)} purchases refused, the first: {refused[0]}")

    await _tiers_caught_up(api, data, wait_timeout, echo)
    for body in data.redemptions:
        await api.request("rewards", "POST", "/v1/redemptions", json=body, ok_statuses=frozenset({409}))
    segments = await api.send("tiers", "POST", "/v1/jobs/segments")
    echo(f"segments computed for {segments['members']} members ({time.monotonic() - started:.0f}s)")

    summary: dict[str, Any] = await api.get("tiers", "/v1/analytics/summary")
    echo(f"members by tier: {summary['by_tier']}")
    echo(f"by value class: {summary['by_value_class']}")
    echo(f"by lifecycle: {summary['by_lifecycle']}")
    echo(f"top 20% of members make {(summary['pareto']['top_20pct_revenue_share'] or 0) * 100:.0f}% of revenue")
    await _campaigns(api, seed, now, echo)
    sample = data.members[0].member_id
    echo(f"try: GET {api.endpoints.tiers}/v1/members/{sample}/tier and /segment, "
         f"{api.endpoints.points}/v1/members/{sample}/balance")
    return summary


async def _campaigns(api: Api, seed: int, now: datetime, echo: Callable[[str], None]) -> None:
    """The lapsed come back (some of them), the goals are settled, and each campaign's figures printed: the
    win-back's holdout report, the goals reached, and what a proposed change would have cost."""
    lapsed = [m["member_id"] for m in await api.pages("points", "/v1/members", lifecycle="lapsed")]
    back = comebacks(lapsed, seed, now)
    for start in range(0, len(back), BATCH):
        await api.send("points", "POST", "/v1/purchases/batch", {"purchases": back[start:start + BATCH]})
    echo(f"win-back: {len(back)} of {len(lapsed)} lapsed members bought again today")
    run = await api.send("points", "POST", "/v1/jobs/goals")
    echo(f"goals settled: {run['reached']} reached now (the monthly goal's closed months, stamp cards filled)")

    report = await api.get("points", "/v1/earning-rules/demo-win-back/report")
    for name in ("treated", "control"):
        group = report[name]
        echo(f"  demo-win-back {name}: {group['members']} members, {group['purchases']} purchases, "
             f"spend {group['spend']}, {group['points']} points, {group['spend_per_member']} a member")
    interval = report["interval_95"]
    echo(f"  uplift of spend per member: {report['spend_per_member_uplift']}, 95% interval "
         f"{interval[0] if interval else '-'} to {interval[1] if interval else '-'}: "
         + ("the rule changed behaviour" if report["significant"] else "no proof it changed behaviour; "
            "it may only give points away"))
    for rule_id in ("demo-coffee-card", "demo-monthly-regular"):
        rule = await api.get("points", f"/v1/earning-rules/{rule_id}")
        echo(f"  {rule_id}: {rule['metric']} {rule['target']} a {rule['period']} period, reward {rule['reward']}")

    proposal = {"rules": [{"rule_id": "demo-pastry-double", "kind": "multiplier", "factor": "3",
                           "match": {"categories": ["pastry"]}}],
                "from": (now - timedelta(days=30)).isoformat(), "to": now.isoformat()}
    simulated = await api.send("points", "POST", "/v1/earning-rules/simulate", proposal)
    echo(f"simulation, pastry triple instead of double over the last 30 days: {simulated['purchases']} purchases, "
         f"{simulated['current']['points']} points now, {simulated['proposed']['points']} proposed, "
         f"liability {simulated['liability_value_delta']} USD more")
