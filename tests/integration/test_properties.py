"""Cloud properties (DescribeProperties / ModifyPropertyValue) against the live CLC, and their effect."""

import contextlib

import botocore.exceptions
import pytest

from eucacore.policy import quota_policy
from tests.cloudharness import register_image, wait_for

pytestmark = pytest.mark.integration

#: The instance types' sizes (cpu, memory MiB, disk GiB) a new cloud starts with.
VMTYPES = {"m1.small": (1, 256, 5), "c1.medium": (1, 256, 5), "m1.large": (2, 512, 10),
           "m1.xlarge": (2, 1024, 10), "c1.xlarge": (2, 2048, 10)}


def _code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def _values(properties, *names: str) -> dict[str, str]:
    described = properties.describe_properties(**({"Properties": list(names)} if names else {}))
    return {p["Name"]: p["Value"] for p in described["Properties"]}


def _modify(properties, **params) -> dict:
    reply = properties.modify_property_value(**params)
    reply.pop("ResponseMetadata")
    return reply


@contextlib.contextmanager
def changed(properties, name: str, value: str):
    """``name`` set to ``value`` for the block, then back to what it was."""
    old = _values(properties, name)[name]
    _modify(properties, Name=name, Value=value)
    try:
        yield old
    finally:
        _modify(properties, Name=name, Value=old)


@pytest.fixture(scope="module")
def properties(cloud):
    return cloud.client("properties")


def test_describe_all_and_by_name(properties):
    everything = properties.describe_properties()["Properties"]
    names = [p["Name"] for p in everything]
    assert len(names) == len(set(names))
    assert {"cloud.cluster.polling_frequency", "cloud.vmstate.terminated_time", "cloud.vmstate.instance_timeout",
            "cloud.quota.default.instances", "walrus.storagemaxbucketsperaccount",
            "cloud.vmtypes.m1.small.cpu"} <= set(names)
    by_name = {p["Name"]: p for p in everything}
    assert by_name["cloud.vmstate.terminated_time"]["DefaultValue"] == "60"
    assert by_name["cloud.quota.default.instances"]["Value"] == "-1"
    assert by_name["cloud.cluster.polling_frequency"]["Description"]
    asked = properties.describe_properties(Properties=["cloud.vmstate.terminated_time",
                                                       "cloud.cluster.polling_frequency"])["Properties"]
    assert sorted(p["Name"] for p in asked) == ["cloud.cluster.polling_frequency", "cloud.vmstate.terminated_time"]
    assert _values(properties, "cloud.vmstate.terminated_time") == {"cloud.vmstate.terminated_time": "60"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        properties.describe_properties(Properties=["cloud.no.such.property"])
    assert _code(e) == "InvalidParameterValue"


def test_vmtypes_prefix_lists_the_original_sizes(properties):
    expected = {f"cloud.vmtypes.{name}.{field}": str(value) for name, sizes in VMTYPES.items()
                for field, value in zip(("cpu", "memory", "disk"), sizes)}
    assert _values(properties, "cloud.vmtypes") == expected
    assert _values(properties, "cloud.vmtypes.m1.large") == {
        k: v for k, v in expected.items() if k.startswith("cloud.vmtypes.m1.large.")}


def test_modify_answers_name_value_and_old_value(properties):
    name = "cloud.vmstate.instance_timeout"
    with changed(properties, name, "7200") as old:
        assert _values(properties, name) == {name: "7200"}
        assert _modify(properties, Name=name, Value="7300") == {"Name": name, "Value": "7300",
                                                                   "OldValue": "7200"}
    assert _values(properties, name) == {name: old}


@pytest.mark.parametrize("name, value", [
    ("cloud.vmstate.terminated_time", "abc"),
    ("cloud.vmstate.terminated_time", "-1"),
    ("cloud.cluster.polling_frequency", "0"),
    ("cloud.cluster.polling_frequency", "1.5"),
    ("cloud.quota.default.instances", "-2"),
    ("cloud.vmtypes.m1.small.cpu", "0"),
    ("cloud.vmtypes.m1.small.memory", "lots"),
    ("cloud.no.such.property", "1"),
    ("cloud.vmtypes.m9.huge.cpu", "1"),
    ("cloud.vmtypes.m1.small.gpu", "1"),
])
def test_bad_names_and_values_change_nothing(properties, name, value):
    before = _values(properties)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        properties.modify_property_value(Name=name, Value=value)
    assert _code(e) == "InvalidParameterValue"
    assert _values(properties) == before


def test_reset_and_missing_value(properties):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        properties.modify_property_value(Name="cloud.vmtypes.m1.small.cpu", Reset=True)
    assert _code(e) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        properties.modify_property_value(Name="cloud.vmstate.terminated_time")
    assert _code(e) == "MissingParameter"


def test_polling_frequency_round_trips(properties):
    name = "cloud.cluster.polling_frequency"
    default = properties.describe_properties(Properties=[name])["Properties"][0]["DefaultValue"]
    try:
        assert _modify(properties, Name=name, Value="3") == {"Name": name, "Value": "3", "OldValue": default}
        assert _values(properties, name) == {name: "3"}
    finally:
        reset = _modify(properties, Name=name, Reset=True)
    assert reset == {"Name": name, "Value": default, "OldValue": "3"}
    assert _values(properties, name) == {name: default}


@pytest.fixture(scope="module")
def tenant(cloud):
    """An account with an image of its own."""
    tenant = cloud.new_account("prop-tenant")
    tenant.image_id = register_image(tenant.client("ec2"), tenant.client("s3"), "prop-images", "prop-image")
    return tenant


def test_only_the_cloud_admin(tenant):
    client = tenant.client("properties")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.describe_properties()
    assert _code(e) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.modify_property_value(Name="cloud.vmstate.terminated_time", Value="0")
    assert _code(e) == "AccessDenied"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _run(tenant) -> str:
    return tenant.client("ec2").run_instances(ImageId=tenant.image_id, MinCount=1, MaxCount=1,
                                              InstanceType="m1.small")["Instances"][0]["InstanceId"]


def _ids(ec2) -> set[str]:
    return {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}


def _terminate(ec2, instance_ids: list[str]) -> None:
    """Terminate and wait until the node's capacity, shared by every test, is free again."""
    ec2.terminate_instances(InstanceIds=instance_ids)

    def states():
        described = ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]
        return {i["State"]["Name"] for r in described for i in r["Instances"]}

    wait_for(lambda: states() == {"terminated"}, timeout=60, what=f"{instance_ids} terminated")


