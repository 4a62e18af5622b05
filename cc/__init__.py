"""cc package."""
