"""`loyalty apply FILE --simulate --from --to`: the file's earning rules tried on the purchases of a range by
``POST /v1/earning-rules/simulate``, printed as a table; nothing is applied."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from ops.client import Api
from ops.program import ProgramFile


class NothingToSimulate(Exception):
    pass


def simulation_body(desired: ProgramFile, current_rule_ids: Iterable[str], start: str, end: str, *,
                    prune: bool = False) -> dict[str, Any]:
    """Every rule of the file (a stored one with its id is replaced, an unchanged one gives what it gives);
    with ``prune``, the stored rules the file does not list are removed, as `apply --prune` would delete them."""
    if desired.earning_rules is None:
        raise NothingToSimulate("the file has no earning_rules section to simulate")
    wanted = {rule.rule_id for rule in desired.earning_rules}
    return {"rules": [rule.model_dump(mode="json", exclude_none=True) for rule in desired.earning_rules],
            "remove": sorted(set(current_rule_ids) - wanted) if prune else [], "from": start, "to": end}


def _signed(value: int | Decimal) -> str:
    return f"{value:+,}" if value else "0"


def simulation_table(answer: dict[str, Any], start: str, end: str) -> list[str]:
    """The answer as the operator reads it: a line per rule (current and proposed points, the difference),
    the totals, the members whose points change and what the difference is worth."""
    header = ("rule", "change", "current", "proposed", "difference")
    rows = [(item["rule_id"], item.get("change") or "", f"{item['current_points']:,}", f"{item['points']:,}",
             _signed(item["points"] - item["current_points"])) for item in answer["by_rule"]]
    current, proposed = answer["current"]["points"], answer["proposed"]["points"]
    total = ("total", "", f"{current:,}", f"{proposed:,}", _signed(proposed - current))
    widths = [max(len(row[i]) for row in (header, *rows, total)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "  ".join("-" * width for width in widths)
    value = Decimal(answer["liability_value_delta"])
    out = [f"simulation of {answer['purchases']:,} purchases by {answer['members']:,} members from {start} to "
           f"{end}:", line(header), rule, *map(line, rows), rule, line(total),
           f"members whose points change: {answer['members_changed']:,} of {answer['members']:,}",
           f"liability: {'+' if value > 0 else ''}{value} {answer['currency']}"]
    if answer.get("skipped"):
        out.append(f"goal rules not simulated (settled per period): {', '.join(answer['skipped'])}")
    out.append("nothing applied (simulation)")
    return out


async def simulate_program(api: Api, desired: ProgramFile, start: str, end: str, *, prune: bool = False,
                           echo: Callable[[str], None] = print) -> dict[str, Any]:
    current = [rule["rule_id"] for rule in await api.pages("points", "/v1/earning-rules")] if prune else []
    body = simulation_body(desired, current, start, end, prune=prune)
    answer: dict[str, Any] = await api.send("points", "POST", "/v1/earning-rules/simulate", body)
    for text in simulation_table(answer, start, end):
        echo(text)
    return answer