def test_terminated_time_takes_effect_at_once(properties, tenant):
    ec2 = tenant.client("ec2")
    instance_id = _run(tenant)
    _terminate(ec2, [instance_id])
    with changed(properties, "cloud.vmstate.terminated_time", "0"):
        assert instance_id not in _ids(ec2)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ec2.describe_instances(InstanceIds=[instance_id])
        assert _code(e) == "InvalidInstanceID.NotFound"
    assert _values(properties, "cloud.vmstate.terminated_time") == {"cloud.vmstate.terminated_time": "60"}
    assert instance_id in _ids(ec2)


def test_vmtype_size_counts_against_quotas_at_once(cloud, properties, tenant):
    ec2, euare = tenant.client("ec2"), cloud.client("euare")
    euare.put_account_policy(AccountName="prop-tenant", PolicyName="quota", PolicyDocument=quota_policy({"cores": 2}))
    started = []
    try:
        with changed(properties, "cloud.vmtypes.m1.small.cpu", "2"):
            started.append(_run(tenant))
            with pytest.raises(botocore.exceptions.ClientError) as e:
                _run(tenant)
            assert _code(e) == "InstanceLimitExceeded"
            cores = {q["Name"]: q for q in euare.list_account_quotas(AccountName="prop-tenant")["Quotas"]}["cores"]
            assert (cores["Limit"], cores["Used"]) == (2, 2)
        started.append(_run(tenant))  # back to one core each: two fit
    finally:
        if started:
            _terminate(ec2, started)
        euare.delete_account_policy(AccountName="prop-tenant", PolicyName="quota")


def test_change_survives_kill9_of_clc(cloud, properties):
    try:
        _modify(properties, Name="cloud.quota.default.volumes", Value="7")
        _modify(properties, Name="cloud.vmtypes.c1.xlarge.disk", Value="20")
        cloud.kill9("clc")
        cloud.start_daemon("clc")
        after = _values(cloud.client("properties"), "cloud.quota.default.volumes", "cloud.vmtypes.c1.xlarge.disk")
        assert after == {"cloud.quota.default.volumes": "7", "cloud.vmtypes.c1.xlarge.disk": "20"}
    finally:
        if "clc" not in cloud.procs:
            cloud.start_daemon("clc")
        restore = cloud.client("properties")
        _modify(restore, Name="cloud.quota.default.volumes", Reset=True)
        _modify(restore, Name="cloud.vmtypes.c1.xlarge.disk", Value="10")
    assert _values(cloud.client("properties"), "cloud.quota.default.volumes") == {"cloud.quota.default.volumes": "-1"}
