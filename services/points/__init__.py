"""points: members, purchases and refunds, the points ledger and balances."""
