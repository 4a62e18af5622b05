"""nc package."""
