"""clc.ec2.regions in-process over a real store, through the EC2 wire both ways, with stand-in
clusters answering DescribeResources: zones (and the cloud admin's ``verbose``), instance
types, account attributes."""

from types import SimpleNamespace

import pytest

from clc.cloud import Cloud
from clc.ec2 import HANDLERS, regions
from eucacore import ids, soap
from eucacore.awsapi.errors import AWSError
from eucacore.config import default_config
from euca2ools import output
from tests.unit.ec2wire import call, code, context

ALICE, ADMIN = "111111111111", "000000000001"


class FakeCluster:
    """A cluster controller's DescribeResources: per instance type, (free, max) from ``counts``,
    else what fits in ``cores`` cores; ``down`` makes it fail as an unreachable CC does."""

    def __init__(self, counts=None, cores=8, down=False):
        self.counts, self.cores, self.down, self.asked = counts or {}, cores, down, []

    def DescribeResources(self, instanceTypes):
        self.asked.append(instanceTypes)
        if self.down:
            raise soap.TransportError[1]("connection refused")
        resources = []
        for vm in instanceTypes:
            free, most = self.counts.get(vm["name"], (self.cores // vm["cores"],) * 2)
            resources.append(SimpleNamespace(instanceType=SimpleNamespace(**vm), availableInstances=free,
                                             maxInstances=most))
        return SimpleNamespace(resources=resources)


@pytest.fixture
def cloud(tmp_path):
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path), VNET_PUBLICIPS="10.0.0.1-10.0.0.10 10.0.1.7"))
    cloud.fake_clusters = {}
    cloud.cc = lambda cluster: cloud.fake_clusters[cluster["partition"]]
    yield cloud
    cloud.store.close()


def add_cluster(cloud, zone, fake, state="ENABLED", port=8774):
    with cloud.store.atomic() as db:
        db["components"].insert({"kind": "cluster", "name": f"cc-{zone}", "partition": zone, "host": "10.1.1.1",
                                 "port": port, "state": state, "last_seen": ids.now(), "registered": ids.now()})
    cloud.fake_clusters[zone] = fake
    return fake


@pytest.fixture
def alice(cloud):
    return context(cloud, ALICE)


@pytest.fixture
def admin(cloud):
    with cloud.store.atomic() as db:  # the cloud admin's account has no quotas
        db["accounts"].insert({"account_id": ADMIN, "name": "eucalyptus", "created": ids.now()})
    return context(cloud, ADMIN, cloud_admin=True)


# -- availability zones ------------------------------------------------------------------------------

@pytest.fixture
def two_zones(cloud):
    a = add_cluster(cloud, "zone-a", FakeCluster(counts={"m1.small": (4, 8), "c1.xlarge": (0, 1)}))
    b = add_cluster(cloud, "zone-b", FakeCluster(down=True), state="DISABLED", port=8775)
    return a, b


def zone_names(ctx, **params) -> list[str]:
    return [z["ZoneName"] for z in call(ctx, "DescribeAvailabilityZones", **params)["AvailabilityZones"]]


def test_zones_one_per_cluster(alice, two_zones):
    zones = call(alice, "DescribeAvailabilityZones")["AvailabilityZones"]
    assert [(z["ZoneName"], z["State"], z["ZoneId"]) for z in zones] == [
        ("zone-a", "available", "eucalyptus-zone-a"), ("zone-b", "unavailable", "eucalyptus-zone-b")]
    assert zones[0]["Messages"] == [{"Message": "10.1.1.1:8774"}] and zones[0]["RegionName"] == "eucalyptus"
    assert not any(c.asked for c in two_zones)  # the plain list asks no cluster anything


def test_zones_by_name_id_and_filter(alice, two_zones):
    assert zone_names(alice, ZoneNames=["zone-b"]) == ["zone-b"]
    assert zone_names(alice, ZoneIds=["eucalyptus-zone-a"]) == ["zone-a"]
    assert zone_names(alice, Filters=[{"Name": "state", "Values": ["available"]}]) == ["zone-a"]
    assert zone_names(alice, Filters=[{"Name": "zone-name", "Values": ["zone-*"]}]) == ["zone-a", "zone-b"]
    assert code(alice, "DescribeAvailabilityZones", ZoneNames=["zone-z"]) == "InvalidParameterValue"
    assert code(alice, "DescribeAvailabilityZones", Filters=[{"Name": "x", "Values": ["y"]}]) == \
        "InvalidParameterValue"
    assert code(alice, "DescribeAvailabilityZones", DryRun=True) == "DryRunOperation"


