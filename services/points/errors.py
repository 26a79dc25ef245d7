"""The errors of points' use cases (the generic ones are in ``shared.errors``)."""

from __future__ import annotations

from shared.errors import error_type

MemberNotFound = error_type("MemberNotFound", 404, "member-not-found", "Member not found",
                            "No member 'C-1001'; enroll it with PUT /v1/members/C-1001.")
InsufficientPoints = error_type("InsufficientPoints", 422, "insufficient-points", "Not enough points",
                                "Member 'C-1001' has 40 available points; 100 are needed.")
RefundExceedsPurchase = error_type("RefundExceedsPurchase", 422, "refund-exceeds-purchase",
                                   "Refund exceeds the purchase",
                                   "Only 10.00 of purchase 'store-12:r-000123' is left to refund.")
CurrencyMismatch = error_type("CurrencyMismatch", 422, "currency-mismatch", "Currency does not match the program",
                              "The program runs in USD; this purchase is in EUR.")
MemberInactive = error_type("MemberInactive", 422, "member-inactive", "Member is not active",
                            "Member 'C-1001' is suspended and earns no points.")
IdentifierTaken = error_type("IdentifierTaken", 409, "identifier-taken", "Identifier held by another member",
                             "The card '6012-0001' is held by another member.")
HoldExpired = error_type("HoldExpired", 409, "hold-expired", "Hold expired",
                         "Hold 'store-12:h-000123' expired at 2026-11-20T10:29:00Z; its points are back.")
HoldNotActive = error_type("HoldNotActive", 409, "hold-not-active", "Hold is not active",
                           "Hold 'store-12:h-000123' was voided; a captured or voided hold does not change again.")
ReferralInvalid = error_type("ReferralInvalid", 422, "referral-invalid", "Referral code not accepted",
                             "No member has the referral code 'K7QX2M9PRT4W'.")
