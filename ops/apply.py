"""`loyalty apply`: read the current program through the API, plan the changes, make only those."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ops.client import Api
from ops.program import (
    Current,
    Plan,
    ProgramFile,
    current_program,
    current_reward,
    current_rule,
    current_tiers,
    plan_changes,
)


async def read_current(api: Api, desired: ProgramFile) -> Current:
    """Only the sections the file manages are read, so a file of rewards alone needs only rewards up."""

    async def nothing() -> None:
        return None

    program, rules, tiers, rewards = await asyncio.gather(
        api.get("points", "/v1/program") if desired.program is not None else nothing(),
        api.pages("points", "/v1/earning-rules") if desired.earning_rules is not None else nothing(),
        api.get("tiers", "/v1/tiers") if desired.tiers is not None else nothing(),
        api.pages("rewards", "/v1/rewards") if desired.rewards is not None else nothing(),
    )
    return Current(
        program=current_program(program) if program else None,
        rules={r["rule_id"]: current_rule(r) for r in rules or ()},
        tiers=current_tiers(tiers) if tiers else None,
        rewards={r["reward_id"]: current_reward(r) for r in rewards or ()},
    )


async def apply_program(api: Api, desired: ProgramFile, *, dry_run: bool = False, prune: bool = False,
                        echo: Callable[[str], None] = print) -> Plan:
    """Prints the plan; unless ``dry_run`` (or a conflict), makes its writes in order: program and rules
    first, then tiers, then rewards (which may name a tier as ``min_tier``)."""
    plan = plan_changes(desired, await read_current(api, desired), prune=prune)
    for conflict in plan.conflicts:
        echo(f"conflict: {conflict}")
    for change in plan.changes:
        echo(change.describe())
    for kept in plan.kept:
        echo(f"{kept}: on the server, not in the file; kept (--prune removes it)")
    if not plan.changes:
        echo("no changes")
        return plan
    if dry_run or plan.conflicts:
        echo(f"{len(plan.changes)} changes not made" + (" (dry run)" if dry_run else " (resolve the conflicts)"))
        return plan
    for change in plan.changes:
        # A retried DELETE whose first attempt landed answers 404: the rule is gone, as wanted.
        gone = frozenset({404}) if change.method == "DELETE" else frozenset()
        await api.request(change.service, change.method, change.path, json=change.body, ok_statuses=gone)
    echo(f"{len(plan.changes)} changes made")
    return plan
