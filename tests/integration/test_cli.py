"""The euca-* commands against the live cloud, with the credentials euca_conf wrote."""

import subprocess
import sys

import pytest

from tests.cloudharness import wait_for

pytestmark = pytest.mark.integration


def euca(cloud, module_func: str, *args: str) -> subprocess.CompletedProcess:
    code = f"import sys; from euca2ools.ec2 import {module_func} as m; sys.argv[0] = 'euca'; sys.exit(m())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=cloud.tool_env(), timeout=60)


def test_describe_regions_and_zones(cloud):
    out = euca(cloud, "describe_regions")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\t")[:2] == ["REGION", "eucalyptus"]
    # The zone is available once the CLC has polled its cluster (every second).
    out = wait_for(lambda: (o := euca(cloud, "describe_availability_zones")).stdout.startswith(
        "AVAILABILITYZONE\tzone-a\tavailable") and o, timeout=20, what="zone-a available")
    assert out.returncode == 0


def test_keypair_commands(cloud, tmp_path):
    key_file = tmp_path / "cli.pem"
    out = euca(cloud, "create_keypair", "cli-key", "-f", str(key_file))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("KEYPAIR\tcli-key\t") and key_file.stat().st_mode & 0o777 == 0o600
    out = euca(cloud, "describe_keypairs")
    assert "KEYPAIR\tcli-key\t" in out.stdout
    assert euca(cloud, "delete_keypair", "cli-key").returncode == 0
    assert "cli-key" not in euca(cloud, "describe_keypairs").stdout


def test_errors_are_one_line(cloud):
    out = euca(cloud, "describe_instances", "i-00000000")
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "InvalidInstanceID.NotFound" in out.stderr


def test_register_run_terminate(cloud, s3):
    s3.create_bucket(Bucket="cli-images")
    s3.put_object(Bucket="cli-images", Key="cli.img", Body=b"\0" * 4096)
    out = euca(cloud, "register", "cli-images/cli.img", "-n", "cli-image")
    assert out.returncode == 0, out.stderr
    image_id = out.stdout.split()[1]
    assert image_id.startswith("emi-")
    assert image_id in euca(cloud, "describe_images").stdout
    out = euca(cloud, "run_instances", image_id, "-t", "m1.small")
    assert out.returncode == 0, out.stderr
    instance_line = [line for line in out.stdout.splitlines() if line.startswith("INSTANCE")][0]
    instance_id = instance_line.split("\t")[1]
    assert instance_id in euca(cloud, "describe_instances").stdout
    out = euca(cloud, "terminate_instances", instance_id)
    assert out.returncode == 0 and instance_id in out.stdout
