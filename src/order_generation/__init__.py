"""GlobeCo Order Generation Service: investment models and exact portfolio rebalancing."""
