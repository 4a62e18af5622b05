"""Volumes and snapshots with boto3 against the live daemons: the CLC records them and the
zone-a SC (registered by the harness) creates and deletes the volumes' files."""

import datetime
import json
import time
from pathlib import Path

import botocore.exceptions
import pytest

from eucacore.policy import quota_policy
from tests.cloudharness import register_image, wait_for

pytestmark = pytest.mark.integration

ZONE = "zone-a"


def _code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def _error(call, **params) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**params)
    return _code(e)


def _volumes_dir(cloud) -> Path:
    return cloud.root / "var/lib/eucalyptus/volumes"


@pytest.fixture(scope="module")
def tenant(cloud):
    return cloud.new_account("vol-tenant")


@pytest.fixture(scope="module")
def ec2(tenant):
    return tenant.client("ec2")


def test_create_describe_delete(cloud, ec2):
    volume = ec2.create_volume(Size=1, AvailabilityZone=ZONE,
                               TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "v1"}]}])
    volume_id = volume["VolumeId"]
    assert (volume["State"], volume["Size"], volume["AvailabilityZone"]) == ("available", 1, ZONE)
    backing = _volumes_dir(cloud) / volume_id
    assert backing.stat().st_size == 2**30  # the SC's sparse file
    [described] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert described["Tags"] == [{"Key": "Name", "Value": "v1"}] and described["State"] == "available"
    assert [v["VolumeId"] for v in ec2.describe_volumes(
        Filters=[{"Name": "tag:Name", "Values": ["v1"]}])["Volumes"]] == [volume_id]
    [status] = ec2.describe_volume_status(VolumeIds=[volume_id])["VolumeStatuses"]
    assert status["VolumeStatus"]["Status"] == "ok"
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    ec2.delete_volume(VolumeId=volume_id)
    assert not backing.exists()
    assert _error(ec2.describe_volumes, VolumeIds=[volume_id]) == "InvalidVolume.NotFound"
    assert volume_id not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}


def test_refusals(ec2):
    assert _error(ec2.create_volume, Size=1, AvailabilityZone="zone-nowhere") == "InvalidZone.NotFound"
    assert _error(ec2.create_volume, Size=2000, AvailabilityZone=ZONE) == "InvalidParameterValue"
    assert _error(ec2.create_volume, Size=1, AvailabilityZone=ZONE, DryRun=True) == "DryRunOperation"
    assert _error(ec2.delete_volume, VolumeId="vol-00000000") == "InvalidVolume.NotFound"
    assert _error(ec2.describe_volumes, Filters=[{"Name": "bogus", "Values": ["x"]}]) == "InvalidParameterValue"


def test_another_account_sees_nothing(cloud, ec2):
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    other = cloud.new_account("vol-stranger").client("ec2")
    try:
        assert other.describe_volumes()["Volumes"] == []
        assert other.describe_snapshots()["Snapshots"] == []
        assert _error(other.describe_volumes, VolumeIds=[volume_id]) == "InvalidVolume.NotFound"
        assert _error(other.delete_volume, VolumeId=volume_id) == "InvalidVolume.NotFound"
        assert _error(other.create_snapshot, VolumeId=volume_id) == "InvalidVolume.NotFound"
        assert _error(other.describe_snapshots, SnapshotIds=[snapshot_id]) == "InvalidSnapshot.NotFound"
        assert _error(other.delete_snapshot, SnapshotId=snapshot_id) == "InvalidSnapshot.NotFound"
    finally:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
        ec2.delete_volume(VolumeId=volume_id)


def test_snapshots_shared_and_restored(cloud, ec2, tenant):
    volume_id = ec2.create_volume(Size=2, AvailabilityZone=ZONE)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume_id, Description="before upgrade")
    snapshot_id = snapshot["SnapshotId"]
    assert (snapshot["State"], snapshot["Progress"], snapshot["VolumeSize"]) == ("completed", "100%", 2)
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    friend = cloud.new_account("vol-friend")
    theirs = friend.client("ec2")
    assert _error(theirs.create_volume, SnapshotId=snapshot_id, AvailabilityZone=ZONE) == "InvalidSnapshot.NotFound"
    ec2.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission",
                                  OperationType="add", UserIds=[friend.account_id])
    attribute = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert attribute["CreateVolumePermissions"] == [{"UserId": friend.account_id}]
    shared = theirs.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]
    assert [(s["SnapshotId"], s["OwnerId"]) for s in shared] == [(snapshot_id, tenant.account_id)]
    restored = theirs.create_volume(SnapshotId=snapshot_id, AvailabilityZone=ZONE)
    assert (restored["Size"], restored["SnapshotId"], restored["State"]) == (2, snapshot_id, "available")
    ec2.reset_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert theirs.describe_snapshots()["Snapshots"] == []
    theirs.delete_volume(VolumeId=restored["VolumeId"])
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    ec2.delete_volume(VolumeId=volume_id)
    assert snapshot_id not in {s["SnapshotId"] for s in ec2.describe_snapshots()["Snapshots"]}


def _state(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_attach_and_detach(ec2, tenant):
    image_id = register_image(ec2, tenant.client("s3"), "vol-tenant-images", "vol-image")
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    try:
        wait_for(lambda: _state(ec2, instance_id) == "running", timeout=60, what="running")
        attachment = ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
        assert (attachment["InstanceId"], attachment["Device"], attachment["State"]) == \
            (instance_id, "/dev/sdf", "attached")
        ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1, "MaxAttempts": 5})
        assert _error(ec2.delete_volume, VolumeId=volume_id) == "VolumeInUse"
        ec2.detach_volume(VolumeId=volume_id)
        assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_for(lambda: _state(ec2, instance_id) == "terminated", timeout=60, what="terminated")
        ec2.delete_volume(VolumeId=volume_id)


def test_volume_quota(cloud):
    tenant = cloud.new_account("vol-quota")
    ec2 = tenant.client("ec2")
    cloud.client("euare").put_account_policy(AccountName="vol-quota", PolicyName="quota",
                                             PolicyDocument=quota_policy({"volumes": 1}))
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    assert _error(ec2.create_volume, Size=1, AvailabilityZone=ZONE) == "VolumeLimitExceeded"
    assert [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]] == [volume_id]
    quotas = {q["Name"]: q for q in cloud.client("euare").list_account_quotas(AccountName="vol-quota")["Quotas"]}
    assert (quotas["volumes"]["Limit"], quotas["volumes"]["Used"]) == (1, 1)
    assert quotas["volume-gib"]["Used"] == 1
    ec2.delete_volume(VolumeId=volume_id)
    ec2.delete_volume(VolumeId=ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"])


def test_volume_usage_report_in_gib_hours(cloud):
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    tenant = cloud.new_account("vol-usage")
    ec2 = tenant.client("ec2")
    volume_id = ec2.create_volume(Size=3, AvailabilityZone=ZONE)["VolumeId"]
    time.sleep(2)  # the usage itself: 3 GiB for about two seconds
    ec2.delete_volume(VolumeId=volume_id)
    report = cloud.client("reporting").generate_report(
        Type="volume", Format="json", AccountName="vol-usage", StartDate=start,
        EndDate=start + datetime.timedelta(hours=1))
    rows = json.loads(report["Data"])["rows"]
    assert len(rows) == 1, rows
    assert (rows[0]["account_id"], rows[0]["count"]) == (tenant.account_id, 1)
    assert 3 * 2 / 3600 <= rows[0]["gib_hours"] < 3 * 30 / 3600  # GiB-hours of ~2 s, however slow the host
