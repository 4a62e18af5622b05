"""The instance lifecycle against the five live daemons, with boto3: stop and start (boto3's
waiters), reboot, console output, DescribeInstanceStatus, instance attributes, ClientToken,
and another account's instances."""

import botocore.exceptions
import pytest

from tests.cloudharness import register_image, wait_for

pytestmark = pytest.mark.integration
FAST = {"Delay": 1, "MaxAttempts": 90}


def _code(call) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def _instance(ec2, instance_id) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


@pytest.fixture(scope="module")
def tenant(cloud):
    return cloud.new_account("lifecycle")


@pytest.fixture(scope="module")
def ec2(tenant):
    return tenant.client("ec2")


@pytest.fixture(scope="module")
def image(tenant):
    return register_image(tenant.client("ec2"), tenant.client("s3"), "lifecycle-images", "lifecycle-image")


def _run(ec2, image, **params) -> str:
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, **params)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    return instance_id


@pytest.fixture(scope="module")
def running(ec2, image):
    """One instance shared by the tests that leave it running."""
    return _run(ec2, image)


def test_stop_and_start_with_waiters(ec2, image):
    instance_id = _run(ec2, image)
    changes = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]
    assert (changes[0]["PreviousState"]["Name"], changes[0]["CurrentState"]["Name"]) == ("running", "stopping")
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    instance = _instance(ec2, instance_id)
    assert instance["State"] == {"Code": 80, "Name": "stopped"}
    assert instance["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    assert _code(lambda: ec2.reboot_instances(InstanceIds=[instance_id])) == "IncorrectInstanceState"

    changes = ec2.start_instances(InstanceIds=[instance_id])["StartingInstances"]
    assert (changes[0]["PreviousState"]["Name"], changes[0]["CurrentState"]["Name"]) == ("stopped", "pending")
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    assert "StateReason" not in _instance(ec2, instance_id)
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)


def test_force_stop_then_terminate_a_stopped_instance(ec2, image):
    instance_id = _run(ec2, image)
    ec2.stop_instances(InstanceIds=[instance_id], Force=True)
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    assert _code(lambda: ec2.start_instances(InstanceIds=[instance_id], DryRun=True)) == "DryRunOperation"
    changes = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
    assert changes[0]["PreviousState"]["Name"] == "stopped"
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)


def test_reboot_keeps_it_running(ec2, running):
    ec2.reboot_instances(InstanceIds=[running])  # answers true
    assert _code(lambda: ec2.reboot_instances(InstanceIds=[running], DryRun=True)) == "DryRunOperation"
    assert _instance(ec2, running)["State"]["Name"] == "running"


def test_console_output_comes_from_the_node(cloud, ec2, running):
    out = ec2.get_console_output(InstanceId=running)
    assert out["InstanceId"] == running and "Output" not in out  # the test driver's guests print nothing
    # What a guest would have written to its serial console, in the NC's instance directory.
    log = cloud.root / "var/lib/eucalyptus/instances/work" / running / "console.log"
    text = "".join(f"[{i:5d}] kernel: line\n" for i in range(4000))
    log.write_text(text)
    out = ec2.get_console_output(InstanceId=running)
    assert out["Output"] == text[-64 * 1024:]  # decoded by boto3
    assert out["Timestamp"]


