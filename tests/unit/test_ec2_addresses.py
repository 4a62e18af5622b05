"""clc.ec2.addresses in-process: elastic IPs from the VNET_PUBLICIPS pool over a real store,
through the EC2 wire layer both ways, including concurrent allocation."""

import threading

import pytest

from clc.cloud import Cloud
from clc.ec2 import addresses
from eucacore import ids
from eucacore.awsapi.errors import AWSError
from eucacore.config import default_config
from tests.unit.test_ec2_volumes import ADMIN, ALICE, BOB, Ec2, add_instance, set_quota

POOL = "10.0.0.1-10.0.0.8 10.0.0.20 10.0.0.5-10.0.0.6 10.0.0.21"  # 10 addresses, two listed twice
POOL_ADDRESSES = [f"10.0.0.{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 20, 21)]


def make_cloud(root, pool=POOL):
    cloud = Cloud(default_config(EUCALYPTUS=str(root), VNET_PUBLICIPS=pool))
    with cloud.store.atomic() as db:
        db["accounts"].insert_all([{"account_id": a, "name": n, "created": ids.now()}
                                   for a, n in ((ALICE, "alice"), (BOB, "bob"), (ADMIN, "eucalyptus"))])
    return cloud


@pytest.fixture
def cloud(tmp_path):
    cloud = make_cloud(tmp_path)
    yield cloud
    cloud.store.close()


@pytest.fixture
def alice(cloud):
    return Ec2(cloud, ALICE)


@pytest.fixture
def bob(cloud):
    return Ec2(cloud, BOB)


def described(ec2, **params):
    return ec2("DescribeAddresses", **params)["Addresses"]


def public_ip_of(cloud, instance_id):
    return cloud.store.db["instances"].get(instance_id)["public_ip"]


# -- the pool ---------------------------------------------------------------------------------------

def test_the_pool_expands_ranges_in_order_each_address_once(cloud):
    assert list(addresses.public_ip_pool(cloud.config)) == POOL_ADDRESSES


def test_no_pool_configured_means_no_address(tmp_path):
    cloud = make_cloud(tmp_path, pool="")
    try:
        with pytest.raises(AWSError) as e:
            Ec2(cloud, ALICE)("AllocateAddress")
        assert (e.value.code, e.value.message) == ("AddressLimitExceeded", addresses.POOL_FULL)
    finally:
        cloud.store.close()


# -- AllocateAddress --------------------------------------------------------------------------------

def test_allocate_takes_the_first_free_address(cloud, alice):
    first = alice("AllocateAddress")
    assert (first["PublicIp"], first["Domain"]) == ("10.0.0.1", "standard")
    assert first["AllocationId"].startswith("eipalloc-")
    assert alice("AllocateAddress", Domain="vpc")["PublicIp"] == "10.0.0.2"
    assert [a["PublicIp"] for a in described(alice)] == ["10.0.0.1", "10.0.0.2"]
    assert described(alice, PublicIps=["10.0.0.1"]) == [{"PublicIp": "10.0.0.1", "Domain": "standard",
                                                         "AllocationId": first["AllocationId"]}]


def test_allocate_a_chosen_address(cloud, alice, bob):
    assert alice("AllocateAddress", Address="10.0.0.20")["PublicIp"] == "10.0.0.20"
    assert bob.error("AllocateAddress", Address="10.0.0.20") == "InvalidIPAddress.InUse"
    assert bob.error("AllocateAddress", Address="192.168.7.7") == "InvalidAddress.NotFound"
    assert bob.error("AllocateAddress", Address="not-an-ip") == "InvalidParameterValue"


@pytest.mark.parametrize("params,code", [
    ({"Domain": "classic"}, "InvalidParameterValue"),
    ({"PublicIpv4Pool": "ipv4pool-ec2-1"}, "InvalidParameterValue"),
    ({"NetworkBorderGroup": "us-east-1"}, "InvalidParameterValue"),
    ({"TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}]},
     "InvalidParameterValue"),
    ({"DryRun": True}, "DryRunOperation"),
])
def test_allocate_refusals_allocate_nothing(cloud, alice, params, code):
    assert alice.error("AllocateAddress", **params) == code
    assert cloud.store.db["addresses"].count == 0


def test_the_pool_runs_out(cloud, alice, bob):
    for _ in range(5):
        alice("AllocateAddress")
        bob("AllocateAddress")
    with pytest.raises(AWSError) as e:
        alice("AllocateAddress")
    assert (e.value.code, e.value.message) == ("AddressLimitExceeded",
                                               "The maximum number of addresses has been reached.")
    alice("ReleaseAddress", PublicIp="10.0.0.3")
    assert bob("AllocateAddress")["PublicIp"] == "10.0.0.3"


def test_addresses_quota(cloud, alice):
    set_quota(cloud, ALICE, addresses=1)
    allocation_id = alice("AllocateAddress")["AllocationId"]
    assert alice.error("AllocateAddress") == "AddressLimitExceeded"
    alice("ReleaseAddress", AllocationId=allocation_id)
    alice("AllocateAddress")


def test_concurrent_allocations_never_share_an_address(cloud):
    tenants = [Ec2(cloud, ALICE if n % 2 else BOB) for n in range(20)]
    start = threading.Barrier(len(tenants))
    got, refused, unexpected = [], [], []

    def allocate(ec2):
        start.wait()
        try:
            got.append(ec2("AllocateAddress")["PublicIp"])
        except AWSError as e:
            (refused if e.code == "AddressLimitExceeded" else unexpected).append(e)
        except Exception as e:  # noqa: BLE001 (the assertion below names it)
            unexpected.append(e)
        finally:
            cloud.store.close()  # this thread's connection

    threads = [threading.Thread(target=allocate, args=(ec2,)) for ec2 in tenants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert unexpected == []
    assert sorted(got, key=POOL_ADDRESSES.index) == POOL_ADDRESSES
    assert len(refused) == 10
    assert cloud.store.db["addresses"].count == 10


# -- AssociateAddress / DisassociateAddress ------------------------------------------------------------

def test_associate_records_the_instances_public_address(cloud, alice):
    address = alice("AllocateAddress")
    instance_id = add_instance(cloud, ALICE, private_ip="172.16.0.9")
    assert alice.error("AssociateAddress", PublicIp=address["PublicIp"], InstanceId=instance_id,
                       DryRun=True) == "DryRunOperation"
    association_id = alice("AssociateAddress", PublicIp=address["PublicIp"], InstanceId=instance_id)["AssociationId"]
    assert association_id.startswith("eipassoc-")
    assert public_ip_of(cloud, instance_id) == address["PublicIp"]
    assert described(alice) == [{"PublicIp": address["PublicIp"], "AllocationId": address["AllocationId"],
                                 "Domain": "standard", "InstanceId": instance_id, "AssociationId": association_id,
                                 "PrivateIpAddress": "172.16.0.9"}]
    [reservation] = alice("DescribeInstances", InstanceIds=[instance_id])["Reservations"]
    assert reservation["Instances"][0]["PublicIpAddress"] == address["PublicIp"]
    # Associating again with the same instance changes nothing.
    assert alice("AssociateAddress", AllocationId=address["AllocationId"],
                 InstanceId=instance_id)["AssociationId"] == association_id
    alice("DisassociateAddress", AssociationId=association_id)
    assert public_ip_of(cloud, instance_id) == ""
    assert "InstanceId" not in described(alice)[0]
    alice("DisassociateAddress", PublicIp=address["PublicIp"])  # not associated: nothing to do
    assert alice.error("DisassociateAddress", AssociationId=association_id) == "InvalidAssociationID.NotFound"


def test_reassociation_moves_the_address_and_replaces_the_instances_other(cloud, alice):
    first, second = alice("AllocateAddress")["PublicIp"], alice("AllocateAddress")["PublicIp"]
    one, two = add_instance(cloud, ALICE), add_instance(cloud, ALICE)
    alice("AssociateAddress", PublicIp=first, InstanceId=one)
    moved = alice("AssociateAddress", PublicIp=first, InstanceId=two)["AssociationId"]
    assert (public_ip_of(cloud, one), public_ip_of(cloud, two)) == ("", first)
    assert described(alice, PublicIps=[first])[0]["AssociationId"] == moved
    alice("AssociateAddress", PublicIp=second, InstanceId=two)
    assert public_ip_of(cloud, two) == second
    assert "InstanceId" not in described(alice, PublicIps=[first])[0]
    assert [a["PublicIp"] for a in described(alice, Filters=[{"Name": "instance-id", "Values": [two]}])] == [second]


def test_associate_refusals(cloud, alice, bob):
    mine = alice("AllocateAddress")
    theirs = bob("AllocateAddress")
    running = add_instance(cloud, ALICE)

    def associate(**params):
        return alice.error("AssociateAddress", **params)

    assert associate(PublicIp=mine["PublicIp"], InstanceId=add_instance(cloud, ALICE, state="pending")) == \
        "IncorrectInstanceState"
    assert associate(PublicIp=mine["PublicIp"], InstanceId=add_instance(cloud, BOB)) == "InvalidInstanceID.NotFound"
    assert associate(PublicIp=theirs["PublicIp"], InstanceId=running) == "InvalidAddress.NotFound"
    assert associate(PublicIp="10.0.0.99", InstanceId=running) == "InvalidAddress.NotFound"
    assert associate(AllocationId=theirs["AllocationId"], InstanceId=running) == "InvalidAllocationID.NotFound"
    assert associate(PublicIp=mine["PublicIp"], AllocationId=mine["AllocationId"], InstanceId=running) == \
        "InvalidParameterCombination"
    assert associate(InstanceId=running) == "MissingParameter"
    assert associate(PublicIp=mine["PublicIp"]) == "MissingParameter"
    assert associate(PublicIp=mine["PublicIp"], InstanceId=running, NetworkInterfaceId="eni-1") == \
        "InvalidParameterValue"
    assert associate(PublicIp=mine["PublicIp"], InstanceId=running, PrivateIpAddress="10.1.1.1") == \
        "InvalidParameterValue"
    assert public_ip_of(cloud, running) == ""
    bob_instance = add_instance(cloud, BOB)
    association_id = bob("AssociateAddress", PublicIp=theirs["PublicIp"], InstanceId=bob_instance)["AssociationId"]
    assert alice.error("DisassociateAddress", AssociationId=association_id) == "InvalidAssociationID.NotFound"
    assert alice.error("DisassociateAddress", PublicIp=theirs["PublicIp"]) == "InvalidAddress.NotFound"
    assert public_ip_of(cloud, bob_instance) == theirs["PublicIp"]


# -- ReleaseAddress ---------------------------------------------------------------------------------

def test_release_disassociates_first(cloud, alice, bob):
    address = alice("AllocateAddress", TagSpecifications=[{"ResourceType": "elastic-ip",
                                                           "Tags": [{"Key": "Name", "Value": "web"}]}])
    assert described(alice)[0]["Tags"] == [{"Key": "Name", "Value": "web"}]
    instance_id = add_instance(cloud, ALICE)
    alice("AssociateAddress", AllocationId=address["AllocationId"], InstanceId=instance_id)
    assert bob.error("ReleaseAddress", PublicIp=address["PublicIp"]) == "InvalidAddress.NotFound"
    assert bob.error("ReleaseAddress", AllocationId=address["AllocationId"]) == "InvalidAllocationID.NotFound"
    assert alice.error("ReleaseAddress", PublicIp=address["PublicIp"], DryRun=True) == "DryRunOperation"
    alice("ReleaseAddress", PublicIp=address["PublicIp"])
    assert described(alice) == [] and public_ip_of(cloud, instance_id) == ""
    assert cloud.store.db["tags"].count == 0
    assert alice.error("ReleaseAddress", AllocationId=address["AllocationId"]) == "InvalidAllocationID.NotFound"
    assert bob("AllocateAddress")["PublicIp"] == address["PublicIp"]


# -- DescribeAddresses --------------------------------------------------------------------------------

def test_describe_addresses_ids_and_filters(cloud, alice, bob):
    first = alice("AllocateAddress", TagSpecifications=[{"ResourceType": "elastic-ip",
                                                         "Tags": [{"Key": "role", "Value": "front"}]}])
    second = alice("AllocateAddress")
    theirs = bob("AllocateAddress")
    instance_id = add_instance(cloud, ALICE, private_ip="172.16.3.3")
    association_id = alice("AssociateAddress", PublicIp=second["PublicIp"], InstanceId=instance_id)["AssociationId"]

    def only(name, *values):
        return [a["PublicIp"] for a in described(alice, Filters=[{"Name": name, "Values": list(values)}])]

    assert only("allocation-id", first["AllocationId"]) == [first["PublicIp"]]
    assert only("public-ip", "10.0.0.*") == [first["PublicIp"], second["PublicIp"]]
    assert only("association-id", association_id) == [second["PublicIp"]]
    assert only("association-id", "*") == [second["PublicIp"]]
    assert only("instance-id", instance_id) == [second["PublicIp"]]
    assert only("private-ip-address", "172.16.3.3") == [second["PublicIp"]]
    assert only("domain", "standard") == [first["PublicIp"], second["PublicIp"]]
    assert only("tag:role", "front") == [first["PublicIp"]] == only("tag-key", "role")
    assert alice.error("DescribeAddresses", Filters=[{"Name": "owner-id", "Values": [ALICE]}]) == \
        "InvalidParameterValue"
    assert [a["PublicIp"] for a in described(alice, AllocationIds=[second["AllocationId"]])] == [second["PublicIp"]]
    assert alice.error("DescribeAddresses", PublicIps=[theirs["PublicIp"]]) == "InvalidAddress.NotFound"
    assert alice.error("DescribeAddresses", AllocationIds=[theirs["AllocationId"]]) == \
        "InvalidAllocationID.NotFound"
    assert alice.error("DescribeAddresses", DryRun=True) == "DryRunOperation"
    admin = Ec2(cloud, ADMIN, cloud_admin=True)
    assert described(admin) == []
    assert [a["PublicIp"] for a in described(admin, PublicIps=["verbose"])] == \
        sorted([first["PublicIp"], second["PublicIp"], theirs["PublicIp"]], key=POOL_ADDRESSES.index)


def test_a_terminated_instance_loses_its_address_but_the_account_keeps_it(cloud, alice):
    address = alice("AllocateAddress")
    instance_id = add_instance(cloud, ALICE)
    alice("AssociateAddress", PublicIp=address["PublicIp"], InstanceId=instance_id)
    addresses.disassociate_instance(cloud, instance_id)
    assert public_ip_of(cloud, instance_id) == ""
    assert described(alice) == [{"PublicIp": address["PublicIp"], "AllocationId": address["AllocationId"],
                                 "Domain": "standard"}]
