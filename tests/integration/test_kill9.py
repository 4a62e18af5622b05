"""Item 7: whatever a daemon acknowledged survives ``kill -9`` and a restart, for each daemon."""

import pytest

from eucacore import pki, soap
from tests.cloudharness import register_image, running_cloud, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kcloud(tmp_path_factory):
    with running_cloud(tmp_path_factory.mktemp("kill9")) as c:
        yield c


def _restart(cloud, name):
    cloud.kill9(name)
    cloud.start_daemon(name)


def _state(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


@pytest.fixture(scope="module")
def running(kcloud):
    """An instance that reached running before any daemon was killed."""
    ec2, s3 = kcloud.client("ec2"), kcloud.client("s3")
    image_id = register_image(ec2, s3, "kimages", "kill-image")
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    wait_for(lambda: _state(ec2, instance_id) == "running", timeout=60, what="running")
    return image_id, instance_id


def test_clc_keeps_key_pairs_images_and_instances(kcloud, running):
    ec2 = kcloud.client("ec2")
    fingerprint = ec2.create_key_pair(KeyName="survivor")["KeyFingerprint"]
    _restart(kcloud, "clc")
    ec2 = kcloud.client("ec2")
    assert ec2.describe_key_pairs(KeyNames=["survivor"])["KeyPairs"][0]["KeyFingerprint"] == fingerprint
    assert ec2.describe_images(ImageIds=[running[0]])["Images"][0]["State"] == "available"
    assert _state(ec2, running[1]) == "running"


def test_walrus_keeps_objects(kcloud):
    s3 = kcloud.client("s3")
    s3.create_bucket(Bucket="durable")
    s3.put_object(Bucket="durable", Key="a", Body=b"acknowledged")
    _restart(kcloud, "walrus")
    assert kcloud.client("s3").get_object(Bucket="durable", Key="a")["Body"].read() == b"acknowledged"


def test_cc_keeps_its_instances(kcloud, running):
    _restart(kcloud, "cc")
    cc = soap.client("EucalyptusCC", "127.0.0.1", kcloud.ports["CC_PORT"],
                     pki.component_keys(kcloud.keys_dir(), "clc"))
    reported = {i.instanceId: i.stateName for i in cc.DescribeInstances().instances}
    assert reported.get(running[1]) == "Extant"
    assert _state(kcloud.client("ec2"), running[1]) == "running"


def test_nc_keeps_its_instances(kcloud, running):
    _restart(kcloud, "nc")
    nc = soap.client("EucalyptusNC", "127.0.0.1", kcloud.ports["NC_PORT"],
                     pki.component_keys(kcloud.keys_dir(), "cluster"))
    wait_for(lambda: {i.instanceId: i.stateName for i in nc.ncDescribeInstances().instances}.get(running[1])
             == "Extant", timeout=30, what="instance Extant on the restarted NC")
    assert _state(kcloud.client("ec2"), running[1]) == "running"


def test_sc_keeps_volumes(kcloud):
    sc = soap.client("EucalyptusSC", "127.0.0.1", kcloud.ports["SC_PORT"], pki.component_keys(kcloud.keys_dir(), "clc"))
    sc.CreateStorageVolume(volumeId="vol-0000beef", size=1)
    _restart(kcloud, "sc")
    sc = soap.client("EucalyptusSC", "127.0.0.1", kcloud.ports["SC_PORT"], pki.component_keys(kcloud.keys_dir(), "clc"))
    volumes = {v.volumeId: v for v in sc.DescribeStorageVolumes().volumeSet}
    assert volumes["vol-0000beef"].size == "1" and volumes["vol-0000beef"].status == "available"
    sc.DeleteStorageVolume(volumeId="vol-0000beef")


def test_terminate_after_all_restarts(kcloud, running):
    ec2 = kcloud.client("ec2")
    ec2.terminate_instances(InstanceIds=[running[1]])
    wait_for(lambda: _state(ec2, running[1]) == "terminated", timeout=60, what="terminated")
