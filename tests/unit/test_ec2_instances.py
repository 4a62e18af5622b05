"""clc.ec2.instances and the stop/start states of clc.poller in-process, through the EC2 wire
both ways (tests/unit/ec2wire.py). Most tests put a stand-in cluster behind the zone; the
last ones run the whole path, CLC handlers and poller, the real CC and a real NC on
libvirt's test:///default driver, each reached by zeep in-process."""

import base64
import json
from types import SimpleNamespace

import pytest
import requests
import zeep.exceptions

from clc.cloud import Cloud
from clc.ec2 import instances
from clc.poller import ClusterPoller
from eucacore import ids, messages
from eucacore.config import default_config
from tests.unit.ec2wire import ALICE, BOB, Ec2
from tests.unit.test_ec2_volumes import set_quota

ZONE = "zone-a"


class FakeCluster:
    """A cluster controller that records what it is asked and reports what ``instances`` (id ->
    record) says; ``faults`` (operation -> fault code) makes an operation fail as a CC would."""

    def __init__(self, free=20):
        self.free, self.calls, self.instances, self.faults, self.console = free, [], {}, {}, {}
        self.placeable = None  # how many of a RunInstances' instances nodes take (None: all)
        self.slow = False  # RunInstances does its work but its answer comes too late

    def _called(self, operation, **request):
        self.calls.append((operation, request))
        if operation in self.faults:
            raise zeep.exceptions.Fault(f"{operation} refused", code=f"soap11env:Client.{self.faults[operation]}")

    def asked(self, operation):
        return [request for op, request in self.calls if op == operation]

    def DescribeResources(self, instanceTypes):
        return SimpleNamespace(resources=[SimpleNamespace(availableInstances=self.free, maxInstances=self.free)])

    def RunInstances(self, **request):
        self._called("RunInstances", **request)
        for instance_id in request["instanceIds"][:self.placeable]:
            self.instances[instance_id] = SimpleNamespace(instanceId=instance_id, stateName="Pending",
                                                          serviceTag="node-1", statusMessage=None)
        if self.slow:
            raise requests.exceptions.ReadTimeout("HTTPSConnectionPool(host='127.0.0.1'): Read timed out.")
        return SimpleNamespace(instances=[self.instances[i] for i in request["instanceIds"][:self.placeable]])

    def DescribeInstances(self, **request):
        return SimpleNamespace(instances=list(self.instances.values()))

    def TerminateInstances(self, instanceIds, **request):
        self._called("TerminateInstances", instanceIds=instanceIds)
        for instance_id in instanceIds:
            self.instances[instance_id].stateName = "Teardown"

    def StopInstance(self, instanceId, force=False, **request):
        self._called("StopInstance", instanceId=instanceId, force=force)
        self.instances[instanceId].stateName = "Stopping"

    def StartInstance(self, instanceId, instanceType=None, **request):
        self._called("StartInstance", instanceId=instanceId, instanceType=instanceType)
        self.instances[instanceId].stateName = "Pending"

    def RebootInstances(self, instanceIds, **request):
        self._called("RebootInstances", instanceIds=instanceIds)

    def GetConsoleOutput(self, instanceId, **request):
        self._called("GetConsoleOutput", instanceId=instanceId)
        return SimpleNamespace(instanceId=instanceId, consoleOutput=self.console.get(instanceId, ""))

    def ConfigureNetwork(self, **request):
        self._called("ConfigureNetwork", **request)

    def DescribeNetworks(self, **request):
        return SimpleNamespace(groups=[])

    def CreateImage(self, **request):
        self._called("CreateImage", **request)

    def report(self, instance_id, state, message=None):
        self.instances[instance_id].stateName, self.instances[instance_id].statusMessage = state, message


def add_image(cloud, account_id, image_id, image_type="machine", kernel_id="", public=False):
    with cloud.store.atomic() as db:
        db["images"].insert({"image_id": image_id, "account_id": account_id, "location": f"b/{image_id}",
                             "name": image_id, "description": "", "architecture": "x86_64",
                             "image_type": image_type, "state": "available", "kernel_id": kernel_id,
                             "ramdisk_id": "", "is_public": int(public), "size": 1, "created": ids.now()})
    return image_id


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path)))
    with cloud.store.atomic() as db:
        db["accounts"].insert_all([{"account_id": a, "name": n, "created": ids.now()}
                                   for a, n in ((ALICE, "alice"), (BOB, "bob"))])
        db["components"].insert({"kind": "cluster", "name": "cc-a", "partition": ZONE, "host": "127.0.0.1",
                                 "port": 1, "state": "ENABLED", "last_seen": ids.now(), "registered": ids.now()})
    cloud.fake = FakeCluster()
    cloud.cc = lambda cluster: cloud.fake
    monkeypatch.setattr(instances, "_image_url", lambda ctx, image: f"http://walrus/{image['location']}")
    add_image(cloud, ALICE, "emi-aaaaaaaa")
    add_image(cloud, ALICE, "eki-aaaaaaaa", "kernel")
    add_image(cloud, ALICE, "eri-aaaaaaaa", "ramdisk")
    add_image(cloud, BOB, "eki-bbbbbbbb", "kernel")
    add_image(cloud, BOB, "emi-bbbbbbbb", public=True)
    yield cloud
    cloud.store.close()


