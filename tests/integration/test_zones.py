"""Two zones of two nodes each, every CC and NC a real process on loopback (libvirt's test
driver), through boto3 against the CLC: placement by each zone's SCHEDPOLICY, Placement's
AvailabilityZone, capacity running out (InsufficientInstanceCapacity, also for two requests
racing for the last place), a node killed mid-run (marked down, its instances kept and shown
impaired, new ones placed elsewhere; back with its instances as they were), a node that comes
back without its instances (they end terminated, with the reason), and a CC restarted under
POWERSAVE that rebuilds its view from its nodes and reports the idle one.

Each NC is capped at two cores (MAX_CORES): two m1.small instances fill it. The tests run in
order, on one cloud; each says what the zones hold when it ends.
"""

import threading
import time

import botocore.exceptions
import pytest

from eucacore import pki, soap
from tests.cloudharness import Cloud, Zone, register_image, wait_for

pytestmark = pytest.mark.integration
FAST = {"Delay": 1, "MaxAttempts": 60}
TWO_CORES = {"MAX_CORES": "2"}
INSTANCE_TIMEOUT = 8  # long enough for a RunInstances on a busy machine


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    zones = {"zone-a": Zone(nodes=[TWO_CORES, TWO_CORES], settings={"SCHEDPOLICY": "GREEDY"}),
             "zone-b": Zone(nodes=[TWO_CORES, TWO_CORES], settings={"SCHEDPOLICY": "ROUNDROBIN"})}
    cloud = Cloud(tmp_path_factory.mktemp("zones"), zones=zones, INSTANCE_TIMEOUT=str(INSTANCE_TIMEOUT))
    try:
        cloud.start()
        wait_for(lambda: set(cloud.node_states().values()) == {"ENABLED"}, timeout=30, what="every node enabled")
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="module")
def ec2(cloud):
    return cloud.client("ec2")


@pytest.fixture(scope="module")
def image(cloud, ec2):
    return register_image(ec2, cloud.client("s3"), "zones-images", "zones-image", size=4096)


def run(ec2, image, count=1, zone=None) -> list[str]:
    placement = {"Placement": {"AvailabilityZone": zone}} if zone else {}
    reply = ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count, **placement)
    instance_ids = [i["InstanceId"] for i in reply["Instances"]]
    ec2.get_waiter("instance_running").wait(InstanceIds=instance_ids, WaiterConfig=FAST)
    return instance_ids


def refused(call) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def described(ec2, instance_id) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def on_node(cloud, name) -> dict[str, str]:
    """The instances the node's NC runs (id -> its state), asked as its CC asks it."""
    host = cloud.hosts[name]
    nc = soap.client("EucalyptusNC", "127.0.0.1", host.port, pki.component_keys(cloud.keys_dir(), "cluster"))
    return {i.instanceId: i.stateName for i in nc.ncDescribeInstances().instances or [] if i.stateName != "Teardown"}


def placement(cloud, zone) -> list[int]:
    """How many live instances each NC of the zone runs, in the zone's order."""
    return [len(on_node(cloud, h.name)) for h in cloud.zone_hosts(zone, "nc")]


def cc_nodes(cloud, zone) -> dict[str, str]:
    """The zone's nodes' statuses as its CC's DescribeResources reports them."""
    cc = cloud.zone_hosts(zone, "cc")[0]
    client = soap.client("EucalyptusCC", "127.0.0.1", cc.port, pki.component_keys(cloud.keys_dir(), "clc"))
    return {n.serviceTag: n.status for n in client.DescribeResources(instanceTypes=[]).nodes or []}


def node_address(cloud, name) -> str:
    return cloud.hosts[name].address


def system_status(ec2, instance_id) -> str:
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
    return statuses[0]["SystemStatus"]["Status"] if statuses else "none"


def test_greedy_fills_the_first_node_and_placement_is_reported(cloud, ec2, image):
    instance_ids = run(ec2, image, 3, "zone-a")
    assert placement(cloud, "zone-a") == [2, 1]
    assert {described(ec2, i)["Placement"]["AvailabilityZone"] for i in instance_ids} == {"zone-a"}
    assert placement(cloud, "zone-b") == [0, 0]


def test_roundrobin_takes_the_nodes_in_turn(cloud, ec2, image):
    instance_ids = run(ec2, image, 2, "zone-b")
    assert placement(cloud, "zone-b") == [1, 1]
    assert {described(ec2, i)["Placement"]["AvailabilityZone"] for i in instance_ids} == {"zone-b"}


