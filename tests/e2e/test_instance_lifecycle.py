"""A real instance through the whole cloud: boto3 against the CLC, the CC, the NC on libvirt
qemu:///system (KVM where it works, TCG otherwise), the project's guest image (EKI + ERI + EMI)
from Walrus, a NoCloud seed, a bridge with DHCP. The instance boots, says so on its console,
answers on port 80, reboots, stops, starts and terminates, and leaves nothing behind."""

import re
import urllib.request

import libvirt
import pytest

from tests.cloudharness import running_cloud, wait_for

USER_DATA = b"#!/bin/sh\necho user-data-says-$((6 * 7))\n"
BOOTED = "EUCA-BOOT: finished"


@pytest.fixture(scope="module")
def qemu_cloud(tmp_path_factory, libvirtd, host_network):
    with running_cloud(tmp_path_factory.mktemp("qemu-cloud"), HYPERVISOR="kvm", VNET_MODE="SYSTEM",
                       VNET_BRIDGE=host_network.bridge, NC_POLLING_FREQUENCY="1") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def images(qemu_cloud, guest_image):
    """(emi, eki, eri) of the guest image, uploaded to Walrus and registered as a user would."""
    ec2, s3 = qemu_cloud.client("ec2"), qemu_cloud.client("s3")
    s3.create_bucket(Bucket="guest")
    registered = {}
    for role, path in (("kernel", guest_image.kernel), ("ramdisk", guest_image.ramdisk), ("disk", guest_image.disk)):
        s3.upload_file(str(path), "guest", role)
    registered["eki"] = ec2.register_image(ImageLocation="guest/kernel", Name="guest-kernel",
                                           KernelId="true")["ImageId"]
    registered["eri"] = ec2.register_image(ImageLocation="guest/ramdisk", Name="guest-ramdisk",
                                           RamdiskId="true")["ImageId"]
    registered["emi"] = ec2.register_image(ImageLocation="guest/disk", Name="guest", KernelId=registered["eki"],
                                           RamdiskId=registered["eri"])["ImageId"]
    return registered


def console(ec2, instance_id: str) -> str:
    """The instance's console output (botocore decodes EC2's base64 itself)."""
    return ec2.get_console_output(InstanceId=instance_id).get("Output") or ""


def state(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_a_real_instance_boots_runs_its_user_data_and_goes_away_cleanly(qemu_cloud, images):
    ec2 = qemu_cloud.client("ec2")
    ec2.create_key_pair(KeyName="e2e")
    instance = ec2.run_instances(ImageId=images["emi"], MinCount=1, MaxCount=1, InstanceType="m1.small",
                                 KeyName="e2e", UserData=USER_DATA.decode())["Instances"][0]
    instance_id = instance["InstanceId"]
    conn = libvirt.open("qemu:///system")
    try:
        wait_for(lambda: state(ec2, instance_id) == "running", timeout=120, what="running")
        wait_for(lambda: BOOTED in console(ec2, instance_id), timeout=180, what="the boot marker")
        out = console(ec2, instance_id)
        assert f"EUCA-BOOT: instance-id {instance_id}" in out
        assert "user-data-says-42" in out
        address = re.search(r"EUCA-BOOT: dhcp (\d+\.\d+\.\d+\.\d+)", out).group(1)
        page = urllib.request.urlopen(f"http://{address}/", timeout=10).read().decode()
        assert instance_id in page
        described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        assert described["Placement"]["AvailabilityZone"] == "zone-a"

        ec2.reboot_instances(InstanceIds=[instance_id])
        wait_for(lambda: console(ec2, instance_id).count(BOOTED) == 2, timeout=180, what="the second boot")
        assert state(ec2, instance_id) == "running"

        ec2.stop_instances(InstanceIds=[instance_id])
        wait_for(lambda: state(ec2, instance_id) == "stopped", timeout=120, what="stopped")
        assert conn.lookupByName(instance_id).isActive() == 0  # defined, off, its disk kept
        ec2.start_instances(InstanceIds=[instance_id])
        wait_for(lambda: state(ec2, instance_id) == "running", timeout=120, what="running again")
        wait_for(lambda: console(ec2, instance_id).count(BOOTED) == 3, timeout=180, what="the boot after start")

        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_for(lambda: state(ec2, instance_id) == "terminated", timeout=120, what="terminated")
        assert instance_id not in [d.name() for d in conn.listAllDomains()]
        work = qemu_cloud.root / "var/lib/eucalyptus/instances/work" / instance_id
        assert not work.exists()
    finally:
        try:
            conn.lookupByName(instance_id).destroy()
        except libvirt.libvirtError:
            pass
        try:
            conn.lookupByName(instance_id).undefine()
        except libvirt.libvirtError:
            pass
        conn.close()