@pytest.fixture
def alice(cloud):
    return Ec2(cloud, ALICE)


@pytest.fixture
def bob(cloud):
    return Ec2(cloud, BOB)


def poll(cloud):
    ClusterPoller(cloud).poll_once()


def launch(cloud, ec2, count=1, **params) -> list[str]:
    """Run instances and bring them to running; their ids."""
    reservation = ec2("RunInstances", ImageId="emi-aaaaaaaa", MinCount=count, MaxCount=count, **params)
    instance_ids = [i["InstanceId"] for i in reservation["Instances"]]
    for instance_id in instance_ids:
        cloud.fake.report(instance_id, "Extant")
    poll(cloud)
    return instance_ids


def described(ec2, instance_id) -> dict:
    return ec2("DescribeInstances", InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def state(ec2, instance_id) -> str:
    return described(ec2, instance_id)["State"]["Name"]


def open_usage(cloud, instance_id) -> int:
    return len(list(cloud.store.db["usage_intervals"].rows_where(
        "kind = 'instance' AND resource_id = ? AND \"end\" IS NULL", [instance_id])))


def stopped(cloud, ec2, instance_id):
    ec2("StopInstances", InstanceIds=[instance_id])
    cloud.fake.report(instance_id, "Stopped")
    poll(cloud)
    assert state(ec2, instance_id) == "stopped"


# -- stop -----------------------------------------------------------------------------------------------


def test_stop_goes_stopping_then_stopped_and_stops_instance_hours(cloud, alice):
    (instance_id,) = launch(cloud, alice)
    assert state(alice, instance_id) == "running" and open_usage(cloud, instance_id) == 1
    out = alice("StopInstances", InstanceIds=[instance_id])["StoppingInstances"]
    assert out == [{"InstanceId": instance_id, "CurrentState": {"Code": 64, "Name": "stopping"},
                    "PreviousState": {"Code": 16, "Name": "running"}}]
    assert cloud.fake.asked("StopInstance") == [{"instanceId": instance_id, "force": False}]
    assert open_usage(cloud, instance_id) == 0
    poll(cloud)
    assert state(alice, instance_id) == "stopping"
    cloud.fake.report(instance_id, "Stopped")
    poll(cloud)
    instance = described(alice, instance_id)
    assert instance["State"] == {"Code": 80, "Name": "stopped"}
    assert instance["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    again = alice("StopInstances", InstanceIds=[instance_id], Force=True)["StoppingInstances"]
    assert again[0]["PreviousState"] == again[0]["CurrentState"] == {"Code": 80, "Name": "stopped"}
    assert len(cloud.fake.asked("StopInstance")) == 1  # nothing more to do


def test_stop_force_dry_run_and_refusals(cloud, alice, bob):
    (instance_id,) = launch(cloud, alice)
    assert alice.error("StopInstances", InstanceIds=[instance_id], DryRun=True) == "DryRunOperation"
    assert state(alice, instance_id) == "running" and not cloud.fake.asked("StopInstance")
    assert bob.error("StopInstances", InstanceIds=[instance_id]) == "InvalidInstanceID.NotFound"
    assert alice.error("StopInstances", InstanceIds=["i-00000000"]) == "InvalidInstanceID.NotFound"
    assert alice.error("StopInstances", InstanceIds=[instance_id], Hibernate=True) == \
        "UnsupportedHibernationConfiguration"
    pending = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert alice.error("StopInstances", InstanceIds=[instance_id, pending]) == "IncorrectInstanceState"
    assert state(alice, instance_id) == "running"  # all or nothing
    alice("StopInstances", InstanceIds=[instance_id], Force=True)
    assert cloud.fake.asked("StopInstance") == [{"instanceId": instance_id, "force": True}]


def test_stop_while_the_cluster_is_unreachable_is_retried_by_the_poller(cloud, alice):
    (instance_id,) = launch(cloud, alice)
    cloud.fake.faults["StopInstance"] = "Unavailable"
    alice("StopInstances", InstanceIds=[instance_id])
    del cloud.fake.faults["StopInstance"]
    cloud.fake.report(instance_id, "Extant")  # it never heard of the stop
    poll(cloud)
    assert state(alice, instance_id) == "stopping"  # not back to running
    assert len(cloud.fake.asked("StopInstance")) == 2


# -- start ----------------------------------------------------------------------------------------------


def test_start_goes_pending_then_running_with_a_new_launch_time(cloud, alice):
    (instance_id,) = launch(cloud, alice)
    launched = described(alice, instance_id)["LaunchTime"]
    stopped(cloud, alice, instance_id)
    out = alice("StartInstances", InstanceIds=[instance_id])["StartingInstances"]
    assert out == [{"InstanceId": instance_id, "CurrentState": {"Code": 0, "Name": "pending"},
                    "PreviousState": {"Code": 80, "Name": "stopped"}}]
    assert cloud.fake.asked("StartInstance") == [{"instanceId": instance_id, "instanceType": {
        "name": "m1.small", "memory": 256, "cores": 1, "disk": 5}}]
    instance = described(alice, instance_id)
    assert instance["State"]["Name"] == "pending" and "StateReason" not in instance
    assert instance["LaunchTime"] >= launched
    poll(cloud)  # still Pending at the cluster
    assert state(alice, instance_id) == "pending" and open_usage(cloud, instance_id) == 0
    cloud.fake.report(instance_id, "Extant")
    poll(cloud)
    assert state(alice, instance_id) == "running" and open_usage(cloud, instance_id) == 1
    intervals = cloud.store.db["usage_intervals"].rows_where("resource_id = ?", [instance_id])
    assert len(list(intervals)) == 2  # one per time it ran
    again = alice("StartInstances", InstanceIds=[instance_id])["StartingInstances"]
    assert again[0]["CurrentState"]["Name"] == "running"


def test_start_refusals(cloud, alice, bob):
    (instance_id,) = launch(cloud, alice)
    alice("StopInstances", InstanceIds=[instance_id])
    assert alice.error("StartInstances", InstanceIds=[instance_id]) == "IncorrectInstanceState"  # stopping
    cloud.fake.report(instance_id, "Stopped")
    poll(cloud)
    assert bob.error("StartInstances", InstanceIds=[instance_id]) == "InvalidInstanceID.NotFound"
    assert alice.error("StartInstances", InstanceIds=[instance_id], DryRun=True) == "DryRunOperation"
    assert state(alice, instance_id) == "stopped"
    cloud.fake.faults["StartInstance"] = "InsufficientInstanceCapacity"
    assert alice.error("StartInstances", InstanceIds=[instance_id]) == "InsufficientInstanceCapacity"
    instance = described(alice, instance_id)
    assert instance["State"]["Name"] == "stopped"
    assert instance["StateReason"]["Code"] == "Server.InsufficientInstanceCapacity"
    alice("TerminateInstances", InstanceIds=[instance_id])
    assert alice.error("StartInstances", InstanceIds=[instance_id]) == "IncorrectInstanceState"


def test_a_start_the_cluster_missed_is_asked_again_and_a_failed_one_ends_stopped(cloud, alice):
    (instance_id,) = launch(cloud, alice)
    stopped(cloud, alice, instance_id)
    cloud.fake.faults["StartInstance"] = "Unavailable"
    alice("StartInstances", InstanceIds=[instance_id])
    del cloud.fake.faults["StartInstance"]
    cloud.fake.report(instance_id, "Stopped")
    poll(cloud)
    assert state(alice, instance_id) == "pending"
    assert len(cloud.fake.asked("StartInstance")) == 2
    cloud.fake.report(instance_id, "Stopped", f"{messages.START_FAILED}: the domain would not boot")
    poll(cloud)
    instance = described(alice, instance_id)
    assert instance["State"]["Name"] == "stopped"
    assert instance["StateReason"]["Message"] == "Server.InternalError: failed to start: the domain would not boot"


def test_instances_the_cluster_could_not_place_were_never_launched(cloud, alice):
    cloud.fake.placeable = 2
    reservation = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=4,
                        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}])
    asked = cloud.fake.asked("RunInstances")[0]["instanceIds"]
    assert [i["InstanceId"] for i in reservation["Instances"]] == asked[:2]
    shown = [i["InstanceId"] for r in alice("DescribeInstances")["Reservations"] for i in r["Instances"]]
    assert shown == asked[:2]
    assert {t["ResourceId"] for t in alice("DescribeTags")["Tags"]} == set(asked[:2])
    cloud.fake.placeable = 0
    assert alice.error("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1) == "InsufficientInstanceCapacity"
    assert len(alice("DescribeInstances")["Reservations"]) == 1


def test_instances_whose_run_was_not_answered_stay_pending_and_run_once_reported(cloud, alice):
    cloud.fake.slow = True
    reservation = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=2, MaxCount=2)
    instance_ids = [i["InstanceId"] for i in reservation["Instances"]]
    assert [i["State"]["Name"] for i in reservation["Instances"]] == ["pending", "pending"]
    for instance_id in instance_ids:
        cloud.fake.report(instance_id, "Extant")
    poll(cloud)
    assert [state(alice, i) for i in instance_ids] == ["running", "running"]
    assert not cloud.fake.asked("TerminateInstances")


