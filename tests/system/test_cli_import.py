"""`loyalty import` against the running services: bad rows end in the rejected file with the reason, a
repeated import records nothing twice, an import interrupted at the worst moment resumes without duplicates."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.client import Api, Endpoints
from ops.csv_rows import side_files
from ops.importer import import_file
from tests.support import ADMIN_KEY
from tests.system.cli_support import loyalty
from tests.system.harness import System

pytestmark = pytest.mark.system

NOW = datetime.now(UTC).replace(microsecond=0)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def moment(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def rejected_rows(source: Path) -> list[dict[str, str]]:
    with side_files(source)[0].open(newline="") as handle:
        return list(csv.DictReader(handle))


def ledger_purchase_ids(system: System, member_id: str) -> list[str]:
    with system.client("points") as points:
        items = points.get(f"/v1/members/{member_id}/ledger", params={"limit": 500}).json()["items"]
    return [e["purchase_id"] for e in items if e["kind"] == "earn"]


@pytest.fixture(scope="module")
def members(system: System, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Ten members imported from a file, for the purchase imports."""
    ids = [f"imp-{n}" for n in range(10)]
    source = write_csv(tmp_path_factory.mktemp("members") / "members.csv", ["member_id", "name", "email"],
                       [[member_id, f"Member {member_id}", f"{member_id}@example.com"] for member_id in ids])
    result = loyalty(system, "import", str(source), "--progress")
    assert result.exit_code == 0, result.output
    assert "members: 10 rows: 10 created, 0 updated, 0 rejected" in result.output
    return ids


def test_members_with_bad_rows(system: System, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "members.csv", ["member_id", "name", "email", "birth_date"], [
        ["good-1", "Ada", "ada@example.com", "1990-12-10"],
        ["bad id", "Bob", "", ""],
        ["good-2", "Cy", "not-an-email", ""],
        ["good-3", "Di", "", "1985-02-30"],
    ])
    result = loyalty(system, "import", str(source))
    assert result.exit_code == 0, result.output
    assert "1 created, 0 updated, 3 rejected" in result.output
    rows = rejected_rows(source)
    assert [(r["line"], r["member_id"]) for r in rows] == [("3", "bad id"), ("4", "good-2"), ("5", "good-3")]
    assert rows[0]["reason"].startswith("member_id: 'bad id' is not")
    assert rows[1]["reason"].startswith("email: ")
    assert rows[2]["reason"].startswith("birth_date: ")
    with system.client("points") as points:
        assert points.get("/v1/members/good-1").json()["birth_date"] == "1990-12-10"
    assert not side_files(source)[1].exists()  # no checkpoint once done


def test_purchases_with_bad_rows_and_a_repeat(system: System, members: list[str], tmp_path: Path) -> None:
    good = [[members[n % 10], moment(n + 1), f"{10 + n}.00", "", f"till-1:r-{n}"] for n in range(12)]
    source = write_csv(tmp_path / "purchases.csv", ["member_id", "occurred_at", "total", "category", "purchase_id"], [
        *good[:6],
        ["nobody", moment(1), "5.00", "", "till-1:r-x1"],
        [members[0], (NOW - timedelta(days=4000)).isoformat(), "5.00", "", "till-1:r-x2"],
        [members[0], moment(1), "five", "", ""],
        [members[0], moment(1), "5.00", "tobacco", "till-1:r-x3"],  # excluded category: accepted, 0 points
        *good[6:],
    ])
    result = loyalty(system, "import", str(source), "--batch-size", "5")
    assert result.exit_code == 0, result.output
    assert "purchases: 16 rows: 13 created, 0 already recorded, 3 rejected" in result.output
    reasons = {r["line"]: r["reason"] for r in rejected_rows(source)}
    assert reasons["8"].startswith("404 member-not-found")
    assert reasons["9"].startswith("422 validation-error: occurred_at:") and "days in the past" in reasons["9"]
    assert reasons["10"] == "total: 'five' is not a decimal amount"
    assert ledger_purchase_ids(system, members[0]).count("till-1:r-0") == 1

    again = loyalty(system, "import", str(source), "--batch-size", "5")
    assert again.exit_code == 0, again.output
    assert "purchases: 16 rows: 0 created, 13 already recorded, 3 rejected" in again.output
    assert len(rejected_rows(source)) == 3


def test_an_interrupted_import_resumes_without_duplicates(system: System, members: list[str],
                                                          tmp_path: Path) -> None:
    """Interrupted after the third batch was answered but before its checkpoint was written: the resumed
    run sends that batch again (its 9 purchases replayed thanks to the ids derived from the rows) and the rest
    once; the counts include the 20 rows settled before the interruption."""
    rows = [[members[n % 10], moment(n / 10 + 0.5), f"{n + 1}.25", "coffee"] for n in range(60)]
    rows.insert(25, ["nobody", moment(1), "1.00", ""])
    source = write_csv(tmp_path / "purchases.csv", ["member_id", "occurred_at", "total", "category"], rows)

    def interrupt(rows_done: int) -> None:
        if rows_done == 30:
            raise KeyboardInterrupt

    async def first_run() -> None:
        endpoints = Endpoints(system["points"].url, system["rewards"].url, system["tiers"].url)
        async with Api(endpoints, ADMIN_KEY) as api:
            await import_file(api, source, batch_size=10, on_sent=interrupt)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(first_run())
    checkpoint = side_files(source)[1]
    assert checkpoint.exists()
    assert len(rejected_rows(source)) == 0  # the nobody row's batch was not settled yet

    resumed = loyalty(system, "import", str(source), "--batch-size", "10")
    assert resumed.exit_code == 0, resumed.output
    assert "61 rows (resumed at row 21): 51 created, 9 already recorded, 1 rejected" in resumed.output
    assert [r["member_id"] for r in rejected_rows(source)] == ["nobody"]
    assert not checkpoint.exists()

    for member_id in members:
        earned = [p for p in ledger_purchase_ids(system, member_id) if p.startswith("csv-")]
        assert len(earned) == len(set(earned)) == 6, member_id
