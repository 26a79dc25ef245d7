"""tiers: tier definitions, each member's tier and qualification progress."""
