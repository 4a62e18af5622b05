"""Bundled images end to end, against the five live daemons (HYPERVISOR=test): euca-bundle-image,
euca-upload-bundle and euca-bundle-and-upload-image, euca-register, RunInstances; the NC fetches
the parts with its node certificate and unpacks them into its cache. A raw image is fetched the
same way, from its plain URL."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from eucacore import pki
from tests.cloudharness import register_image

pytestmark = pytest.mark.integration
FAST = {"Delay": 1, "MaxAttempts": 90}
PUBLIC_KEY = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def euca(cloud, module: str, func: str, *args: str) -> subprocess.CompletedProcess:
    """A euca-* command as the cloud admin would run it, having sourced the eucarc."""
    code = f"import sys; from euca2ools.{module} import {func} as m; sys.argv[0] = 'euca'; sys.exit(m())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=cloud.tool_env(), timeout=120)


def ok(out: subprocess.CompletedProcess) -> list[str]:
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached(cloud, image_id: str) -> Path:
    return cloud.root / "var/lib/eucalyptus/instances/cache" / image_id


def node_request(cloud, instance_id: str) -> dict:
    """The ncRunInstance request the NC recorded for the instance."""
    with sqlite3.connect(f"file:{cloud.root / 'var/lib/eucalyptus/nc.db'}?mode=ro", uri=True) as db:
        return json.loads(db.execute("SELECT spec FROM instances WHERE instance_id = ?", [instance_id]).fetchone()[0])


def run(ec2, image_id: str, **params) -> str:
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, **params)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    return instance_id


def test_a_bundled_kernel_and_machine_image_run_from_the_cache(cloud, ec2, tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(os.urandom(300 * 1024))
    lines = ok(euca(cloud, "ec2_bundles", "bundle_and_upload_image", "-i", str(kernel), "--kernel", "true",
                    "-b", "bundles/kernels"))
    assert lines == ["Uploaded bundles/kernels/vmlinuz.manifest.xml"]
    kernel_id = ok(euca(cloud, "ec2", "register", "bundles/kernels/vmlinuz.manifest.xml", "-n", "bundled-kernel"))[0]
    kernel_id = kernel_id.split()[1]
    assert kernel_id.startswith("eki-")

    disk = tmp_path / "disk.img"
    disk.write_bytes(os.urandom(10 * 1024 * 1024 + 4321))  # two parts
    lines = ok(euca(cloud, "ec2_bundles", "bundle_image", "-i", str(disk), "-d", str(tmp_path / "out"),
                    "--kernel", kernel_id))
    manifest = tmp_path / "out" / "disk.img.manifest.xml"
    assert lines == [f"Wrote {tmp_path / 'out'}/disk.img.part.00", f"Wrote {tmp_path / 'out'}/disk.img.part.01",
                     f"Wrote manifest {manifest}"]
    assert ok(euca(cloud, "ec2_bundles", "upload_bundle", "-b", "bundles/machines", "-m", str(manifest))) == \
        ["Uploaded bundles/machines/disk.img.manifest.xml"]
    image_id = ok(euca(cloud, "ec2", "register", "bundles/machines/disk.img.manifest.xml", "-n", "bundled-disk"))
    image_id = image_id[0].split()[1]
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert (image["KernelId"], image["ImageLocation"]) == (kernel_id, "bundles/machines/disk.img.manifest.xml")

    ec2.import_key_pair(KeyName="bundle-key", PublicKeyMaterial=PUBLIC_KEY.encode())
    instance_id = run(ec2, image_id, KeyName="bundle-key")
    assert sha256(cached(cloud, image_id)) == sha256(disk)
    assert sha256(cached(cloud, kernel_id)) == sha256(kernel)
    sent = node_request(cloud, instance_id)
    assert len(sent["imageBundle"]["parts"]) == 2 and "kernelBundle" in sent
    assert sent["keyName"] == PUBLIC_KEY  # the key itself, for the NoCloud seed
    assert ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["KeyName"] == \
        "bundle-key"
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_a_raw_image_is_fetched_from_its_plain_url_with_the_node_certificate(cloud, ec2, s3):
    image_id = register_image(ec2, s3, "raw-images", "raw-image", key="raw/disk.img", size=256 * 1024)
    instance_id = run(ec2, image_id)
    url = node_request(cloud, instance_id)["imageURL"]
    assert url == f"{cloud.s3_url}/raw-images/raw/disk.img"  # no presigned query: the object is private
    assert cached(cloud, image_id).read_bytes() == b"\0" * 256 * 1024
    assert cloud.wait_for_log("walrus", " GET /raw-images/raw/disk.img 200 ")
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_a_bundle_of_another_cloud_cannot_run(cloud, ec2, tmp_path):
    other = tmp_path / "other-ca"
    pki.create_ca(other)
    disk = tmp_path / "foreign.img"
    disk.write_bytes(b"x" * 1000)
    ok(euca(cloud, "ec2_bundles", "bundle_and_upload_image", "-i", str(disk), "-b", "bundles/foreign",
            "--ec2cert", str(other / pki.CA_CERT)))
    image_id = ec2.register_image(ImageLocation="bundles/foreign/foreign.img.manifest.xml",
                                  Name="foreign")["ImageId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    error = e.value.response["Error"]
    assert error["Code"] == "InvalidAMIID.Unavailable" and "not encrypted for this cloud" in error["Message"]
    assert ec2.describe_instances(Filters=[{"Name": "image-id", "Values": [image_id]}])["Reservations"] == []


def test_bundle_commands_fail_in_one_line(cloud, tmp_path):
    out = euca(cloud, "ec2_bundles", "upload_bundle", "-b", "bundles", "-m", str(tmp_path / "none.manifest.xml"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("euca-upload-bundle: error: cannot read manifest")
    out = euca(cloud, "ec2_bundles", "bundle_image", "-i", str(tmp_path / "none.img"))
    assert out.returncode == 1 and out.stderr == f"euca-bundle-image: error: the image {tmp_path}/none.img is not a file\n"
