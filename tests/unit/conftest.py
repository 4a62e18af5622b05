"""Fixtures of the EC2 handler unit tests: a CLC Cloud over a temp directory, and two accounts."""

from tests.unit.ec2wire import alice, bob, cloud  # noqa: F401 (fixtures)
