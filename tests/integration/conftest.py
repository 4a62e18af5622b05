"""Fixtures: one running cloud shared by the integration tests of a session."""

import pytest

from tests.cloudharness import Cloud


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("cloud"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def ec2(cloud):
    return cloud.client("ec2")


@pytest.fixture(scope="session")
def s3(cloud):
    return cloud.client("s3")
