"""walrus package."""