def test_describe_instance_status(ec2, image, running):
    statuses = ec2.describe_instance_status(InstanceIds=[running])["InstanceStatuses"]
    assert [(s["InstanceId"], s["InstanceState"]["Name"], s["InstanceStatus"]["Status"],
             s["SystemStatus"]["Status"]) for s in statuses] == [(running, "running", "ok", "ok")]
    ec2.get_waiter("instance_status_ok").wait(InstanceIds=[running], WaiterConfig=FAST)
    stopped = _run(ec2, image)
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[stopped], WaiterConfig=FAST)
    assert ec2.describe_instance_status(InstanceIds=[stopped])["InstanceStatuses"] == []
    every = ec2.describe_instance_status(IncludeAllInstances=True, Filters=[
        {"Name": "instance-state-name", "Values": ["stopped"]}])["InstanceStatuses"]
    assert stopped in [s["InstanceId"] for s in every]
    assert every[0]["InstanceStatus"]["Status"] == "not-applicable"
    ok = ec2.describe_instance_status(Filters=[{"Name": "instance-status.status", "Values": ["ok"]},
                                               {"Name": "availability-zone", "Values": ["zone-a"]}])
    assert running in [s["InstanceId"] for s in ok["InstanceStatuses"]]
    pages = ec2.get_paginator("describe_instance_status").paginate(IncludeAllInstances=True,
                                                                   PaginationConfig={"PageSize": 5})
    assert {running, stopped} <= {s["InstanceId"] for page in pages for s in page["InstanceStatuses"]}
    ec2.terminate_instances(InstanceIds=[stopped])


def test_instance_attributes(ec2, image):
    instance_id = _run(ec2, image, UserData="echo hello", DisableApiTermination=True)
    attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    assert attr["UserData"]["Value"] == "ZWNobyBoZWxsbw=="  # base64, as EC2 answers
    assert _code(lambda: ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "m1.large"})) \
        == "IncorrectInstanceState"
    assert _code(lambda: ec2.terminate_instances(InstanceIds=[instance_id])) == "OperationNotPermitted"

    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "m1.large"})
    ec2.modify_instance_attribute(InstanceId=instance_id, UserData={"Value": b"echo again"})
    attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceType")
    assert attr["InstanceType"] == {"Value": "m1.large"}
    ec2.start_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    assert _instance(ec2, instance_id)["InstanceType"] == "m1.large"

    behavior = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
    assert behavior["InstanceInitiatedShutdownBehavior"] == {"Value": "stop"}
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)


def test_client_token(ec2, image):
    first = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="lifecycle-token-1")
    again = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="lifecycle-token-1")
    assert again["ReservationId"] == first["ReservationId"]
    assert again["Instances"][0]["InstanceId"] == first["Instances"][0]["InstanceId"]
    assert _code(lambda: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="c1.medium",
                                           ClientToken="lifecycle-token-1")) == "IdempotentParameterMismatch"
    found = ec2.describe_instances(Filters=[{"Name": "client-token", "Values": ["lifecycle-token-1"]}])
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == \
        [first["Instances"][0]["InstanceId"]]
    ec2.terminate_instances(InstanceIds=[first["Instances"][0]["InstanceId"]])


def test_describe_instances_pages(ec2, image):
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=image, MinCount=6, MaxCount=6)["Instances"]]
    pages = list(ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
    seen = [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]
    assert len(pages) >= 2 and set(ids) <= set(seen) and len(seen) == len(set(seen))
    assert _code(lambda: ec2.describe_instances(InstanceIds=ids[:1], MaxResults=5)) == "InvalidParameterCombination"
    ec2.terminate_instances(InstanceIds=ids)


def test_another_accounts_instance_is_not_found(cloud, running):
    other = cloud.new_account("lifecycle-other").client("ec2")
    for call in (lambda: other.stop_instances(InstanceIds=[running]),
                 lambda: other.start_instances(InstanceIds=[running]),
                 lambda: other.reboot_instances(InstanceIds=[running]),
                 lambda: other.get_console_output(InstanceId=running),
                 lambda: other.describe_instance_attribute(InstanceId=running, Attribute="instanceType"),
                 lambda: other.modify_instance_attribute(InstanceId=running, DisableApiTermination={"Value": True}),
                 lambda: other.describe_instance_status(InstanceIds=[running])):
        assert _code(call) == "InvalidInstanceID.NotFound"


def test_stopped_instance_survives_an_nc_restart(cloud, ec2, image):
    """The test driver's domains die with the NC: the stopped instance is defined anew at start."""
    instance_id = _run(ec2, image)
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    cloud.kill9("nc")
    cloud.start_daemon("nc")
    wait_for(lambda: _instance(ec2, instance_id)["State"]["Name"] == "stopped", timeout=10, what="still stopped")
    ec2.start_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
