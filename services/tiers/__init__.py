"""tiers: tier definitions, each member's tier and qualification progress, customer segments and analytics."""
