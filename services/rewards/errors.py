"""The errors of rewards' use cases (the generic ones are in ``shared.errors``)."""

from __future__ import annotations

from shared.errors import error_type

RewardNotFound = error_type("RewardNotFound", 404, "reward-not-found", "Reward not found", "No reward 'cup'.")
OutOfStock = error_type("OutOfStock", 409, "out-of-stock", "Out of stock", "Reward 'cup' has 0 units left; 1 asked.")
TierTooLow = error_type("TierTooLow", 409, "tier-too-low", "Tier too low", "Reward 'cup' needs tier 'silver'.")
LimitReached = error_type("LimitReached", 409, "limit-reached", "Limit reached",
                          "Member 'C-1001' holds 2 of reward 'cup', the most one member may.")
RewardUnavailable = error_type("RewardUnavailable", 409, "reward-unavailable", "Reward unavailable",
                               "Reward 'cup' is not active.")
VoucherAlreadyUsed = error_type("VoucherAlreadyUsed", 409, "voucher-already-used", "Voucher already used",
                                "Voucher '7KQ2M-X9TRB-4HWNC' was already used at 2026-11-21T12:00:00Z.")
