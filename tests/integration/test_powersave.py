"""POWERSAVE with real processes on loopback: one zone of two nodes whose NC_POWERDOWN_COMMAND
"powers the host down" by stopping the NC process (SIGSTOP: it answers nothing, as a sleeping
host), and a stand-in for the LAN's wake-on-LAN hardware (tests.cloudharness.WakeOnLan) that
checks each magic packet and continues (SIGCONT) the stopped NCs.

Idle nodes are powered down through ncPowerDown and reported asleep (STOPPED at the CLC);
a RunInstances through boto3 wakes one, the instance runs on it, and once it is terminated
the node goes back to sleep."""

import os
import signal

import pytest

from cc.power import magic_packet
from eucacore import pki, soap
from tests.cloudharness import Cloud, WakeOnLan, Zone, register_image, wait_for

pytestmark = pytest.mark.integration
FAST = {"Delay": 1, "MaxAttempts": 60}
NODE = {"MAX_CORES": "2", "NC_POWERDOWN_COMMAND": "sh -c 'kill -STOP $PPID'"}
NCS = ("nc", "nc-zone-a-2")


def stopped(pid: int) -> bool:
    """Whether the process is stopped (state T in /proc/PID/stat): the host "asleep"."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    pids = []

    def wake_the_hosts(payload):
        if payload == magic_packet("00:00:00:00:00:00"):  # lo's MAC: every NC here shares it
            for pid in pids:
                os.kill(pid, signal.SIGCONT)

    lan = WakeOnLan(wake_the_hosts)
    settings = {"SCHEDPOLICY": "POWERSAVE", "POWER_IDLETHRESH": "2", "POWER_WAKETHRESH": "30",
                "POWER_WAKE_ADDRESS": lan.address}
    cloud = Cloud(tmp_path_factory.mktemp("powersave"), zones={"zone-a": Zone(nodes=[NODE, NODE], settings=settings)})
    cloud.lan = lan
    try:
        cloud.start()
        pids += [cloud.procs[name].pid for name in NCS]
        yield cloud
    finally:
        for pid in pids:  # a stopped process would not act on SIGTERM
            os.kill(pid, signal.SIGCONT)
        cloud.stop()
        lan.close()


def nodes(cloud) -> dict[str, str]:
    """The nodes' statuses as the CC's DescribeResources reports them, by NC daemon name."""
    cc = soap.client("EucalyptusCC", "127.0.0.1", cloud.hosts["cc"].port, pki.component_keys(cloud.keys_dir(), "clc"))
    by_address = {n.serviceTag: n.status for n in cc.DescribeResources(instanceTypes=[]).nodes or []}
    return {name: by_address.get(cloud.hosts[name].address) for name in NCS}


def asleep(cloud) -> set[str]:
    return {name for name in NCS if stopped(cloud.procs[name].pid)}


def test_idle_nodes_sleep_a_run_wakes_one_and_it_sleeps_again_when_idle(cloud):
    wait_for(lambda: set(nodes(cloud).values()) == {"asleep"}, timeout=30, what="both idle nodes asleep")
    wait_for(lambda: asleep(cloud) == set(NCS), timeout=10, what="both NC processes stopped")
    wait_for(lambda: set(cloud.node_states().values()) == {"STOPPED"}, timeout=10, what="the CLC seeing them STOPPED")
    ec2 = cloud.client("ec2")
    image = register_image(ec2, cloud.client("s3"), "powersave-images", "powersave-image", size=4096)

    (instance,) = [i["InstanceId"] for i in ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"]]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig=FAST)
    assert cloud.lan.packets == [magic_packet("00:00:00:00:00:00")]
    statuses = nodes(cloud)
    woken = next(name for name, status in statuses.items() if status == "enabled")
    assert sorted(statuses.values()) == ["asleep", "enabled"]
    assert cloud.node_states()[cloud.hosts[woken].address] == "ENABLED"

    ec2.terminate_instances(InstanceIds=[instance])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance], WaiterConfig=FAST)
    wait_for(lambda: nodes(cloud)[woken] == "asleep", timeout=30, what="the woken node asleep again")
    wait_for(lambda: woken in asleep(cloud), timeout=10, what="its NC process stopped again")
