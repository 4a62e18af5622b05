"""euca2ools package."""
