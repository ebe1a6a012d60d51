"""Dataset preparation and validation."""