def test_two_requests_for_the_last_place_of_a_zone(cloud, ec2, image):
    outcomes = []

    def attempt():
        try:
            outcomes.append(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                              Placement={"AvailabilityZone": "zone-a"})["Instances"][0]["InstanceId"])
        except botocore.exceptions.ClientError as e:
            outcomes.append(e.response["Error"]["Code"])
    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.split("-")[0] for o in outcomes) == ["InsufficientInstanceCapacity", "i"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[o for o in outcomes if o.startswith("i-")],
                                            WaiterConfig=FAST)
    assert placement(cloud, "zone-a") == [2, 2]
    assert refused(lambda: run(ec2, image, 1, "zone-a")) == "InsufficientInstanceCapacity"
    (elsewhere,) = run(ec2, image)  # no zone asked for: the one with room
    assert described(ec2, elsewhere)["Placement"]["AvailabilityZone"] == "zone-b"
    ec2.terminate_instances(InstanceIds=[elsewhere])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[elsewhere], WaiterConfig=FAST)


def test_a_node_killed_mid_run_keeps_its_instances(cloud, ec2, image):
    (victim,) = on_node(cloud, "nc-zone-b-1")
    cloud.kill9("nc-zone-b-1")
    wait_for(lambda: cloud.node_states()[node_address(cloud, "nc-zone-b-1")] == "NOTREADY", timeout=20,
             what="the killed node NOTREADY")
    assert cc_nodes(cloud, "zone-b")[node_address(cloud, "nc-zone-b-1")] == "down"
    wait_for(lambda: system_status(ec2, victim) == "impaired", timeout=10, what="its instance impaired")
    status = ec2.describe_instance_status(InstanceIds=[victim])["InstanceStatuses"][0]
    assert status["InstanceState"]["Name"] == "running"
    assert status["SystemStatus"]["Details"][0]["Status"] == "failed"
    assert status["InstanceStatus"]["Status"] == "insufficient-data"

    (moved,) = run(ec2, image, 1, "zone-b")  # the live node takes it
    assert moved in on_node(cloud, "nc-zone-b-2")
    assert refused(lambda: run(ec2, image, 1, "zone-b")) == "InsufficientInstanceCapacity"
    time.sleep(INSTANCE_TIMEOUT + 3)  # longer than an unreported instance may live (polls: every 1 s)
    assert described(ec2, victim)["State"]["Name"] == "running"

    cloud.start_daemon("nc-zone-b-1")
    wait_for(lambda: cloud.node_states()[node_address(cloud, "nc-zone-b-1")] == "ENABLED", timeout=20,
             what="the node enabled again")
    wait_for(lambda: system_status(ec2, victim) == "ok", timeout=20, what="its instance ok again")
    assert on_node(cloud, "nc-zone-b-1") == {victim: "Extant"}
    assert described(ec2, victim)["State"]["Name"] == "running"
    ec2.terminate_instances(InstanceIds=[moved])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[moved], WaiterConfig=FAST)


def test_a_node_back_without_its_instances_ends_them(cloud, ec2):
    lost = sorted(on_node(cloud, "nc-zone-a-2"))
    cloud.kill9("nc-zone-a-2")
    for path in (cloud.hosts["nc-zone-a-2"].conf.parent / "var/lib/eucalyptus").glob("nc.db*"):
        path.unlink()  # the node lost its state
    cloud.start_daemon("nc-zone-a-2")
    ec2.get_waiter("instance_terminated").wait(InstanceIds=lost, WaiterConfig=FAST)
    reasons = {described(ec2, i)["StateReason"]["Message"] for i in lost}
    assert len(reasons) == 1 and "no longer has it" in reasons.pop()
    assert placement(cloud, "zone-a") == [2, 0]


def test_a_restarted_cc_rebuilds_its_view_and_powersave_reports_the_idle_node(cloud, ec2, image):
    """Zone-b holds one instance on each node; the second node's is ended, so that it is idle."""
    (second,) = on_node(cloud, "nc-zone-b-2")
    ec2.terminate_instances(InstanceIds=[second])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[second], WaiterConfig=FAST)
    cc = cloud.zone_hosts("zone-b", "cc")[0]
    cloud.stop_daemon(cc.name)
    cc.conf.write_text(cc.conf.read_text().replace('SCHEDPOLICY="ROUNDROBIN"', 'SCHEDPOLICY="POWERSAVE"')
                       + 'POWER_IDLETHRESH="0"\n')
    cloud.start_daemon(cc.name)
    wait_for(lambda: cc_nodes(cloud, "zone-b").get(node_address(cloud, "nc-zone-b-2")) == "idle", timeout=20,
             what="the empty node idle")
    assert cc_nodes(cloud, "zone-b")[node_address(cloud, "nc-zone-b-1")] == "enabled"
    (filled,) = run(ec2, image, 1, "zone-b")  # onto the busy node, not the idle one
    assert placement(cloud, "zone-b") == [2, 0]
    (woken,) = run(ec2, image, 1, "zone-b")
    assert placement(cloud, "zone-b") == [2, 1]
    assert {described(ec2, i)["State"]["Name"] for i in (filled, woken)} == {"running"}