def test_instances_a_cluster_runs_that_the_cloud_ended_or_never_had_are_terminated_there(cloud, alice):
    (ended,) = launch(cloud, alice)
    with cloud.store.atomic() as db:  # ended by the CLC while its cluster went on running it
        db["instances"].update(ended, {"state": "terminated"})
    cloud.fake.instances["i-00000bad"] = SimpleNamespace(instanceId="i-00000bad", stateName="Extant",
                                                         serviceTag="node-1", statusMessage=None)
    poll(cloud)
    assert cloud.fake.asked("TerminateInstances") == [{"instanceIds": ["i-00000bad", ended]}]
    poll(cloud)  # torn down now: not asked again
    assert len(cloud.fake.asked("TerminateInstances")) == 1


def test_quota_holds_for_stopped_instances(cloud, alice):
    set_quota(cloud, ALICE, instances=1)
    (instance_id,) = launch(cloud, alice)
    stopped(cloud, alice, instance_id)
    assert alice.error("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1) == "InstanceLimitExceeded"
    alice("StartInstances", InstanceIds=[instance_id])  # no new quota needed


# -- instance-initiated shutdown ------------------------------------------------------------------------


def test_a_guest_that_shuts_down_is_stopped(cloud, alice):
    (instance_id,) = launch(cloud, alice)
    cloud.fake.report(instance_id, "Stopped", messages.GUEST_SHUTDOWN)
    poll(cloud)
    instance = described(alice, instance_id)
    assert instance["State"]["Name"] == "stopped"
    assert instance["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    assert open_usage(cloud, instance_id) == 0


def test_a_guest_that_shuts_down_is_terminated_if_its_behavior_says_so(cloud, alice):
    (instance_id,) = launch(cloud, alice, InstanceInitiatedShutdownBehavior="terminate")
    value = alice("DescribeInstanceAttribute", InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
    assert value["InstanceInitiatedShutdownBehavior"] == {"Value": "terminate"}
    cloud.fake.report(instance_id, "Stopped", messages.GUEST_SHUTDOWN)
    poll(cloud)
    assert state(alice, instance_id) == "shutting-down"
    assert cloud.fake.asked("TerminateInstances") == [{"instanceIds": [instance_id]}]
    poll(cloud)
    assert state(alice, instance_id) == "terminated"


def test_reboot(cloud, alice, bob):
    running, stopped_one, gone = launch(cloud, alice, count=3)
    stopped(cloud, alice, stopped_one)
    alice("TerminateInstances", InstanceIds=[gone])
    assert alice("RebootInstances", InstanceIds=[running, gone]) == {}
    assert cloud.fake.asked("RebootInstances") == [{"instanceIds": [running]}]  # shutting down: ignored
    assert state(alice, running) == "running"
    assert alice.error("RebootInstances", InstanceIds=[stopped_one]) == "IncorrectInstanceState"
    assert alice.error("RebootInstances", InstanceIds=[running], DryRun=True) == "DryRunOperation"
    assert bob.error("RebootInstances", InstanceIds=[running]) == "InvalidInstanceID.NotFound"
    assert len(cloud.fake.asked("RebootInstances")) == 1


def test_console_output_is_the_last_64_kib_base64(cloud, alice, bob):
    (instance_id,) = launch(cloud, alice)
    out = alice("GetConsoleOutput", InstanceId=instance_id)
    assert out["InstanceId"] == instance_id and "Output" not in out and out["Timestamp"]
    log = b"".join(b"line %06d\n" % i for i in range(8000))
    cloud.fake.console[instance_id] = base64.b64encode(log).decode()
    out = alice("GetConsoleOutput", InstanceId=instance_id)
    # (boto3's client decodes Output; the bare wire carries base64)
    assert base64.b64decode(out["Output"]) == log[-64 * 1024:]
    assert alice.error("GetConsoleOutput", InstanceId=instance_id, DryRun=True) == "DryRunOperation"
    assert bob.error("GetConsoleOutput", InstanceId=instance_id) == "InvalidInstanceID.NotFound"
    cloud.fake.faults["GetConsoleOutput"] = "Unavailable"
    assert "Output" not in alice("GetConsoleOutput", InstanceId=instance_id)


# -- DescribeInstanceStatus -----------------------------------------------------------------------------


def test_describe_instance_status(cloud, alice, bob):
    first, second = launch(cloud, alice, count=2)
    stopped(cloud, alice, second)
    pending = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    statuses = alice("DescribeInstanceStatus")["InstanceStatuses"]
    assert statuses == [{"InstanceId": first, "AvailabilityZone": ZONE,
                         "InstanceState": {"Code": 16, "Name": "running"},
                         "InstanceStatus": {"Status": "ok", "Details": [{"Name": "reachability", "Status": "passed"}]},
                         "SystemStatus": {"Status": "ok", "Details": [{"Name": "reachability", "Status": "passed"}]},
                         "Events": []}]

    def listed(**params):
        return sorted(s["InstanceId"] for s in alice("DescribeInstanceStatus", **params)["InstanceStatuses"])
    assert listed(IncludeAllInstances=True) == sorted([first, second, pending])
    assert listed(InstanceIds=[second]) == []  # not running
    assert listed(InstanceIds=[second], IncludeAllInstances=True) == [second]
    assert listed(IncludeAllInstances=True,
                  Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}]) == [second]
    assert listed(IncludeAllInstances=True, Filters=[{"Name": "instance-state-code", "Values": ["0"]}]) == [pending]
    assert listed(IncludeAllInstances=True,
                  Filters=[{"Name": "instance-status.status", "Values": ["initializing"]}]) == [pending]
    assert listed(IncludeAllInstances=True, Filters=[{"Name": "system-status.status", "Values": ["ok"]}]) == [first]
    assert listed(Filters=[{"Name": "availability-zone", "Values": ["zone-b"]}]) == []
    assert bob("DescribeInstanceStatus", IncludeAllInstances=True)["InstanceStatuses"] == []
    for params, code in [({"InstanceIds": [first]}, "InvalidInstanceID.NotFound"),
                         ({"Filters": [{"Name": "bogus", "Values": ["x"]}]}, "InvalidParameterValue")]:
        assert bob.error("DescribeInstanceStatus", **params) == code
    assert alice.error("DescribeInstanceStatus", InstanceIds=[first], MaxResults=5) == "InvalidParameterCombination"


def test_describe_instance_status_pages(cloud, alice):
    instance_ids = launch(cloud, alice, count=7)
    page = alice("DescribeInstanceStatus", MaxResults=5)
    rest = alice("DescribeInstanceStatus", MaxResults=5, NextToken=page["NextToken"])
    assert "NextToken" not in rest
    assert [s["InstanceId"] for s in page["InstanceStatuses"] + rest["InstanceStatuses"]] == sorted(instance_ids)
    assert alice.error("DescribeInstanceStatus", MaxResults=4) == "InvalidParameterValue"


# -- instance attributes --------------------------------------------------------------------------------


def attribute(ec2, instance_id, name):
    out = ec2("DescribeInstanceAttribute", InstanceId=instance_id, Attribute=name)
    assert out.pop("InstanceId") == instance_id
    return out


def test_describe_instance_attributes(cloud, alice, bob):
    (instance_id,) = launch(cloud, alice, UserData=base64.b64encode(b"#!/bin/sh\n").decode(), KernelId="eki-aaaaaaaa")
    assert attribute(alice, instance_id, "instanceType") == {"InstanceType": {"Value": "m1.small"}}
    assert attribute(alice, instance_id, "kernel") == {"KernelId": {"Value": "eki-aaaaaaaa"}}
    assert attribute(alice, instance_id, "ramdisk") == {"RamdiskId": {}}
    assert base64.b64decode(attribute(alice, instance_id, "userData")["UserData"]["Value"]) == b"#!/bin/sh\n"
    assert attribute(alice, instance_id, "disableApiTermination") == {"DisableApiTermination": {"Value": False}}
    assert attribute(alice, instance_id, "rootDeviceName") == {"RootDeviceName": {"Value": "/dev/sda1"}}
    groups = attribute(alice, instance_id, "groupSet")["Groups"]
    assert [g["GroupName"] for g in groups] == ["default"] and groups[0]["GroupId"].startswith("sg-")
    assert attribute(alice, instance_id, "blockDeviceMapping") == {"BlockDeviceMappings": []}
    assert alice.error("DescribeInstanceAttribute", InstanceId=instance_id, Attribute="bogus") == \
        "InvalidParameterValue"
    assert bob.error("DescribeInstanceAttribute", InstanceId=instance_id, Attribute="kernel") == \
        "InvalidInstanceID.NotFound"


def test_instance_type_and_user_data_change_only_while_stopped(cloud, alice):
    (instance_id,) = launch(cloud, alice)
    assert alice.error("ModifyInstanceAttribute", InstanceId=instance_id, InstanceType={"Value": "m1.large"}) == \
        "IncorrectInstanceState"
    assert alice.error("ModifyInstanceAttribute", InstanceId=instance_id, UserData={"Value": b"x"}) == \
        "IncorrectInstanceState"
    stopped(cloud, alice, instance_id)
    assert alice.error("ModifyInstanceAttribute", InstanceId=instance_id, InstanceType={"Value": "m9.huge"}) == \
        "InvalidParameterValue"
    assert alice.error("ModifyInstanceAttribute", InstanceId=instance_id, InstanceType={"Value": "m1.large"},
                       DryRun=True) == "DryRunOperation"
    assert alice("ModifyInstanceAttribute", InstanceId=instance_id, InstanceType={"Value": "m1.large"}) == {}
    assert described(alice, instance_id)["InstanceType"] == "m1.large"
    alice("ModifyInstanceAttribute", InstanceId=instance_id, UserData={"Value": b"new user data"})
    assert base64.b64decode(attribute(alice, instance_id, "userData")["UserData"]["Value"]) == b"new user data"
    alice("ModifyInstanceAttribute", InstanceId=instance_id, Attribute="userData", Value="by value")
    row = cloud.store.db["instances"].get(instance_id)
    assert instances.user_data_text(row) == b"by value"
    alice("StartInstances", InstanceIds=[instance_id])
    large = cloud.instance_types()["m1.large"]
    assert cloud.fake.asked("StartInstance")[-1]["instanceType"] == {
        "name": "m1.large", "memory": large["memory"], "cores": large["cores"], "disk": large["disk"]}


def test_a_bigger_type_must_fit_the_quota(cloud, alice):
    small = cloud.instance_types()["m1.small"]
    set_quota(cloud, ALICE, cores=small["cores"])
    (instance_id,) = launch(cloud, alice)
    stopped(cloud, alice, instance_id)
    assert alice.error("ModifyInstanceAttribute", InstanceId=instance_id, InstanceType={"Value": "c1.xlarge"}) == \
        "InstanceLimitExceeded"
    assert described(alice, instance_id)["InstanceType"] == "m1.small"


def test_disable_api_termination(cloud, alice):
    protected, free = launch(cloud, alice, count=2, DisableApiTermination=True)
    assert attribute(alice, protected, "disableApiTermination") == {"DisableApiTermination": {"Value": True}}
    assert alice.error("TerminateInstances", InstanceIds=[free, protected]) == "OperationNotPermitted"
    assert state(alice, free) == "running"
    alice("ModifyInstanceAttribute", InstanceId=protected, DisableApiTermination={"Value": False})
    alice("ModifyInstanceAttribute", InstanceId=free, Attribute="disableApiTermination", Value="true")
    assert alice.error("TerminateInstances", InstanceIds=[free]) == "OperationNotPermitted"
    changes = alice("TerminateInstances", InstanceIds=[protected])["TerminatingInstances"]
    assert changes[0]["CurrentState"]["Name"] == "shutting-down"


def test_modify_instance_attribute_refusals(cloud, alice, bob):
    (instance_id,) = launch(cloud, alice)
    for params, code in [
        ({"InstanceType": {"Value": "m1.large"}, "DisableApiTermination": {"Value": True}},
         "InvalidParameterCombination"),
        ({}, "MissingParameter"),
        ({"Attribute": "instanceType"}, "MissingParameter"),
        ({"InstanceInitiatedShutdownBehavior": {"Value": "hibernate"}}, "InvalidParameterValue"),
        ({"Attribute": "rootDeviceName", "Value": "/dev/sdb"}, "InvalidParameterValue"),
        ({"SourceDestCheck": {"Value": False}}, "UnsupportedOperation"),
    ]:
        assert alice.error("ModifyInstanceAttribute", InstanceId=instance_id, **params) == code, params
    assert bob.error("ModifyInstanceAttribute", InstanceId=instance_id, DisableApiTermination={"Value": True}) == \
        "InvalidInstanceID.NotFound"
    alice("TerminateInstances", InstanceIds=[instance_id])
    assert alice.error("ModifyInstanceAttribute", InstanceId=instance_id, DisableApiTermination={"Value": True}) == \
        "IncorrectInstanceState"


# -- RunInstances: ClientToken, KernelId/RamdiskId --------------------------------------------------------


def test_client_token_makes_run_instances_idempotent(cloud, alice, bob):
    first = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=2, ClientToken="token-1")
    again = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=2, ClientToken="token-1")
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [i["InstanceId"] for i in first["Instances"]]
    assert [i["ClientToken"] for i in again["Instances"]] == ["token-1", "token-1"]
    assert len(cloud.fake.asked("RunInstances")) == 1  # nothing new started
    assert alice.error("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=2, ClientToken="token-1",
                       InstanceType="m1.large") == "IdempotentParameterMismatch"
    assert alice.error("RunInstances", ImageId="emi-bbbbbbbb", MinCount=1, MaxCount=2, ClientToken="token-1") == \
        "IdempotentParameterMismatch"
    other = bob("RunInstances", ImageId="emi-bbbbbbbb", MinCount=1, MaxCount=1, ClientToken="token-1")
    assert other["ReservationId"] != first["ReservationId"]  # a token is per account
    found = alice("DescribeInstances", Filters=[{"Name": "client-token", "Values": ["token-1"]}])
    assert [r["ReservationId"] for r in found["Reservations"]] == [first["ReservationId"]]
    assert alice.error("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1, ClientToken="t" * 65) == \
        "InvalidParameterValue"


def test_kernel_and_ramdisk_must_be_visible_kernel_and_ramdisk_images(cloud, alice):
    reservation = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1, KernelId="eki-aaaaaaaa",
                        RamdiskId="eri-aaaaaaaa")
    instance = reservation["Instances"][0]
    assert (instance["KernelId"], instance["RamdiskId"]) == ("eki-aaaaaaaa", "eri-aaaaaaaa")
    assert instance["VirtualizationType"] == "paravirtual"
    request = cloud.fake.asked("RunInstances")[0]
    assert (request["kernelId"], request["kernelURL"]) == ("eki-aaaaaaaa", "http://walrus/b/eki-aaaaaaaa")
    assert (request["ramdiskId"], request["ramdiskURL"]) == ("eri-aaaaaaaa", "http://walrus/b/eri-aaaaaaaa")
    for params in ({"KernelId": "eki-bbbbbbbb"}, {"KernelId": "eki-00000000"}, {"KernelId": "emi-aaaaaaaa"},
                   {"RamdiskId": "eki-aaaaaaaa"}):
        assert alice.error("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1, **params) == \
            "InvalidAMIID.NotFound", params
    add_image(cloud, ALICE, "emi-cccccccc", kernel_id="eki-aaaaaaaa")  # an image's own kernel is booted
    alice("RunInstances", ImageId="emi-cccccccc", MinCount=1, MaxCount=1)
    assert cloud.fake.asked("RunInstances")[-1]["kernelId"] == "eki-aaaaaaaa"


# -- DescribeInstances: pages and filters ------------------------------------------------------------------


def test_the_groups_rules_reach_the_cluster_before_their_instances(cloud, alice):
    web = alice("CreateSecurityGroup", GroupName="web", Description="web")["GroupId"]
    with cloud.store.atomic() as db:  # a cluster that awaits a resync still gets the groups of what it runs
        db["components"].update(("cluster", "cc-a"), {"network_resync": 1})
    cloud.fake.calls.clear()
    alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1, SecurityGroupIds=[web],
          SecurityGroups=["default"])
    (operation, push), (run, _) = cloud.fake.calls
    assert (operation, run) == ("ConfigureNetwork", "RunInstances")
    assert (push["accountId"], sorted(push["groupNames"]), push["deletedGroupNames"]) == \
        (ALICE, ["default", "web"], [])
    assert [(r["destName"], r["protocol"], r["sourceNames"]) for r in push["rules"]] == \
        [("default", "all", ["default"])]
    assert alice.error("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1, DryRun=True) == \
        "DryRunOperation"
    assert len(cloud.fake.calls) == 2


def test_an_image_that_is_not_available_is_not_run(cloud, alice):
    with cloud.store.atomic() as db:
        db["images"].update("emi-aaaaaaaa", {"state": "pending"})
    assert alice.error("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1) == "InvalidAMIID.Unavailable"
    assert not cloud.fake.asked("RunInstances")


def paged(ec2, **params) -> list[str]:
    """The instance ids of every page of DescribeInstances with ``params``, in order."""
    seen, token = [], None
    while True:
        page = ec2("DescribeInstances", MaxResults=5, **params, **({"NextToken": token} if token else {}))
        seen += [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]]
        token = page.get("NextToken")
        if not token:
            return seen


def test_describe_instances_pages(cloud, alice):
    instance_ids = launch(cloud, alice, count=3) + launch(cloud, alice, count=4) + launch(cloud, alice, count=5)
    assert paged(alice) == instance_ids  # paged in SQL
    assert paged(alice, Filters=[{"Name": "instance-state-name", "Values": ["running"]}]) == instance_ids
    odd_token = base64.urlsafe_b64encode(json.dumps(["2024"]).encode()).decode()
    assert alice.error("DescribeInstances", MaxResults=5, NextToken=odd_token) == "InvalidPaginationToken"
    assert alice.error("DescribeInstances", InstanceIds=[instance_ids[0]], MaxResults=5) == \
        "InvalidParameterCombination"
    assert alice.error("DescribeInstances", MaxResults=2) == "InvalidParameterValue"
    assert alice.error("DescribeInstances", NextToken="bogus") == "InvalidPaginationToken"
    assert alice.error("DescribeInstances", DryRun=True) == "DryRunOperation"


def test_describe_instances_reads_the_page_order_index(cloud, alice):
    """An account's instances come in page order from idx_instances_page, not from a sort of
    them all (the index's expression must match instances._PAGE_ORDER)."""
    launch(cloud, alice, count=2)
    statements = []
    cloud.store.db.conn.set_trace_callback(statements.append)
    try:
        alice("DescribeInstances")
    finally:
        cloud.store.db.conn.set_trace_callback(None)
    read, = [s for s in statements if s.lstrip().startswith("SELECT") and "FROM instances" in s]
    plan = " ".join(str(step) for step in cloud.store.db.execute("EXPLAIN QUERY PLAN " + read).fetchall())
    assert "idx_instances_page" in plan and "TEMP B-TREE" not in plan, plan


def test_describe_instances_filters(cloud, alice):
    with_kernel, = launch(cloud, alice, KernelId="eki-aaaaaaaa", ClientToken="abc")
    plain, = launch(cloud, alice)
    default_id = described(alice, plain)["SecurityGroups"][0]["GroupId"]

    def found(name, *values):
        out = alice("DescribeInstances", Filters=[{"Name": name, "Values": list(values)}])
        return sorted(i["InstanceId"] for r in out["Reservations"] for i in r["Instances"])
    both = sorted([with_kernel, plain])
    assert found("virtualization-type", "paravirtual") == [with_kernel]
    assert found("virtualization-type", "hvm") == [plain]
    assert found("client-token", "abc") == [with_kernel]
    assert found("group-name", "default") == both == found("instance.group-name", "def*")
    assert found("group-id", default_id) == both == found("instance.group-id", default_id)
    assert found("root-device-type", "instance-store") == both
    assert found("root-device-name", "/dev/sda1") == both
    assert found("hypervisor", "kvm") == both == found("architecture", "x86_64")
    launched = described(alice, plain)["LaunchTime"]
    assert plain in found("launch-time", launched.isoformat()[:10] + "*")
    assert found("dns-name", "") == both and found("private-dns-name", "*") == both
    assert found("platform", "windows") == []
    stopped(cloud, alice, plain)
    assert found("state-reason-code", "Client.UserInitiatedShutdown") == [plain]
    assert found("instance-state-name", "stopped") == [plain] == found("instance-state-code", "80")


# -- the whole way down: CLC, real CC, real NC on test:///default ---------------------------------------------


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """A cloud whose zone-a cluster is a real ClusterController (reached by zeep in-process) of one
    real NodeController on libvirt's test driver."""
    from cc.cluster import ClusterController
    from cc.service import application as cc_application
    from nc.node import NodeController
    from tests.unit.test_cc_cluster import NodeLink, soap_proxy

    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path / "clc")))
    with cloud.store.atomic() as db:
        db["accounts"].insert({"account_id": ALICE, "name": "alice", "created": ids.now()})
        db["components"].insert({"kind": "cluster", "name": "cc-a", "partition": ZONE, "host": "127.0.0.1",
                                 "port": 1, "state": "ENABLED", "last_seen": ids.now(), "registered": ids.now()})
    add_image(cloud, ALICE, "emi-aaaaaaaa")
    monkeypatch.setattr(instances, "_image_url", lambda ctx, image: "")  # no image to fetch
    node = NodeController(default_config(EUCALYPTUS=str(tmp_path / "nc"), HYPERVISOR="test"))
    node.link = NodeLink(node)
    cluster = ClusterController(default_config(EUCALYPTUS=str(tmp_path / "cc"), NODES="node-1"))
    cluster.nc = lambda name: node.link.proxy
    cluster.poll_once()
    cc_proxy, _ = soap_proxy("EucalyptusCC", cc_application(cluster), "/axis2/services/EucalyptusCC")
    cloud.cc = lambda c: cc_proxy
    cloud.node, cloud.cluster = node, cluster
    yield cloud
    node.workers.shutdown(wait=True)
    node.power.shutdown(wait=True)
    for record in node.instances():
        node.hypervisor.destroy(record["instanceId"])
    cloud.store.close()


