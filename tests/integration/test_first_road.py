"""Item 6 of the foundation: the first road, driven with boto3 against the five live daemons."""

import hashlib
import os

import botocore.exceptions
import pytest

from tests.cloudharness import wait_for

pytestmark = pytest.mark.integration


def _state(ec2, instance_id):
    res = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return res[0]["Instances"][0]["State"]["Name"]


def test_regions_and_zones(cloud, ec2):
    regions = ec2.describe_regions()["Regions"]
    assert [r["RegionName"] for r in regions] == ["eucalyptus"]
    assert regions[0]["Endpoint"] == cloud.ec2_url
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [(z["ZoneName"], z["State"]) for z in zones] == [("zone-a", "available")]


def test_one_zone_per_registered_cluster(cloud, ec2):
    cloud.euca_conf("--register-cluster", "zone-b", "127.0.0.1:1")
    try:
        zones = {z["ZoneName"]: z for z in ec2.describe_availability_zones()["AvailabilityZones"]}
        assert set(zones) == {"zone-a", "zone-b"}
        # Nothing listens for zone-b: once the CLC has polled it, it is unavailable.
        wait_for(lambda: {z["ZoneName"]: z["State"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
                 .get("zone-b") == "unavailable", timeout=20, what="zone-b unavailable")
        only_b = ec2.describe_availability_zones(ZoneNames=["zone-b"])["AvailabilityZones"]
        assert [z["ZoneName"] for z in only_b] == ["zone-b"]
    finally:
        cloud.euca_conf("--deregister-cluster", "zone-b")
    assert [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]] == ["zone-a"]


def test_key_pairs(ec2):
    created = ec2.create_key_pair(KeyName="road-key")
    assert created["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert len(created["KeyFingerprint"].split(":")) == 20
    listed = ec2.describe_key_pairs(KeyNames=["road-key"])["KeyPairs"]
    assert listed[0]["KeyFingerprint"] == created["KeyFingerprint"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.create_key_pair(KeyName="road-key")
    assert e.value.response["Error"]["Code"] == "InvalidKeyPair.Duplicate"
    ec2.delete_key_pair(KeyName="road-key")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.describe_key_pairs(KeyNames=["road-key"])
    assert e.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"


def test_walrus_bucket_and_objects(s3):
    s3.create_bucket(Bucket="road-bucket")
    body = os.urandom(3 * 1024 * 1024 + 17)
    s3.put_object(Bucket="road-bucket", Key="dir/obj one", Body=body, ContentType="application/x-test")
    got = s3.get_object(Bucket="road-bucket", Key="dir/obj one")
    assert got["Body"].read() == body and got["ContentType"] == "application/x-test"
    assert got["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    listed = s3.list_objects_v2(Bucket="road-bucket")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/obj one"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="road-bucket")
    assert e.value.response["Error"]["Code"] == "BucketNotEmpty"
    s3.delete_object(Bucket="road-bucket", Key="dir/obj one")
    assert s3.list_objects_v2(Bucket="road-bucket")["KeyCount"] == 0
    s3.delete_bucket(Bucket="road-bucket")
    assert "road-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.fixture(scope="module")
def image(cloud, ec2, s3):
    """A machine image: an object in Walrus, registered with the CLC."""
    s3.create_bucket(Bucket="images")
    data = os.urandom(2 * 1024 * 1024)
    s3.put_object(Bucket="images", Key="road.img", Body=data)
    image_id = ec2.register_image(ImageLocation="images/road.img", Name="road-image")["ImageId"]
    return image_id, data


def test_register_and_describe_image(ec2, image):
    image_id, data = image
    assert image_id.startswith("emi-")
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert images[0]["ImageLocation"] == "images/road.img"
    assert images[0]["State"] == "available" and images[0]["Name"] == "road-image"
    assert image_id in [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.register_image(ImageLocation="images/no-such-object", Name="missing")
    assert e.value.response["Error"]["Code"] == "InvalidManifest"


def test_run_describe_terminate(cloud, ec2, image):
    image_id, data = image
    ec2.create_key_pair(KeyName="run-key")
    reservation = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="m1.small",
                                    KeyName="run-key")
    instance = reservation["Instances"][0]
    instance_id = instance["InstanceId"]
    assert instance["State"]["Name"] == "pending" and instance["Placement"]["AvailabilityZone"] == "zone-a"
    wait_for(lambda: _state(ec2, instance_id) == "running", timeout=60, what="running")
    described = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
    ids = [i["InstanceId"] for r in described["Reservations"] for i in r["Instances"]]
    assert instance_id in ids
    # The NC fetched the image from Walrus into its cache, byte for byte.
    cached = cloud.root / "var/lib/eucalyptus/instances/cache" / image_id
    assert cached.read_bytes() == data
    changes = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
    assert changes[0]["PreviousState"]["Name"] == "running"
    assert changes[0]["CurrentState"]["Name"] == "shutting-down"
    wait_for(lambda: _state(ec2, instance_id) == "terminated", timeout=60, what="terminated")


def test_run_more_than_fits_is_insufficient_capacity(ec2, image):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.run_instances(ImageId=image[0], MinCount=500, MaxCount=500, InstanceType="c1.xlarge")
    assert e.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"


def test_errors_are_aws_documents(ec2):
    for call, code in [
        (lambda: ec2.describe_instances(InstanceIds=["i-00000000"]), "InvalidInstanceID.NotFound"),
        (lambda: ec2.run_instances(ImageId="emi-00000000", MinCount=1, MaxCount=1), "InvalidAMIID.NotFound"),
        (lambda: ec2.describe_instances(Filters=[{"Name": "no-such-filter", "Values": ["x"]}]),
         "InvalidParameterValue"),
        (lambda: ec2.create_key_pair(KeyName="dry", DryRun=True), "DryRunOperation"),
    ]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == code


def test_request_ids_follow_the_request_down(cloud, ec2, image):
    """One request id in the CLC's, the CC's and the NC's request log lines."""
    reservation = ec2.run_instances(ImageId=image[0], MinCount=1, MaxCount=1)
    request_id = reservation["ResponseMetadata"]["RequestId"]
    instance_id = reservation["Instances"][0]["InstanceId"]
    try:
        for name in ("clc", "cc", "nc"):
            assert cloud.wait_for_log(name, request_id), f"{name} log lacks request id {request_id}"
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
