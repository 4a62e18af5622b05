"""CreateImage end to end on the running cloud, with boto3: an instance's root disk (written to
after it booted, as a guest would) is copied by its node into a bucket of its account, the image
becomes available, and an instance of the new image boots from that copy."""

import hashlib
import os
import subprocess
import tempfile

import botocore.exceptions
import pytest

from tests.cloudharness import wait_for

pytestmark = pytest.mark.integration


def _state(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _run(ec2, image_id: str) -> str:
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    wait_for(lambda: _state(ec2, instance_id) == "running", timeout=120, what=f"{instance_id} running")
    return instance_id


def _flat(disk) -> bytes:
    """What a guest sees of its disk (a qcow2 overlay flattened with its image)."""
    with tempfile.NamedTemporaryFile() as flat:
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), flat.name], check=True, capture_output=True)
        return flat.read()


def _node_dir(cloud):
    return cloud.root / "var/lib/eucalyptus/instances"


def test_create_image_of_a_running_instance_and_run_it(cloud):
    tenant = cloud.new_account("create-image")
    ec2, s3 = tenant.client("ec2"), tenant.client("s3")
    s3.create_bucket(Bucket="ci-source")
    s3.put_object(Bucket="ci-source", Key="base.img", Body=os.urandom(96 * 1024))
    base = ec2.register_image(ImageLocation="ci-source/base.img", Name="ci-base")["ImageId"]
    source = _run(ec2, base)
    disk = _node_dir(cloud) / "work" / source / "root"  # a qcow2 overlay on the image
    # What the guest wrote since it booted, written as qemu would.
    subprocess.run(["qemu-io", "-c", "write -P 0x42 8192 512", str(disk)], check=True, capture_output=True)
    expected = _flat(disk)
    assert expected[8192:8704] == b"\x42" * 512

    image_id = ec2.create_image(InstanceId=source, Name="ci-made",
                                Description="made of a running instance")["ImageId"]
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] in ("pending", "available")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.create_image(InstanceId=source, Name="ci-made")
    assert e.value.response["Error"]["Code"] == "InvalidAMIName.Duplicate"
    ec2.get_waiter("image_available").wait(ImageIds=[image_id], WaiterConfig={"Delay": 1, "MaxAttempts": 90})

    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert (image["State"], image["Name"], image["Description"]) == ("available", "ci-made", "made of a running instance")
    assert (image["ImageType"], image["RootDeviceType"], image["SourceInstanceId"]) == \
        ("machine", "instance-store", source)
    bucket, key = image["ImageLocation"].split("/", 1)
    assert (bucket, key) == (f"{tenant.account_id}-images", f"{image_id}.img")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == expected
    assert _state(ec2, source) == "running"

    copy = _run(ec2, image_id)
    cached = _node_dir(cloud) / "cache" / image_id
    assert hashlib.sha256(cached.read_bytes()).digest() == hashlib.sha256(expected).digest()
    assert _flat(_node_dir(cloud) / "work" / copy / "root") == expected
    ec2.terminate_instances(InstanceIds=[copy, source])
    for instance_id in (copy, source):
        wait_for(lambda: _state(ec2, instance_id) == "terminated", timeout=120, what=f"{instance_id} terminated")
    ec2.deregister_image(ImageId=image_id)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.describe_images(ImageIds=[image_id])
    assert e.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_create_image_of_a_stopped_instance_without_reboot(cloud):
    tenant = cloud.new_account("create-image-stopped")
    ec2, s3 = tenant.client("ec2"), tenant.client("s3")
    s3.create_bucket(Bucket="ci-stopped")
    s3.put_object(Bucket="ci-stopped", Key="base.img", Body=b"\x01" * 8192)
    source = _run(ec2, ec2.register_image(ImageLocation="ci-stopped/base.img", Name="ci-stopped-base")["ImageId"])
    ec2.stop_instances(InstanceIds=[source])
    wait_for(lambda: _state(ec2, source) == "stopped", timeout=120, what=f"{source} stopped")
    image_id = ec2.create_image(InstanceId=source, Name="ci-of-stopped", NoReboot=True)["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[image_id], WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    key = f"{image_id}.img"
    assert s3.get_object(Bucket=f"{tenant.account_id}-images", Key=key)["Body"].read() == b"\x01" * 8192
    ec2.terminate_instances(InstanceIds=[source])
