"""Key pairs (import, ed25519, ids, tags), the cloud admin's verbose zones, instance types and
account attributes against the five live daemons, with boto3 and the euca-* commands."""

import base64
import hashlib
import re
import subprocess
import sys

import botocore.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from eucacore.policy import quota_policy
from tests.cloudharness import wait_for

pytestmark = pytest.mark.integration

VERBOSE_LINE = re.compile(r"^\d{4} / \d{4} +\d+ +\d+ +\d+$")


def euca(cloud, module_func: str, *args: str) -> subprocess.CompletedProcess:
    code = f"import sys; from euca2ools.ec2 import {module_func} as m; sys.argv[0] = 'euca'; sys.exit(m())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=cloud.tool_env(), timeout=60)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def openssh_line(key) -> bytes:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


@pytest.fixture(scope="module")
def tenant(cloud):
    return cloud.new_account("kp-regions")


def test_import_rsa_and_ed25519_keys(cloud, tenant):
    ec2 = tenant.client("ec2")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    imported = ec2.import_key_pair(KeyName="kpr-rsa", PublicKeyMaterial=openssh_line(key) + b" me@laptop\n")
    assert imported["KeyFingerprint"] == ":".join(f"{b:02x}" for b in hashlib.md5(spki).digest())
    edge = ed25519.Ed25519PrivateKey.generate().public_key()
    blob = base64.b64decode(openssh_line(edge).split()[1])
    imported_ed = ec2.import_key_pair(
        KeyName="kpr-ed", PublicKeyMaterial=openssh_line(edge),
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "kind", "Value": "edwards"}]}])
    assert imported_ed["KeyFingerprint"] == base64.b64encode(hashlib.sha256(blob).digest()).decode()
    assert imported_ed["Tags"] == [{"Key": "kind", "Value": "edwards"}]

    described = ec2.describe_key_pairs(KeyPairIds=[imported_ed["KeyPairId"]], IncludePublicKey=True)["KeyPairs"]
    assert [(k["KeyName"], k["KeyType"]) for k in described] == [("kpr-ed", "ed25519")]
    assert described[0]["PublicKey"] == f"{openssh_line(edge).decode()} kpr-ed"
    assert described[0]["Tags"] == [{"Key": "kind", "Value": "edwards"}]
    by_tag = ec2.describe_key_pairs(Filters=[{"Name": "tag:kind", "Values": ["edwards"]}])["KeyPairs"]
    assert [k["KeyName"] for k in by_tag] == ["kpr-ed"]
    by_type = ec2.describe_key_pairs(Filters=[{"Name": "key-type", "Values": ["rsa"]}])["KeyPairs"]
    assert [k["KeyName"] for k in by_type] == ["kpr-rsa"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.import_key_pair(KeyName="kpr-bad", PublicKeyMaterial=b"ssh-dss AAAAB3NzaC1kc3MAAACBAP")
    assert error_code(e) == "InvalidKey.Format"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.import_key_pair(KeyName="kpr-rsa", PublicKeyMaterial=openssh_line(key))
    assert error_code(e) == "InvalidKeyPair.Duplicate"
    # Another account's key pair id answers as one that does not exist.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cloud.client("ec2").describe_key_pairs(KeyPairIds=[imported_ed["KeyPairId"]])
    assert error_code(e) == "InvalidKeyPair.NotFound"

    ec2.delete_key_pair(KeyPairId=imported_ed["KeyPairId"])
    ec2.delete_key_pair(KeyName="kpr-rsa")
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [imported_ed["KeyPairId"]]}])["Tags"] == []


