"""Item 7: whatever a daemon acknowledged survives ``kill -9`` and a restart, for each daemon;
security groups' rules included, and those changed while the CC was down reach it once it is back."""

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


SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}
WEB = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}


def _cc_rules(cloud, account_id, group_name):
    """(protocol, from port, to port, CIDRs) of the group's rules as the live CC holds them."""
    cc = soap.client("EucalyptusCC", "127.0.0.1", cloud.ports["CC_PORT"], pki.component_keys(cloud.keys_dir(), "clc"))
    return {g.netName: sorted((r.protocol, r.portRangeMin, r.portRangeMax, tuple(r.sourceNets or []))
                              for r in g.rules or [])
            for g in cc.DescribeNetworks(accountIds=[account_id]).groups or []}.get(group_name)


def test_cc_keeps_security_group_rules(kcloud):
    ec2 = kcloud.client("ec2")
    group_id = ec2.create_security_group(GroupName="k-rules", Description="durable")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[SSH])
    account_id = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["OwnerId"]
    assert _cc_rules(kcloud, account_id, "k-rules") == [("tcp", 22, 22, ("203.0.113.0/24",))]
    # The CLC goes first, so that after the CC's restart only what the CC stored can answer
    # (the CLC would push every group again as soon as it saw the CC back).
    kcloud.kill9("clc")
    _restart(kcloud, "cc")
    assert _cc_rules(kcloud, account_id, "k-rules") == [("tcp", 22, 22, ("203.0.113.0/24",))]
    kcloud.start_daemon("clc")


def test_rules_changed_while_the_cc_is_down_reach_it_when_it_is_back(kcloud):
    ec2 = kcloud.client("ec2")
    group_id = ec2.describe_security_groups(GroupNames=["k-rules"])["SecurityGroups"][0]["GroupId"]
    account_id = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["OwnerId"]
    kcloud.kill9("cc")
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[WEB])  # answered with the CC down
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[SSH])
    kcloud.start_daemon("cc")
    wait_for(lambda: _cc_rules(kcloud, account_id, "k-rules") == [("tcp", 80, 80, ("0.0.0.0/0",))], timeout=60,
             what="the rules changed while the CC was down, in the CC")


def test_terminate_after_all_restarts(kcloud, running):
    ec2 = kcloud.client("ec2")
    ec2.terminate_instances(InstanceIds=[running[1]])
    wait_for(lambda: _state(ec2, running[1]) == "terminated", timeout=60, what="terminated")
