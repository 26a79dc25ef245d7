"""The errors of tiers' use cases (the generic ones are in ``shared.errors``)."""

from __future__ import annotations

from shared.errors import error_type

MemberNotFound = error_type("MemberNotFound", 404, "member-not-found", "Member not found",
                            "No member 'C-1001' is known to tiers yet (it learns members from points' events).")
