"""`loyalty import`'s pure half: which file it is, rows to bodies or reasons, ids that survive a re-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.csv_rows import (
    Checkpoint,
    Rejected,
    Tally,
    check_header,
    derived_purchase_id,
    detect_kind,
    member_card,
    member_request,
    purchase_body,
    rejection_reason,
    side_files,
)

ROW = {"member_id": "C-1", "occurred_at": "2026-11-20T10:15:00Z", "total": "12.50", "store_id": "store-1"}


class TestHeader:
    def test_kind_is_told_by_the_columns(self) -> None:
        assert detect_kind(["member_id", "occurred_at", "total"]) == "purchases"
        assert detect_kind(["member_id", "name"]) == "members"
        with pytest.raises(Rejected):
            detect_kind(["sku", "price"])

    def test_unknown_and_missing_columns_are_named(self) -> None:
        with pytest.raises(Rejected, match="unknown columns colour; missing columns total"):
            check_header(["member_id", "occurred_at", "colour"], "purchases")
        check_header(["member_id", "email"], "members")


class TestMembers:
    def test_empty_cells_leave_fields_alone(self) -> None:
        assert member_request({"member_id": "C-1", "name": " Ada ", "email": "", "phone": None}) == (
            "C-1", {"name": "Ada"})

    def test_bad_cells_are_rejected_with_the_column(self) -> None:
        with pytest.raises(Rejected, match=r"^birth_date: "):
            member_request({"member_id": "C-1", "birth_date": "yesterday"})
        with pytest.raises(Rejected, match=r"^member_id: 'C 1' is not"):
            member_request({"member_id": "C 1"})
        with pytest.raises(Rejected, match=r"^member_id: missing"):
            member_request({"member_id": ""})


class TestPurchases:
    def test_a_row_becomes_the_purchase_body(self) -> None:
        body = purchase_body({**ROW, "purchase_id": "till-1:r-9"}, "USD")
        assert body == {"purchase_id": "till-1:r-9", "member_id": "C-1", "occurred_at": "2026-11-20T10:15:00Z",
                        "currency": "USD", "total": "12.50", "store_id": "store-1"}

    def test_a_category_makes_one_line(self) -> None:
        body = purchase_body({**ROW, "category": "pastry", "currency": "EUR"}, "USD")
        assert body["currency"] == "EUR"
        assert body["lines"] == [{"sku": "pastry", "category": "pastry", "quantity": 1, "unit_price": "12.50"}]

    def test_the_derived_id_is_stable_and_tells_rows_apart(self) -> None:
        first = purchase_body(ROW, "USD")["purchase_id"]
        assert first == purchase_body(dict(ROW), "USD")["purchase_id"]
        assert first.startswith("csv-") and len(first) <= 64
        assert first != purchase_body({**ROW, "total": "12.51"}, "USD")["purchase_id"]
        assert derived_purchase_id({"member_id": "a", "total": "1"}) != derived_purchase_id({"member_id": "a1"})

    @pytest.mark.parametrize(("cells", "reason"), [
        ({"occurred_at": "2026-11-20T10:15:00"}, "occurred_at: .* with an offset"),
        ({"occurred_at": ""}, "occurred_at: missing"),
        ({"total": "twelve"}, "total: 'twelve' is not a decimal"),
        ({"total": "-1"}, "total: '-1' is not an amount of zero or more"),
        ({"total": "NaN"}, "total: 'NaN' is not an amount"),
        ({"purchase_id": "r 1"}, "purchase_id: 'r 1' is not"),
    ])
    def test_rows_that_cannot_be_sent(self, cells: dict[str, str], reason: str) -> None:
        with pytest.raises(Rejected, match=reason):
            purchase_body({**ROW, **cells}, "USD")


def test_rejection_reason_reads_the_problem() -> None:
    assert rejection_reason(404, {"type": "/problems/member-not-found", "title": "Member not found",
                                   "detail": "No member 'C-9'."}) == "404 member-not-found: No member 'C-9'."
    problem = {"type": "/problems/validation-error", "detail": "...", "errors": [
        {"loc": ["body", "purchases", 3, "occurred_at"], "msg": "Value error, is more than 3650 days in the past"}]}
    assert rejection_reason(422, problem) == (
        "422 validation-error: occurred_at: Value error, is more than 3650 days in the past")


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    rejected, checkpoint_path = side_files(tmp_path / "p.csv")
    assert (rejected.name, checkpoint_path.name) == ("p.csv.rejected.csv", "p.csv.checkpoint.json")
    assert Checkpoint.load(checkpoint_path) is None
    Checkpoint(source_size=100, rows_done=40, rejected_bytes=77, tally=Tally(30, 8, 2)).save(checkpoint_path)
    assert Checkpoint.load(checkpoint_path) == Checkpoint(100, 40, 77, Tally(30, 8, 2))


class TestMemberCard:
    def test_the_card_is_not_part_of_the_member_body(self) -> None:
        row = {"member_id": "C-1", "name": "Ada", "card": " 6012-0001 "}
        assert member_request(row) == ("C-1", {"name": "Ada"})
        assert member_card(row) == "6012-0001"
        assert member_card({"member_id": "C-1", "card": " "}) is None
        assert member_card({"member_id": "C-1"}) is None
        check_header(["member_id", "name", "card"], "members")

    def test_a_card_that_cannot_be_sent_is_rejected(self) -> None:
        with pytest.raises(Rejected, match=r"^card: "):
            member_card({"member_id": "C-1", "card": "a/b"})
        with pytest.raises(Rejected, match=r"^card: more than 254"):
            member_card({"member_id": "C-1", "card": "9" * 255})
