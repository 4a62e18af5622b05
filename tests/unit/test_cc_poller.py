"""clc.poller over a real ClusterController of two real NodeControllers (test:///default, all
in-process): the CLC polls for what changed since its last poll, keeps every instance of a
node that stops answering as it was (DescribeInstanceStatus: system impaired) however long it
is down, records the node's status, and ends the instances a node comes back without."""

import pytest

from cc.service import application as cc_application
from clc.cloud import Cloud
from clc.ec2 import instances
from clc.poller import ClusterPoller
from eucacore import ids
from eucacore.config import default_config
from tests.cloudharness import poll_until
from tests.unit.ec2wire import ALICE, Ec2
from tests.unit.test_cc_cluster import close_cluster, make_cluster, soap_proxy
from tests.unit.test_ec2_instances import add_image

ZONE = "zone-a"


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """A CLC (INSTANCE_TIMEOUT 1 s) whose zone-a cluster is a real ClusterController of node-a
    and node-b, both registered; ``stack.poller`` is its one poller, ``stack.calls`` what it
    asked the cluster."""
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path / "clc"), INSTANCE_TIMEOUT=1))
    with cloud.store.atomic() as db:
        db["accounts"].insert({"account_id": ALICE, "name": "alice", "created": ids.now()})
        for kind, name, zone in (("cluster", "cc-a", ZONE), ("node", "node-a", ""), ("node", "node-b", "")):
            db["components"].insert({"kind": kind, "name": name, "partition": zone, "host": "127.0.0.1", "port": 1,
                                     "state": "REGISTERED", "last_seen": 0, "registered": ids.now()})
    add_image(cloud, ALICE, "emi-aaaaaaaa")
    monkeypatch.setattr(instances, "_image_url", lambda ctx, image: "")  # no image to fetch
    cloud.cluster = make_cluster(tmp_path, {"node-a": {}, "node-b": {}}, SCHEDPOLICY="ROUNDROBIN")
    proxy, _ = soap_proxy("EucalyptusCC", cc_application(cloud.cluster), "/axis2/services/EucalyptusCC")
    cloud.calls = []

    class Recorded:
        def __getattr__(self, operation):
            def call(**request):
                cloud.calls.append((operation, request))
                return getattr(proxy, operation)(**request)
            return call
    cloud.cc = lambda cluster: Recorded()
    cloud.poller = ClusterPoller(cloud)
    yield cloud
    cloud.poller.stop()
    close_cluster(cloud.cluster)
    cloud.store.close()


def poll(stack):
    stack.cluster.poll_once()
    stack.poller.poll_once()


def state(ec2, instance_id) -> str:
    return ec2("DescribeInstances", InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def launch(stack, ec2, count) -> list[str]:
    reply = ec2("RunInstances", ImageId="emi-aaaaaaaa", MinCount=count, MaxCount=count)
    instance_ids = [i["InstanceId"] for i in reply["Instances"]]
    assert poll_until(lambda: poll(stack) or all(state(ec2, i) == "running" for i in instance_ids), 10, 0.05)
    return instance_ids


def statuses(ec2, instance_id) -> tuple[str, str]:
    (status,) = ec2("DescribeInstanceStatus", InstanceIds=[instance_id])["InstanceStatuses"]
    return status["SystemStatus"]["Status"], status["InstanceStatus"]["Status"]


def test_polls_ask_for_what_changed_and_keep_the_whole_report(stack):
    alice = Ec2(stack, ALICE)
    first, second = launch(stack, alice, 2)
    stack.calls.clear()
    poll(stack)
    ((operation, request),) = [c for c in stack.calls if c[0] == "DescribeInstances"]
    assert request["epoch"] == stack.cluster.view.epoch and request["sinceVersion"] == stack.cluster.view.version
    report = stack.poller._reports["cc-a"]
    assert set(report.instances) == {first, second}
    alice("StopInstances", InstanceIds=[first])
    assert poll_until(lambda: poll(stack) or state(alice, first) == "stopped", 10, 0.05)
    assert state(alice, second) == "running" and report.instances[second].stateName == "Extant"


def test_a_node_that_stops_answering_keeps_its_instances_impaired_until_it_is_back(stack):
    alice = Ec2(stack, ALICE)
    on_a, on_b = launch(stack, alice, 2)
    poll(stack)
    assert {r["name"]: r["state"] for r in stack.components("node")} == {"node-a": "ENABLED", "node-b": "ENABLED"}
    assert statuses(alice, on_a) == ("ok", "ok")
    stack.cluster.ncs["node-a"].down = True
    poll(stack)
    node = stack.store.db["components"].get(("node", "node-a"))
    assert (node["state"], node["partition"]) == ("NOTREADY", ZONE)
    assert statuses(alice, on_a) == ("impaired", "insufficient-data")
    (status,) = alice("DescribeInstanceStatus", InstanceIds=[on_a])["InstanceStatuses"]
    (detail,) = status["SystemStatus"]["Details"]
    assert (detail["Name"], detail["Status"], "ImpairedSince" in detail) == ("reachability", "failed", True)
    impaired = alice("DescribeInstanceStatus", Filters=[{"Name": "system-status.status", "Values": ["impaired"]}])
    assert [s["InstanceId"] for s in impaired["InstanceStatuses"]] == [on_a]
    assert poll_until(lambda: poll(stack) or ids.now() - stack.store.db["instances"].get(on_a)["updated"] > 2, 5, 0.2)
    assert (state(alice, on_a), state(alice, on_b)) == ("running", "running")  # past INSTANCE_TIMEOUT

    stack.cluster.ncs["node-a"].down = False
    poll(stack)
    assert stack.store.db["components"].get(("node", "node-a"))["state"] == "ENABLED"
    assert statuses(alice, on_a) == ("ok", "ok") and state(alice, on_a) == "running"


def test_a_node_back_without_an_instance_ends_it_with_the_reason(stack):
    alice = Ec2(stack, ALICE)
    lost, kept = launch(stack, alice, 2)
    node = stack.cluster.ncs["node-a"].node
    node.hypervisor.destroy(lost)
    with node.store.atomic() as db:
        db["instances"].delete(lost)
    assert poll_until(lambda: poll(stack) or state(alice, lost) == "terminated", 10, 0.05)
    instance = alice("DescribeInstances", InstanceIds=[lost])["Reservations"][0]["Instances"][0]
    assert instance["StateReason"]["Code"] == "Server.InternalError"
    assert "node node-a no longer has it" in instance["StateReason"]["Message"]
    assert state(alice, kept) == "running"


def test_a_running_instance_its_node_boots_again_stays_running(stack):
    alice = Ec2(stack, ALICE)
    (instance_id,) = launch(stack, alice, 1)
    node = stack.cluster.ncs[stack.cluster.instances([instance_id])[0]["serviceTag"]].node
    with node.store.atomic() as db:  # as after the node's restart, while it boots the instance again
        db["instances"].update(instance_id, {"state": "Pending"})
    poll(stack)
    assert stack.cluster.instances([instance_id])[0]["stateName"] == "Pending"
    assert state(alice, instance_id) == "running"