def settle(cloud, ec2, instance_id, wanted, timeout=10):
    from tests.cloudharness import poll_until

    def reached():
        cloud.cluster.poll_once()
        ClusterPoller(cloud).poll_once()
        return state(ec2, instance_id) == wanted
    assert poll_until(reached, timeout, 0.05), described(ec2, instance_id)


def test_stop_start_reboot_console_terminate_end_to_end(stack):
    alice = Ec2(stack, ALICE)
    instance_id = alice("RunInstances", ImageId="emi-aaaaaaaa", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    settle(stack, alice, instance_id, "running")
    assert stack.node.hypervisor.state(instance_id) == "RUNNING"

    alice("StopInstances", InstanceIds=[instance_id])
    settle(stack, alice, instance_id, "stopped")
    assert stack.node.hypervisor.state(instance_id) == "SHUTOFF"
    assert json.loads(stack.cluster.store.db["instances"].get(instance_id)["record"])["stateName"] == "Stopped"

    alice("ModifyInstanceAttribute", InstanceId=instance_id, InstanceType={"Value": "c1.medium"})
    alice("StartInstances", InstanceIds=[instance_id])
    settle(stack, alice, instance_id, "running")
    memory = stack.instance_types()["c1.medium"]["memory"]
    assert stack.node.hypervisor.conn.lookupByName(instance_id).maxMemory() == memory * 1024

    alice("RebootInstances", InstanceIds=[instance_id])
    assert stack.node.hypervisor.state(instance_id) == "RUNNING" and state(alice, instance_id) == "running"

    (stack.node.instance_dir / "work" / instance_id / "console.log").write_bytes(b"eucalyptus login: ")
    assert base64.b64decode(alice("GetConsoleOutput", InstanceId=instance_id)["Output"]) == b"eucalyptus login: "

    stack.node.hypervisor.conn.lookupByName(instance_id).shutdown()  # the guest powers itself off
    settle(stack, alice, instance_id, "stopped")
    assert described(alice, instance_id)["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"

    alice("TerminateInstances", InstanceIds=[instance_id])
    settle(stack, alice, instance_id, "terminated")
    assert stack.node.hypervisor.state(instance_id) is None


def test_describe_instances_shows_no_column_but_the_shown_ones(cloud, alice):
    """What DescribeInstances keeps each instance's XML by (instances.SHOWN_COLUMNS) is all it shows."""
    (instance_id,) = launch(cloud, alice)
    row = cloud.store.db["instances"].get(instance_id)
    shown = instances._instance(row)
    for column in set(row) - set(instances.SHOWN_COLUMNS):
        changed = {**row, column: "changed" if isinstance(row[column], str) else 12345}
        assert instances._instance(changed) == shown, column
    for column in instances.SHOWN_COLUMNS:
        assert column in row
