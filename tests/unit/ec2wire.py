"""EC2 handlers called in process through the wire layer both ways, as boto3 would see them:
botocore's serializer into our parser, the handler, our serializer into botocore's parser."""

import botocore.parsers
import botocore.serialize
import pytest

from clc.cloud import RequestContext
from clc.ec2 import HANDLERS
from eucacore.awsapi.ec2 import Ec2Protocol
from eucacore.awsapi.errors import AWSError
from eucacore.principal import Principal

PROTOCOL = Ec2Protocol()
SERIALIZER = botocore.serialize.create_serializer("ec2", include_validation=False)
PARSER = botocore.parsers.create_parser("ec2")


def context(cloud, account_id: str, cloud_admin: bool = False) -> RequestContext:
    """A request of the admin user of ``account_id`` (the cloud admin's, with ``cloud_admin``)."""
    principal = Principal(access_key="AKI", secret_key="s", account_id=account_id, user_id=f"u-{account_id}",
                          is_account_admin=True, is_cloud_admin=cloud_admin)
    return RequestContext(cloud, principal, "req-1")


def call(ctx, operation: str, **params) -> dict:
    """``operation`` as boto3 would send it, and the answer as boto3 would read it; an AWSError
    as the handler raised it."""
    model = PROTOCOL.service_model.operation_model(operation)
    body = SERIALIZER.serialize_to_request(params, model)["body"]
    action, request = PROTOCOL.parse({name: str(value) for name, value in body.items()})
    xml = PROTOCOL.serialize(action, HANDLERS[action](ctx, request) or {}, "req-1")
    out = PARSER.parse({"body": xml, "headers": {}, "status_code": 200}, model.output_shape)
    out.pop("ResponseMetadata", None)
    return out


def code(ctx, operation: str, **params) -> str:
    """The AWS error code of a call that must fail."""
    with pytest.raises(AWSError) as e:
        call(ctx, operation, **params)
    return e.value.code


class Ec2:
    """One principal's EC2: ``ec2("DescribeVolumes", ...)``, ``ec2.error("DeleteVolume", ...)``."""

    def __init__(self, cloud, account_id: str, cloud_admin: bool = False):
        self.ctx = context(cloud, account_id, cloud_admin)
        self.account_id = account_id

    def __call__(self, action: str, **params) -> dict:
        return call(self.ctx, action, **params)

    def error(self, action: str, **params) -> str:
        return code(self.ctx, action, **params)


ALICE, BOB = "111111111111", "222222222222"


@pytest.fixture
def cloud(tmp_path):
    """A CLC's Cloud over a fresh state directory (no daemons)."""
    from clc.cloud import Cloud
    from eucacore.config import default_config
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path)))
    yield cloud
    cloud.store.close()


@pytest.fixture
def alice(cloud):
    return context(cloud, ALICE)


@pytest.fixture
def bob(cloud):
    return context(cloud, BOB)