def test_verbose_lists_free_and_max_per_type(admin, two_zones):
    zones = call(admin, "DescribeAvailabilityZones", ZoneNames=["verbose"])["AvailabilityZones"]
    lines = output.format_availability_zones({"AvailabilityZones": zones})
    # As euca-describe-availability-zones verbose printed the original's answer.
    assert lines[:8] == [
        "AVAILABILITYZONE\tzone-a\tavailable\t10.1.1.1:8774",
        "AVAILABILITYZONE\t|- vm types\tfree / max   cpu   ram  disk\t",
        "AVAILABILITYZONE\t|- m1.small\t0004 / 0008   1    256     5\t",
        "AVAILABILITYZONE\t|- c1.medium\t0008 / 0008   1    256     5\t",
        "AVAILABILITYZONE\t|- m1.large\t0004 / 0004   2    512    10\t",
        "AVAILABILITYZONE\t|- m1.xlarge\t0004 / 0004   2   1024    10\t",
        "AVAILABILITYZONE\t|- c1.xlarge\t0000 / 0001   2   2048    10\t",
        "AVAILABILITYZONE\tzone-b\tunavailable\t10.1.1.1:8775",
    ]
    # A cluster the CLC could not reach shows nothing free, and is not asked (no wait on a dead host).
    assert lines[9:] == [f"AVAILABILITYZONE\t|- {t}\t{z}\t" for t, z in (
        ("m1.small", "0000 / 0000   1    256     5"), ("c1.medium", "0000 / 0000   1    256     5"),
        ("m1.large", "0000 / 0000   2    512    10"), ("m1.xlarge", "0000 / 0000   2   1024    10"),
        ("c1.xlarge", "0000 / 0000   2   2048    10"))]
    # One DescribeResources per cluster, naming every type at its current size.
    asked = two_zones[0].asked
    assert len(asked) == 1 and [vm["name"] for vm in asked[0]] == [
        "m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge"]
    assert two_zones[1].asked == []


def test_verbose_when_a_cluster_fails_to_answer(cloud, admin):
    add_cluster(cloud, "zone-c", FakeCluster(down=True))
    zones = call(admin, "DescribeAvailabilityZones", ZoneNames=["verbose"])["AvailabilityZones"]
    assert [z["State"] for z in zones[2:]] == [
        "0000 / 0000   1    256     5", "0000 / 0000   1    256     5", "0000 / 0000   2    512    10",
        "0000 / 0000   2   1024    10", "0000 / 0000   2   2048    10"]
    assert len(cloud.fake_clusters["zone-c"].asked) == 1