def test_create_ed25519_key_pair(tenant):
    ec2 = tenant.client("ec2")
    created = ec2.create_key_pair(KeyName="kpr-made-ed", KeyType="ed25519")
    private = serialization.load_ssh_private_key(created["KeyMaterial"].encode(), None)
    blob = base64.b64decode(openssh_line(private.public_key()).split()[1])
    assert created["KeyFingerprint"] == base64.b64encode(hashlib.sha256(blob).digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.create_key_pair(KeyName="kpr-ppk", KeyFormat="ppk")
    assert error_code(e) == "InvalidParameterValue"
    ec2.delete_key_pair(KeyName="kpr-made-ed")


def test_euca_describe_keypairs_shows_imported_fingerprint(cloud, ec2, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    imported = ec2.import_key_pair(KeyName="kpr-cli", PublicKeyMaterial=openssh_line(key))
    try:
        out = euca(cloud, "describe_keypairs", "kpr-cli")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [f"KEYPAIR\tkpr-cli\t{imported['KeyFingerprint']}"]
        out = euca(cloud, "describe_keypairs", "--filter", "key-type=ed25519")
        assert "kpr-cli" not in out.stdout
    finally:
        ec2.delete_key_pair(KeyName="kpr-cli")


def test_verbose_zones_for_the_cloud_admin(cloud, ec2, tenant):
    def verbose_lines():
        out = euca(cloud, "describe_availability_zones", "verbose")
        lines = [line.split("\t") for line in out.stdout.splitlines()]
        small = [f for f in lines if f[1] == "|- m1.small"]
        # The CC knows its node's resources once it has polled it.
        return out.returncode == 0 and small and int(small[0][2].split("/")[1].split()[0]) > 0 and lines

    lines = wait_for(verbose_lines, timeout=60, what="zone-a's resources in the verbose listing")
    assert lines[0][:3] == ["AVAILABILITYZONE", "zone-a", "available"]
    assert lines[1][1:3] == ["|- vm types", "free / max   cpu   ram  disk"]
    types = {f[1][3:]: f[2] for f in lines if f[1].startswith("|- ") and f[1] != "|- vm types"}
    assert set(types) >= {"m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge"}
    for state in types.values():
        assert VERBOSE_LINE.match(state), state
        free, most = (int(n) for n in state.split()[0:3:2])
        assert 0 <= free <= most
    assert types["m1.small"].split()[3:] == ["1", "256", "5"]
    # Anyone else asking for verbose gets the plain list.
    plain = tenant.client("ec2").describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]
    assert all(not z["ZoneName"].startswith("|-") for z in plain) and "zone-a" in [z["ZoneName"] for z in plain]


def test_describe_instance_types(tenant):
    ec2 = tenant.client("ec2")
    pages = ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 5})
    types = {t["InstanceType"]: t for page in pages for t in page["InstanceTypes"]}
    assert set(types) >= {"m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge"}
    small = types["m1.small"]
    assert (small["VCpuInfo"]["DefaultVCpus"], small["MemoryInfo"]["SizeInMiB"],
            small["InstanceStorageInfo"]["TotalSizeInGB"]) == (1, 256, 5)
    picked = ec2.describe_instance_types(Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["2"]}])
    assert {t["InstanceType"] for t in picked["InstanceTypes"]} >= {"m1.large", "m1.xlarge", "c1.xlarge"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.describe_instance_types(InstanceTypes=["m9.huge"])
    assert error_code(e) == "InvalidInstanceType"


def test_account_attributes(cloud, tenant):
    cloud.client("euare").put_account_policy(AccountName=tenant.name, PolicyName="kpr-quota",
                                             PolicyDocument=quota_policy({"instances": 9, "addresses": 2}))
    try:
        listed = tenant.client("ec2").describe_account_attributes()["AccountAttributes"]
        got = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]] for a in listed}
        assert got["supported-platforms"] == ["EC2"] and got["default-vpc"] == ["none"]
        assert got["max-instances"] == ["9"] and got["max-elastic-ips"] == ["2"]
        assert got["vpc-max-security-groups-per-interface"] == ["5"]
        only = tenant.client("ec2").describe_account_attributes(AttributeNames=["default-vpc"])
        assert [a["AttributeName"] for a in only["AccountAttributes"]] == ["default-vpc"]
    finally:
        cloud.client("euare").delete_account_policy(AccountName=tenant.name, PolicyName="kpr-quota")
