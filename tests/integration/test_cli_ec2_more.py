"""The euca-* commands for groups, volumes, snapshots, tags, key import, instance
types and addresses, run as processes against the live cloud, as a tenant that
sourced its eucarc would run them."""

import subprocess
import sys
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.cloudharness import running_cloud, wait_for

pytestmark = pytest.mark.integration

ZONE = "zone-a"
_KEY_VARS = (("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "EC2_ACCESS_KEY"),
             ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "EC2_SECRET_KEY"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tenant_env(cloud, tenant) -> dict:
    """The tool environment of ``tenant``: the cloud's eucarc with the tenant's keys."""
    env = cloud.tool_env()
    for names, value in zip(_KEY_VARS, (tenant.access_key, tenant.secret_key)):
        env.update(dict.fromkeys(names, value))
    env["EC2_ACCOUNT_NUMBER"] = env["EC2_USER_ID"] = tenant.account_id
    return env


def euca(env: dict, target: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``module:function`` of euca2ools as its console script would run."""
    module, function = target.split(":")
    code = (f"import sys; from euca2ools.{module} import {function} as m; "
            "sys.argv[0] = 'euca'; sys.exit(m())")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=60)


def ok(env: dict, target: str, *args: str) -> list[list[str]]:
    """The tab-split output lines of a command that must succeed."""
    out = euca(env, target, *args)
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines()]


def one_line_error(env: dict, target: str, *args: str) -> str:
    out = euca(env, target, *args)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    return out.stderr


@pytest.fixture(scope="module")
def tenant(cloud):
    return cloud.new_account(unique("cli-more"))


@pytest.fixture(scope="module")
def env(cloud, tenant):
    return tenant_env(cloud, tenant)


def register_image(env: dict, tenant, *options: str) -> str:
    """A new image of the tenant (a small file in a new bucket), by euca-register."""
    bucket = unique("cli-more-img")
    s3 = tenant.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="i.img", Body=b"\0" * 4096)
    [[_, image_id]] = ok(env, "ec2:register", f"{bucket}/i.img", "-n", unique("img"), *options)
    return image_id


def instance_state(env: dict, instance_id: str) -> str:
    return [line for line in ok(env, "ec2:describe_instances", instance_id)
            if line[0] == "INSTANCE"][0][5]


def launch(env: dict, tenant) -> str:
    """A new running instance of the tenant (on the test hypervisor)."""
    lines = ok(env, "ec2:run_instances", register_image(env, tenant))
    instance_id = [line for line in lines if line[0] == "INSTANCE"][0][1]
    wait_for(lambda: instance_state(env, instance_id) == "running", timeout=60,
             what="instance running")
    return instance_id


@pytest.fixture(scope="module")
def instance(tenant, env):
    """A running instance of the tenant."""
    instance_id = launch(env, tenant)
    yield instance_id
    euca(env, "ec2:terminate_instances", instance_id)


# --- security groups -----------------------------------------------------------

def test_group_lifecycle(env, tenant):
    name, peer = unique("cli-web"), unique("cli-lb")
    [[kind, group_id, created_name, description]] = ok(
        env, "ec2_groups:create_group", name, "-d", "web tier")
    assert (kind, created_name, description) == ("GROUP", name, "web tier")
    assert group_id.startswith("sg-")
    ok(env, "ec2_groups:create_group", peer, "-d", "balancers")

    assert ok(env, "ec2_groups:authorize", name, "-p", "22", "-s", "10.0.0.0/8") == [
        ["GROUP", name], ["PERMISSION", name, "ALLOWS", "tcp", "22", "22", "FROM", "CIDR",
                          "10.0.0.0/8"]]
    ok(env, "ec2_groups:authorize", name, "-P", "icmp", "-t", "-1:-1")
    ok(env, "ec2_groups:authorize", name, "-p", "80-81", "-o", peer, "-u", tenant.account_id)
    ok(env, "ec2_groups:authorize", group_id, "--egress", "-P", "udp", "-p", "53",
       "-s", "10.1.0.0/16")

    lines = ok(env, "ec2_groups:describe_groups", name)
    assert lines[0] == ["GROUP", group_id, tenant.account_id, name, "web tier", ""]
    permissions = [line[4:] for line in lines[1:]]
    assert ["tcp", "22", "22", "FROM", "CIDR", "10.0.0.0/8", "ingress"] in permissions
    assert ["icmp", "-1", "-1", "FROM", "CIDR", "0.0.0.0/0", "ingress"] in permissions
    peer_rule = [p for p in permissions if p[:3] == ["tcp", "80", "81"]]
    assert peer_rule and peer_rule[0][3:6] == ["FROM", "USER", tenant.account_id]
    assert ["udp", "53", "53", "TO", "CIDR", "10.1.0.0/16", "egress"] in permissions
    assert all(line[:4] == ["PERMISSION", tenant.account_id, name, "ALLOWS"] for line in lines[1:])

    ok(env, "ec2_groups:revoke", name, "-P", "icmp", "-t", "-1:-1")
    permissions = [line[4:7] for line in ok(env, "ec2_groups:describe_groups", group_id)[1:]]
    assert ["icmp", "-1", "-1"] not in permissions
    assert [line[3] for line in ok(env, "ec2_groups:describe_groups", "-F", f"group-name={name}")
            if line[0] == "GROUP"] == [name]

    ok(env, "ec2_groups:revoke", name, "-p", "80-81", "-o", peer, "-u", tenant.account_id)
    assert ok(env, "ec2_groups:delete_group", peer) == [["RETURN", "true"]]
    assert ok(env, "ec2_groups:delete_group", group_id) == [["RETURN", "true"]]
    assert "error (InvalidGroup.NotFound)" in one_line_error(env, "ec2_groups:delete_group", name)


def test_rule_refused_before_any_request(env):
    err = one_line_error(env, "ec2_groups:authorize", "default", "-p", "20:30")
    assert err.startswith("euca-authorize: error: argument -p/--port-range: multi-port range")


# --- volumes, snapshots, tags ----------------------------------------------------

def test_volume_snapshot_and_tags(env, tenant):
    [[kind, volume_id, size, snapshot, zone, _, _]] = ok(
        env, "ec2_storage:create_volume", "-z", ZONE, "-s", "1")
    assert (kind, size, snapshot, zone) == ("VOLUME", "1", "", ZONE)
    wait_for(lambda: ok(env, "ec2_storage:describe_volumes", volume_id)[0][5] == "available",
             timeout=30, what="volume available")

    assert ok(env, "ec2_tags:create_tags", volume_id, "--tag", "Name=data", "--tag", "flag") == [
        ["TAG", "volume", volume_id, "Name", "data"], ["TAG", "volume", volume_id, "flag", ""]]
    described = ok(env, "ec2_tags:describe_tags", "-F", f"resource-id={volume_id}")
    assert sorted(described) == [["TAG", volume_id, "volume", "Name", "data"],
                                 ["TAG", volume_id, "volume", "flag", ""]]
    lines = ok(env, "ec2_storage:describe_volumes", volume_id)
    assert lines[0][:2] == ["VOLUME", volume_id] and lines[0][7] == "standard"
    assert ["TAG", "volume", volume_id, "Name", "data"] in lines
    assert ok(env, "ec2_tags:delete_tags", volume_id, "--tag", "flag") == []
    assert ok(env, "ec2_tags:describe_tags", "-F", f"resource-id={volume_id}") == [
        ["TAG", volume_id, "volume", "Name", "data"]]

    [created] = ok(env, "ec2_storage:create_snapshot", volume_id, "-d", "nightly")
    snapshot_id = created[1]
    assert (created[0], created[2], created[5], created[6], created[7]) == (
        "SNAPSHOT", volume_id, tenant.account_id, "1", "nightly")
    wait_for(lambda: ok(env, "ec2_storage:describe_snapshots", snapshot_id)[0][3] == "completed",
             timeout=60, what="snapshot completed")
    [line] = [line for line in ok(env, "ec2_storage:describe_snapshots") if line[1] == snapshot_id]
    assert line[2:] == [volume_id, "completed", line[4], "100%", tenant.account_id, "1", "nightly"]

    assert ok(env, "ec2_storage:modify_snapshot_attribute", snapshot_id, "-c", "-a", "all") == [
        ["createVolumePermission", snapshot_id, "ADD", "Group", "all"]]
    ok(env, "ec2_storage:modify_snapshot_attribute", snapshot_id, "-c", "-r", "all")

    [[_, restored_id, _, source, _, _, _]] = ok(
        env, "ec2_storage:create_volume", "-z", ZONE, "--snapshot", snapshot_id)
    assert source == snapshot_id
    wait_for(lambda: ok(env, "ec2_storage:describe_volumes", restored_id)[0][5] == "available",
             timeout=30, what="restored volume available")

    assert ok(env, "ec2_storage:delete_snapshot", snapshot_id) == [["SNAPSHOT", snapshot_id]]
    for vol in (restored_id, volume_id):
        assert ok(env, "ec2_storage:delete_volume", vol) == [["VOLUME", vol]]
    assert "error (InvalidVolume.NotFound)" in one_line_error(
        env, "ec2_storage:delete_volume", volume_id)


def test_attach_and_detach(env, instance):
    [[_, volume_id, *_]] = ok(env, "ec2_storage:create_volume", "-z", ZONE, "-s", "1")
    wait_for(lambda: ok(env, "ec2_storage:describe_volumes", volume_id)[0][5] == "available",
             timeout=30, what="volume available")
    [attached] = ok(env, "ec2_storage:attach_volume", volume_id, "-i", instance, "-d", "/dev/vdb")
    assert attached[:4] == ["ATTACHMENT", volume_id, instance, "/dev/vdb"]
    wait_for(lambda: any(line[:5] == ["ATTACHMENT", volume_id, instance, "/dev/vdb", "attached"]
                         for line in ok(env, "ec2_storage:describe_volumes", volume_id)),
             timeout=30, what="volume attached")
    [detached] = ok(env, "ec2_storage:detach_volume", volume_id)
    assert detached[:3] == ["ATTACHMENT", volume_id, instance]
    wait_for(lambda: ok(env, "ec2_storage:describe_volumes", volume_id)[0][5] == "available",
             timeout=30, what="volume detached")
    ok(env, "ec2_storage:delete_volume", volume_id)


# --- key import, instance types ----------------------------------------------------

def test_import_keypair(env, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "imported.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH))
    name = unique("cli-imported")
    [[kind, imported_name, fingerprint]] = ok(env, "ec2:import_keypair", name, "-f", str(public))
    assert (kind, imported_name) == ("KEYPAIR", name) and fingerprint.count(":") == 15
    assert ok(env, "ec2:describe_keypairs", name) == [["KEYPAIR", name, fingerprint]]
    assert "error (InvalidKeyPair.Duplicate)" in one_line_error(
        env, "ec2:import_keypair", name, "-f", str(public))
    ok(env, "ec2:delete_keypair", name)


def test_describe_instance_types(cloud, env):
    out = euca(env, "ec2_instances:describe_instance_types")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["INSTANCETYPE", "Name", "CPUs", "Memory", "(MiB)", "Disk", "(GiB)"]
    assert lines[1].split()[:2] == ["INSTANCETYPE", "m1.small"]
    assert all(line.startswith("INSTANCETYPE\t") for line in lines)

    # The cloud admin sees the zones' capacity (the "verbose" zone listing).
    out = euca(cloud.tool_env(), "ec2_instances:describe_instance_types", "m1.small",
               "--show-capacity")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.endswith("Used / Total  Used %")
    used, slash, total = row.split()[5:8]
    assert slash == "/" and int(total) > 0 and 0 <= int(used) <= int(total)
    out = euca(cloud.tool_env(), "ec2_instances:describe_instance_types", "--by-zone")
    assert out.stdout.splitlines()[0] == f"AVAILABILITYZONE\t{ZONE}"


# --- instance control, console, status; image attributes ---------------------------

def test_instance_status_console_reboot(env, instance):
    lines = ok(env, "ec2_instances:describe_instance_status", instance)
    assert lines[0][:5] == ["INSTANCE", instance, ZONE, "running", "16"]
    assert lines[0][7] == "active"
    assert {line[0] for line in lines[1:]} <= {"SYSTEMSTATUS", "INSTANCESTATUS", "EVENT"}
    assert any(line[:2] == ["INSTANCE", instance]
               for line in ok(env, "ec2_instances:describe_instance_status"))

    out = euca(env, "ec2_instances:get_console_output", instance)
    assert out.returncode == 0, out.stderr
    instance_line, timestamp = out.stdout.split("\n")[:2]
    assert instance_line == instance and timestamp.endswith("Z")

    assert ok(env, "ec2_instances:reboot_instances", instance) == []
    assert "error (InvalidInstanceID.NotFound)" in one_line_error(
        env, "ec2_instances:reboot_instances", "i-00000000")


def test_stop_and_start(env, tenant):
    instance_id = launch(env, tenant)
    try:
        assert ok(env, "ec2_instances:stop_instances", instance_id) == [
            ["INSTANCE", instance_id, "running", "stopping"]]
        wait_for(lambda: instance_state(env, instance_id) == "stopped", timeout=60,
                 what="instance stopped")
        lines = ok(env, "ec2_instances:describe_instance_status", instance_id,
                   "--include-all-instances")
        assert lines[0][:4] == ["INSTANCE", instance_id, ZONE, "stopped"]
        assert ok(env, "ec2_instances:start_instances", instance_id) == [
            ["INSTANCE", instance_id, "stopped", "pending"]]
        wait_for(lambda: instance_state(env, instance_id) == "running", timeout=60,
                 what="instance running again")
    finally:
        euca(env, "ec2:terminate_instances", instance_id)


def test_image_attributes_and_deregister(env, tenant):
    image_id = register_image(env, tenant, "-d", "first words")
    other = "123456789012"
    assert ok(env, "ec2_images:describe_image_attribute", image_id, "-l") == []
    assert ok(env, "ec2_images:modify_image_attribute", image_id, "-l", "-a", "all",
              "-a", other) == [["launchPermission", image_id, "ADD", "Group", "all"],
                               ["launchPermission", image_id, "ADD", "UserId", other]]
    assert sorted(ok(env, "ec2_images:describe_image_attribute", image_id, "-l")) == [
        ["launchPermission", image_id, "group", "all"],
        ["launchPermission", image_id, "userId", other]]
    ok(env, "ec2_images:modify_image_attribute", image_id, "-l", "-r", other)
    assert ok(env, "ec2_images:describe_image_attribute", image_id, "-l") == [
        ["launchPermission", image_id, "group", "all"]]
    assert ok(env, "ec2_images:reset_image_attribute", image_id, "-l") == [
        ["launchPermission", image_id, "RESET"]]
    assert ok(env, "ec2_images:describe_image_attribute", image_id, "-l") == []

    assert ok(env, "ec2_images:describe_image_attribute", image_id, "--description") == [
        ["description", image_id, "", "first words"]]
    assert ok(env, "ec2_images:modify_image_attribute", image_id,
              "--description", "second words") == [["description", image_id, "", "second words"]]
    assert ok(env, "ec2_images:describe_image_attribute", image_id, "--description") == [
        ["description", image_id, "", "second words"]]

    assert ok(env, "ec2_images:deregister", image_id) == [["IMAGE", image_id]]
    assert "error (InvalidAMIID.NotFound)" in one_line_error(
        env, "ec2_images:describe_image_attribute", image_id, "-l")


# --- addresses (a cloud of its own: the shared one has no public IP pool) -------------

POOL = ["10.98.0.1", "10.98.0.2"]


@pytest.fixture(scope="module")
def eip_cloud(tmp_path_factory):
    with running_cloud(tmp_path_factory.mktemp("cli-eip-cloud"), VNET_PUBLICIPS=f"{POOL[0]}-{POOL[-1]}") as cloud:
        yield cloud


def test_address_commands(eip_cloud):
    tenant = eip_cloud.new_account(unique("cli-eip"))
    env = tenant_env(eip_cloud, tenant)
    instance_id = launch(env, tenant)
    try:
        [[kind, public_ip, domain, _]] = ok(env, "ec2_addresses:allocate_address")
        assert (kind, domain) == ("ADDRESS", "standard") and public_ip in POOL
        assert ok(env, "ec2_addresses:associate_address", public_ip, "-i", instance_id) == [
            ["ADDRESS", public_ip, instance_id]]
        [described] = ok(env, "ec2_addresses:describe_addresses", public_ip)
        assert described[:4] == ["ADDRESS", public_ip, instance_id, "standard"]
        assert ok(env, "ec2_addresses:describe_addresses",
                  "-F", f"instance-id={instance_id}")[0][1] == public_ip
        assert ok(env, "ec2_addresses:disassociate_address", public_ip) == [
            ["ADDRESS", public_ip]]
        assert ok(env, "ec2_addresses:describe_addresses", public_ip)[0][2] == ""
        assert ok(env, "ec2_addresses:release_address", public_ip) == [
            ["ADDRESS", public_ip, ""]]
        assert ok(env, "ec2_addresses:describe_addresses") == []
        assert "error (InvalidAddress.NotFound)" in one_line_error(
            env, "ec2_addresses:release_address", public_ip)
    finally:
        euca(env, "ec2:terminate_instances", instance_id)
