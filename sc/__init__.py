"""sc package."""
