"""Fixtures: one running cloud shared by the integration tests of a session."""

import pytest

from tests.cloudharness import running_cloud


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    with running_cloud(tmp_path_factory.mktemp("cloud")) as c:
        yield c


@pytest.fixture(scope="session")
def ec2(cloud):
    return cloud.client("ec2")


@pytest.fixture(scope="session")
def s3(cloud):
    return cloud.client("s3")