def test_verbose_follows_instance_type_properties(cloud, admin, two_zones):
    cloud.properties.modify("cloud.vmtypes.m1.small.memory", "128")
    cloud.properties.modify("cloud.vmtypes.m1.small.cpu", "4")
    zones = call(admin, "DescribeAvailabilityZones", ZoneNames=["verbose", "zone-a"])["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones][:3] == ["zone-a", "|- vm types", "|- m1.small"]
    assert zones[2]["State"] == "0004 / 0008   4    128     5"
    assert "zone-b" not in [z["ZoneName"] for z in zones]


def test_verbose_for_anyone_else_is_the_plain_list(alice, two_zones):
    assert zone_names(alice, ZoneNames=["verbose"]) == ["zone-a", "zone-b"]
    assert not any(c.asked for c in two_zones)


# -- instance types ----------------------------------------------------------------------------------

def type_names(ctx, **params) -> list[str]:
    return [t["InstanceType"] for t in call(ctx, "DescribeInstanceTypes", **params)["InstanceTypes"]]


def test_instance_types_in_aws_shape(alice):
    types = {t["InstanceType"]: t for t in call(alice, "DescribeInstanceTypes")["InstanceTypes"]}
    assert list(types) == ["m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge"]
    large = types["m1.large"]
    assert large["VCpuInfo"]["DefaultVCpus"] == 2 and large["MemoryInfo"]["SizeInMiB"] == 512
    assert large["InstanceStorageInfo"]["TotalSizeInGB"] == 10
    assert large["InstanceStorageInfo"]["Disks"] == [{"SizeInGB": 10, "Count": 1, "Type": "hdd"}]
    assert large["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64", "i386"]
    assert large["Hypervisor"] == "kvm" and large["CurrentGeneration"] is True
    assert large["SupportedRootDeviceTypes"] == ["instance-store"]
    assert large["SupportedVirtualizationTypes"] == ["hvm", "paravirtual"]
    assert large["InstanceStorageSupported"] is True and large["BareMetal"] is False


def test_instance_types_follow_properties(cloud, alice):
    cloud.properties.modify("cloud.vmtypes.c1.medium.memory", "768")
    medium = call(alice, "DescribeInstanceTypes", InstanceTypes=["c1.medium"])["InstanceTypes"][0]
    assert medium["MemoryInfo"]["SizeInMiB"] == 768


def test_instance_types_by_name(alice):
    assert type_names(alice, InstanceTypes=["m1.xlarge", "m1.small"]) == ["m1.small", "m1.xlarge"]
    with pytest.raises(AWSError) as info:
        call(alice, "DescribeInstanceTypes", InstanceTypes=["m1.small", "t2.nano"])
    assert info.value.code == "InvalidInstanceType" and "[t2.nano]" in info.value.message


@pytest.mark.parametrize("name,values,expected", [
    ("instance-type", ["m1.*"], ["m1.small", "m1.large", "m1.xlarge"]),
    ("vcpu-info.default-vcpus", ["1"], ["m1.small", "c1.medium"]),
    ("memory-info.size-in-mib", ["1024", "2048"], ["m1.xlarge", "c1.xlarge"]),
    ("instance-storage-info.total-size-in-gb", ["5"], ["m1.small", "c1.medium"]),
    ("processor-info.supported-architecture", ["i386"],
     ["m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge"]),
    ("current-generation", ["false"], []),
    ("hypervisor", ["kvm"], ["m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge"]),
])
def test_instance_type_filters(alice, name, values, expected):
    assert type_names(alice, Filters=[{"Name": name, "Values": values}]) == expected


def test_instance_type_unknown_filter(alice):
    assert code(alice, "DescribeInstanceTypes", Filters=[{"Name": "gpu", "Values": ["1"]}]) == \
        "InvalidParameterValue"


def test_instance_types_in_pages(alice):
    first = call(alice, "DescribeInstanceTypes", MaxResults=5)
    assert len(first["InstanceTypes"]) == 5 and "NextToken" not in first
    with alice.cloud.store.atomic() as db:
        for n in range(4):
            db["instance_types"].insert({"name": f"x{n}.big", "cores": 4, "memory": 4096, "disk": 0})
    seen, token, pages = [], None, 0
    while True:
        page = call(alice, "DescribeInstanceTypes", MaxResults=5, **({"NextToken": token} if token else {}))
        seen += [t["InstanceType"] for t in page["InstanceTypes"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 2 and len(seen) == 9 == len(set(seen))
    diskless = call(alice, "DescribeInstanceTypes", InstanceTypes=["x0.big"])["InstanceTypes"][0]
    assert "InstanceStorageInfo" not in diskless and diskless["InstanceStorageSupported"] is False
    assert code(alice, "DescribeInstanceTypes", MaxResults=4) == "InvalidParameterValue"
    assert code(alice, "DescribeInstanceTypes", MaxResults=101) == "InvalidParameterValue"
    assert code(alice, "DescribeInstanceTypes", NextToken="garbage!") == "InvalidPaginationToken"


# -- account attributes ------------------------------------------------------------------------------

def attributes(ctx, **params) -> dict[str, list[str]]:
    listed = call(ctx, "DescribeAccountAttributes", **params)["AccountAttributes"]
    return {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]] for a in listed}


def test_account_attributes_from_quotas(cloud, alice):
    cloud.properties.modify("cloud.quota.default.instances", "7")
    cloud.properties.modify("cloud.quota.default.addresses", "3")
    assert attributes(alice) == {
        "supported-platforms": ["EC2"], "default-vpc": ["none"], "max-instances": ["7"],
        "vpc-max-security-groups-per-interface": ["5"], "max-elastic-ips": ["3"], "vpc-max-elastic-ips": ["3"]}


def test_unlimited_quotas_show_the_clouds_capacity(cloud, alice, admin):
    add_cluster(cloud, "zone-a", FakeCluster(cores=6))
    add_cluster(cloud, "zone-b", FakeCluster(counts={"m1.small": (1, 4)}))
    add_cluster(cloud, "zone-c", FakeCluster(down=True))
    # max-instances: the most instances of the smallest type the clusters hold (6 + 4);
    # max-elastic-ips: the public IP pool (10.0.0.1-10.0.0.10 and 10.0.1.7).
    for ctx in (alice, admin):
        got = attributes(ctx, AttributeNames=["max-instances", "max-elastic-ips"])
        assert got == {"max-instances": ["10"], "max-elastic-ips": ["11"]}


def test_account_attribute_names(alice):
    assert attributes(alice, AttributeNames=["default-vpc"]) == {"default-vpc": ["none"]}
    assert code(alice, "DescribeAccountAttributes", AttributeNames=["colour"]) == "InvalidParameterValue"
    assert code(alice, "DescribeAccountAttributes", DryRun=True) == "DryRunOperation"


def test_handlers_are_registered():
    for action in ("DescribeRegions", "DescribeAvailabilityZones", "DescribeInstanceTypes",
                   "DescribeAccountAttributes"):
        assert HANDLERS[action] is regions.HANDLERS[action]
