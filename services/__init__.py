"""The three services: points, rewards and tiers."""
