"""How clusters enter and leave the fleet across runs: retiring, removal, the last run's state."""
