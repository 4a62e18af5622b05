"""Elastic IP addresses with boto3 against the live daemons.

The CLC reads its pool (VNET_PUBLICIPS) from its configuration when it starts, and the
shared harness cloud configures none, so these tests run a cloud of their own with a
pool of three addresses.
"""

import botocore.exceptions
import pytest

from eucacore.policy import quota_policy
from tests.cloudharness import register_image, running_cloud, wait_for

pytestmark = pytest.mark.integration

POOL = ["10.99.0.1", "10.99.0.2", "10.99.0.3"]


def _error(call, **params) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**params)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def _instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


@pytest.fixture(scope="module")
def eip_cloud(tmp_path_factory):
    with running_cloud(tmp_path_factory.mktemp("eip-cloud"), VNET_PUBLICIPS=f"{POOL[0]}-{POOL[-1]}") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def tenant(eip_cloud):
    return eip_cloud.new_account("eip-tenant")


@pytest.fixture(scope="module")
def instances(tenant):
    """Two running instances of the tenant."""
    ec2, s3 = tenant.client("ec2"), tenant.client("s3")
    image_id = register_image(ec2, s3, "eip-images", "eip-image")
    run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2)
    instance_ids = [i["InstanceId"] for i in run["Instances"]]
    wait_for(lambda: all(_instance(ec2, i)["State"]["Name"] == "running" for i in instance_ids),
             timeout=60, what="two running instances")
    yield instance_ids
    ec2.terminate_instances(InstanceIds=instance_ids)


def test_allocate_associate_move_release(tenant, instances):
    ec2 = tenant.client("ec2")
    one, two = instances
    address = ec2.allocate_address(Domain="vpc")
    public_ip, allocation_id = address["PublicIp"], address["AllocationId"]
    assert public_ip in POOL and allocation_id.startswith("eipalloc-")
    association_id = ec2.associate_address(AllocationId=allocation_id, InstanceId=one)["AssociationId"]
    assert _instance(ec2, one)["PublicIpAddress"] == public_ip
    [described] = ec2.describe_addresses(PublicIps=[public_ip])["Addresses"]
    assert (described["InstanceId"], described["AssociationId"]) == (one, association_id)
    # Associating with another instance moves the address.
    ec2.associate_address(PublicIp=public_ip, InstanceId=two)
    assert "PublicIpAddress" not in _instance(ec2, one)
    assert _instance(ec2, two)["PublicIpAddress"] == public_ip
    assert [a["PublicIp"] for a in ec2.describe_addresses(
        Filters=[{"Name": "instance-id", "Values": [two]}])["Addresses"]] == [public_ip]
    ec2.disassociate_address(PublicIp=public_ip)
    assert "PublicIpAddress" not in _instance(ec2, two)
    # Releasing an associated address disassociates it first.
    ec2.associate_address(PublicIp=public_ip, InstanceId=one)
    ec2.release_address(AllocationId=allocation_id)
    assert "PublicIpAddress" not in _instance(ec2, one)
    assert ec2.describe_addresses()["Addresses"] == []
    assert _error(ec2.release_address, AllocationId=allocation_id)[0] == "InvalidAllocationID.NotFound"


def test_another_accounts_address_answers_as_missing(eip_cloud, tenant, instances):
    ec2 = tenant.client("ec2")
    other = eip_cloud.new_account("eip-stranger").client("ec2")
    theirs = other.allocate_address()
    try:
        assert ec2.describe_addresses()["Addresses"] == []
        assert _error(ec2.describe_addresses, PublicIps=[theirs["PublicIp"]])[0] == "InvalidAddress.NotFound"
        assert _error(ec2.describe_addresses, AllocationIds=[theirs["AllocationId"]])[0] == \
            "InvalidAllocationID.NotFound"
        assert _error(ec2.associate_address, PublicIp=theirs["PublicIp"], InstanceId=instances[0])[0] == \
            "InvalidAddress.NotFound"
        assert _error(ec2.release_address, PublicIp=theirs["PublicIp"])[0] == "InvalidAddress.NotFound"
        assert _error(other.associate_address, PublicIp=theirs["PublicIp"], InstanceId=instances[0])[0] == \
            "InvalidInstanceID.NotFound"
    finally:
        other.release_address(AllocationId=theirs["AllocationId"])


def test_the_pool_runs_out(eip_cloud, tenant):
    ec2 = tenant.client("ec2")
    allocated = [ec2.allocate_address()["AllocationId"] for _ in POOL]
    try:
        assert _error(ec2.allocate_address) == ("AddressLimitExceeded",
                                                "The maximum number of addresses has been reached.")
    finally:
        for allocation_id in allocated:
            ec2.release_address(AllocationId=allocation_id)
    ec2.release_address(AllocationId=ec2.allocate_address()["AllocationId"])


def test_addresses_quota(eip_cloud):
    ec2 = eip_cloud.new_account("eip-quota").client("ec2")
    eip_cloud.client("euare").put_account_policy(AccountName="eip-quota", PolicyName="quota",
                                                 PolicyDocument=quota_policy({"addresses": 1}))
    allocation_id = ec2.allocate_address()["AllocationId"]
    assert _error(ec2.allocate_address)[0] == "AddressLimitExceeded"
    assert len(ec2.describe_addresses()["Addresses"]) == 1
    ec2.release_address(AllocationId=allocation_id)
