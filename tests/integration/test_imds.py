"""The instance metadata service on the live CLC, reached over HTTP as an instance reaches it.

Until the networking layer gives instances addresses (and DNATs 169.254.169.254 to
the CLC), the test gives its instance the loopback address 127.0.0.1 in the CLC's
database, so requests from 127.0.0.1 are that instance's; 127.0.0.2 is no instance's.
"""

import http.client
import json
import sqlite3

import pytest

from tests.cloudharness import register_image, wait_for

pytestmark = pytest.mark.integration


def fetch(cloud, path, source="127.0.0.1", method="GET", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", cloud.ports["CLOUD_PORT"], timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def instance(cloud):
    tenant = cloud.new_account("imds-tenant")
    ec2, s3 = tenant.client("ec2"), tenant.client("s3")
    image = register_image(ec2, s3, "imds-images", "imds-image", size=4096)
    key = ec2.create_key_pair(KeyName="imds-key")
    run = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName="imds-key", UserData="#!/bin/sh\necho x\n")
    instance_id = run["Instances"][0]["InstanceId"]
    wait_for(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
             ["State"]["Name"] == "running", timeout=60, what="instance running")
    db = sqlite3.connect(cloud.root / "var/lib/eucalyptus/clc.db", timeout=30)
    with db:
        db.execute("UPDATE instances SET private_ip = '127.0.0.1' WHERE instance_id = ?", [instance_id])
    db.close()
    yield {"id": instance_id, "image": image, "key": key, "account": tenant.account_id}
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_imdsv1(cloud, instance):
    assert fetch(cloud, "/latest/meta-data/instance-id") == (200, instance["id"])
    assert fetch(cloud, "/latest/meta-data/ami-id") == (200, instance["image"])
    assert fetch(cloud, "/latest/meta-data/local-ipv4") == (200, "127.0.0.1")
    assert fetch(cloud, "/latest/meta-data/placement/availability-zone") == (200, "zone-a")
    assert fetch(cloud, "/latest/meta-data/public-keys/") == (200, "0=imds-key")
    status, key = fetch(cloud, "/latest/meta-data/public-keys/0/openssh-key")
    assert status == 200 and key.startswith("ssh-rsa ")
    assert fetch(cloud, "/latest/user-data") == (200, "#!/bin/sh\necho x\n")
    status, document = fetch(cloud, "/latest/dynamic/instance-identity/document")
    assert status == 200 and json.loads(document)["instanceId"] == instance["id"]
    assert json.loads(document)["accountId"] == instance["account"]


def test_imdsv2(cloud, instance):
    status, token = fetch(cloud, "/latest/api/token", method="PUT",
                          headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
    assert status == 200 and token
    assert fetch(cloud, "/latest/meta-data/instance-id",
                 headers={"X-aws-ec2-metadata-token": token}) == (200, instance["id"])
    assert fetch(cloud, "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": "1.forged"})[0] == 401
    assert fetch(cloud, "/latest/api/token", method="PUT",
                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "300", "X-Forwarded-For": "10.0.0.9"})[0] == 403


def test_an_address_that_is_no_instances_gets_404(cloud, instance):
    assert fetch(cloud, "/latest/meta-data/instance-id", source="127.0.0.2")[0] == 404
    assert fetch(cloud, "/latest/api/token", source="127.0.0.2", method="PUT",
                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})[0] == 404


def test_the_ec2_api_is_unchanged_beside_it(cloud, instance):
    # A GET of the EC2 path without a signature is still an EC2 error document, not metadata.
    status, body = fetch(cloud, "/services/compute?Action=DescribeRegions")
    assert status in (400, 401) and "<Code>" in body
