"""The cloud admin's commands (euare-*, euca-*-propert*, eureport-*) run as real console
scripts against the live daemons, with the environment a sourced eucarc gives."""

import contextlib
import csv
import datetime
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import botocore.exceptions
import pytest

from clc.usage import COLUMNS
from tests.cloudharness import parse_eucarc, register_image, wait_for
from walrus.__main__ import CREDENTIAL_TTL

pytestmark = pytest.mark.integration

#: The console scripts of the venv running the tests.
BIN = Path(sys.executable).parent
KEY_VARS = (("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "EC2_ACCESS_KEY"),
            ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "EC2_SECRET_KEY"))
VMTYPES = {"m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge"}
TERMINATED_TIME = "cloud.vmstate.terminated_time"
DESCRIBE_ONLY = {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}


def tool(env: dict, command: str, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    """Run one console script as a user would; it must exit ``code`` and never show a traceback."""
    proc = subprocess.run([str(BIN / command), *args], capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, f"{command} {args}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def failed(env: dict, command: str, *args: str, error: str) -> str:
    """Run a command that must fail with exit 1 and one stderr line naming ``error``; that line."""
    proc = tool(env, command, *args, code=1)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and error in lines[0], proc.stderr
    assert lines[0].startswith(f"{command}: ") and proc.stdout == ""
    return lines[0]


def usage_error(env: dict, command: str, *args: str) -> str:
    """Run a command argparse must refuse (exit 2, a usage message); its stderr."""
    proc = tool(env, command, *args, code=2)
    assert proc.stderr.startswith("usage: ") and proc.stdout == "", proc.stderr
    return proc.stderr


def eucarc_env(cloud, variables: dict) -> dict:
    """The environment of a shell that sourced a eucarc holding ``variables``."""
    env = cloud.tool_env()
    for name in [n for n in env if n.startswith(("AWS_", "EC2_", "EUCA"))]:
        del env[name]
    env.update(variables)
    return env


def key_env(env: dict, access_key: str, secret_key: str) -> dict:
    """``env`` with another access key in every variable that may carry one."""
    env = dict(env)
    for names, value in zip(KEY_VARS, (access_key, secret_key)):
        env.update(dict.fromkeys(names, value))
    return env


def tenant_env(cloud, tenant) -> dict:
    return key_env(cloud.tool_env(), tenant.access_key, tenant.secret_key)


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"]


@contextlib.contextmanager
def account_removed_afterwards(cloud, name: str):
    """The block, then account ``name`` deleted (recursively) if it still exists."""
    try:
        yield
    finally:
        with contextlib.suppress(botocore.exceptions.ClientError):
            cloud.client("euare").delete_account(AccountName=name, Recursive=True)


@pytest.fixture(scope="module")
def admin_env(cloud):
    return cloud.tool_env()


@pytest.fixture(scope="module")
def other(cloud):
    """An account that is not the cloud admin's, with one object stored."""
    tenant = cloud.new_account("cli-other")
    s3 = tenant.client("s3")
    s3.create_bucket(Bucket="cli-other-bucket")
    s3.put_object(Bucket="cli-other-bucket", Key="o", Body=b"x" * 1024)
    return tenant


# -- 1. accounts and their credentials directories ---------------------------------

def test_accountcreate_writes_a_working_credentials_dir(cloud, admin_env, tmp_path):
    creds = tmp_path / "cli-acct"
    with account_removed_afterwards(cloud, "cli-acct"):
        out = tool(admin_env, "euare-accountcreate", "-a", "cli-acct", "-d", str(creds))
        (account_line, key_line) = out.stdout.splitlines()
        name, account_id = account_line.split("\t")
        access_key, secret_key = key_line.split("\t")
        assert name == "cli-acct" and account_id.isdigit() and access_key and secret_key
        for file_name in ("eucarc", "iamrc", "euca2ools.ini"):
            assert (creds / file_name).stat().st_mode & 0o777 == 0o600, file_name
        variables = parse_eucarc(creds / "eucarc")
        assert variables["AWS_ACCESS_KEY_ID"] == access_key and variables["EC2_ACCOUNT_NUMBER"] == account_id
        env = eucarc_env(cloud, variables)

        assert tool(env, "euca-describe-instances").stdout == ""
        out = tool(env, "euca-create-keypair", "cli-acct-key")
        assert out.stdout.startswith("KEYPAIR\tcli-acct-key\t") and "PRIVATE KEY" in out.stdout
        tool(env, "euare-usercreate", "-u", "cli-acct-user")
        mine = cloud.client("ec2", access_key, secret_key).describe_key_pairs()["KeyPairs"]
        assert [k["KeyName"] for k in mine] == ["cli-acct-key"]
        admins = cloud.client("ec2").describe_key_pairs()["KeyPairs"]
        assert "cli-acct-key" not in [k["KeyName"] for k in admins]
        # A real shell sourcing the eucarc gets the same.
        sourced = subprocess.run(["bash", "-c", f'. "$1" && exec "{BIN}/euca-describe-keypairs"', "-",
                                  str(creds / "eucarc")], capture_output=True, text=True, timeout=60,
                                 env=eucarc_env(cloud, {}))
        assert sourced.returncode == 0 and sourced.stdout.startswith("KEYPAIR\tcli-acct-key\t"), sourced.stderr
        users = cloud.client("iam", access_key, secret_key).list_users()["Users"]
        assert {u["UserName"] for u in users} == {"admin", "cli-acct-user"}

        assert f"cli-acct\t{account_id}" in tool(admin_env, "euare-accountlist").stdout.splitlines()
        # Not recursively: the account still has a user.
        failed(admin_env, "euare-accountdel", "-a", "cli-acct", error="DeleteConflict")
        assert tool(admin_env, "euare-accountdel", "-a", "cli-acct", "-r").stdout == ""
        assert "cli-acct" not in tool(admin_env, "euare-accountlist").stdout
        failed(env, "euca-describe-instances", error="AuthFailure")


# -- 2. users, groups, keys and policies as an account's admin ------------------------

def test_user_group_key_and_policy_round_trip(cloud, admin_env):
    tenant = cloud.new_account("cli-iam")
    env = tenant_env(cloud, tenant)
    out = tool(env, "euare-usercreate", "-u", "cli-bob", "-k")
    (key_line,) = out.stdout.splitlines()
    bob_key, bob_secret = key_line.split("\t")
    tool(env, "euare-groupcreate", "-g", "cli-devs")
    tool(env, "euare-groupadduser", "-g", "cli-devs", "-u", "cli-bob")
    arn, header, *members = tool(env, "euare-grouplistusers", "-g", "cli-devs").stdout.splitlines()
    assert arn.endswith(":group/cli-devs") and header == "users"
    assert [m.rsplit("/", 1)[1] for m in members] == ["cli-bob"] and members[0].startswith("\t")
    # The cloud admin sees the same through --as-account.
    listed = tool(admin_env, "euare-userlistbypath", "--as-account", "cli-iam").stdout.splitlines()
    assert {line.rsplit("/", 1)[1] for line in listed} == {"admin", "cli-bob"}

    tool(env, "euare-useruploadpolicy", "-u", "cli-bob", "-p", "describe", "-o", json.dumps(DESCRIBE_ONLY))
    assert tool(env, "euare-userlistpolicies", "-u", "cli-bob").stdout.splitlines() == ["describe"]
    got = tool(env, "euare-usergetpolicy", "-u", "cli-bob", "-p", "describe").stdout
    assert json.loads(got) == DESCRIBE_ONLY

    bob_ec2 = cloud.client("ec2", bob_key, bob_secret)
    assert bob_ec2.describe_instances()["Reservations"] == []
    bob_env = key_env(env, bob_key, bob_secret)
    tool(bob_env, "euca-describe-instances")
    failed(bob_env, "euca-create-keypair", "cli-bob-key", error="UnauthorizedOperation")

    tool(env, "euare-usermodkey", "-u", "cli-bob", "-k", bob_key, "-s", "Inactive")
    assert _code(bob_ec2.describe_instances) == "AuthFailure"
    assert tool(env, "euare-userlistkeys", "-u", "cli-bob").stdout.splitlines() == [bob_key, "Inactive"]

    tool(env, "euare-userdel", "-u", "cli-bob", "-r")
    iam = tenant.client("iam")
    assert _code(iam.get_user, UserName="cli-bob") == "NoSuchEntity"
    assert iam.get_group(GroupName="cli-devs")["Users"] == []
    tool(env, "euare-groupdel", "-g", "cli-devs")
    assert iam.list_groups()["Groups"] == []


# -- 3. quotas --------------------------------------------------------------------------

def _quota_lines(admin_env, account: str) -> dict[str, list[str]]:
    """euare-accountlistquotas -a ACCOUNT, as {quota name: [used, limit]}."""
    lines = tool(admin_env, "euare-accountlistquotas", "-a", account).stdout.splitlines()
    fields = [line.split("\t") for line in lines]
    assert all(f[0] == "QUOTA" and f[1] == account and len(f) == 5 for f in fields), lines
    return {f[2]: f[3:] for f in fields}


def test_quotas_limit_the_accounts_commands(cloud, admin_env):
    tenant = cloud.new_account("cli-q")
    ec2, s3 = tenant.client("ec2"), tenant.client("s3")
    image_id = register_image(ec2, s3, "cli-q-images", "cli-q-image", key="q.img", size=4096)
    env = tenant_env(cloud, tenant)
    try:
        tool(admin_env, "euare-accountsetquota", "-a", "cli-q", "-q", "instances=0", "-q", "buckets=1")
        quotas = _quota_lines(admin_env, "cli-q")
        # Walrus reports bucket use to the CLC asynchronously: only the limit is certain yet.
        assert quotas["instances"] == ["0", "0"] and quotas["buckets"][1] == "1"
        assert quotas["cores"] == ["0", "unlimited"]
        failed(env, "euca-run-instances", image_id, "-t", "m1.small", error="InstanceLimitExceeded")
        assert ec2.describe_instances()["Reservations"] == []
        time.sleep(CREDENTIAL_TTL)  # Walrus reuses the quotas it looked up with the key that long
        assert _code(s3.create_bucket, Bucket="cli-q-second") == "TooManyBuckets"

        tool(admin_env, "euare-accountsetquota", "-a", "cli-q", "-q", "instances=unlimited")
        quotas = _quota_lines(admin_env, "cli-q")
        assert quotas["instances"] == ["0", "unlimited"] and quotas["buckets"][1] == "1"
        out = tool(env, "euca-run-instances", image_id, "-t", "m1.small")
        assert any(line.startswith("INSTANCE\ti-") for line in out.stdout.splitlines()), out.stdout
        assert _quota_lines(admin_env, "cli-q")["instances"] == ["1", "unlimited"]
    finally:
        live = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                if i["State"]["Name"] != "terminated"]
        if live:
            ec2.terminate_instances(InstanceIds=live)


# -- 4. properties ------------------------------------------------------------------------

def test_describe_and_modify_properties(cloud, admin_env, other):
    lines = tool(admin_env, "euca-describe-properties", "cloud.vmtypes").stdout.splitlines()
    fields = [line.split("\t") for line in lines]
    assert len(lines) == 15 and all(f[0] == "PROPERTY" and len(f) == 3 and f[2].isdigit() for f in fields)
    assert {f[1][len("cloud.vmtypes."):].rsplit(".", 1)[0] for f in fields} == VMTYPES

    properties = cloud.client("properties")
    old = properties.describe_properties(Properties=[TERMINATED_TIME])["Properties"][0]["Value"]
    try:
        out = tool(admin_env, "euca-modify-property", "-p", f"{TERMINATED_TIME}=30")
        assert out.stdout == f"PROPERTY\t{TERMINATED_TIME}\t30 was {old}\n"
        assert tool(admin_env, "euca-describe-properties", TERMINATED_TIME).stdout == \
            f"PROPERTY\t{TERMINATED_TIME}\t30\n"
        out = tool(admin_env, "euca-modify-property", "-r", TERMINATED_TIME)
        assert out.stdout == f"PROPERTY\t{TERMINATED_TIME}\t60 was 30\n"
        failed(admin_env, "euca-modify-property", "-p", f"{TERMINATED_TIME}=soon", error="InvalidParameterValue")
        failed(tenant_env(cloud, other), "euca-modify-property", "-p", f"{TERMINATED_TIME}=5",
               error="AccessDenied")
        assert properties.describe_properties(Properties=[TERMINATED_TIME])["Properties"][0]["Value"] == "60"
    finally:
        properties.modify_property_value(Name=TERMINATED_TIME, Value=old)


# -- 5. usage reports -----------------------------------------------------------------------

def _stored_bytes(cloud, account_id: str, start: str, end: str) -> str | None:
    """What an S3 report over [start, end) says the account stores at its end (None: no row)."""
    data = cloud.client("reporting").generate_report(
        Type="s3", Format="csv", StartDate=datetime.datetime.fromisoformat(start + "T00:00:00+00:00"),
        EndDate=datetime.datetime.fromisoformat(end + "T00:00:00+00:00"))["Data"]
    rows = [row for row in csv.DictReader(io.StringIO(data)) if row["account_id"] == account_id]
    return rows[0]["stored_bytes_at_end"] if rows else None


def test_generate_report(cloud, admin_env, other, tmp_path):
    out = tool(admin_env, "eureport-generate-report", "-t", "instance", "-f", "csv")
    assert out.stdout.splitlines()[0] == ",".join(COLUMNS["instance"])
    out = tool(admin_env, "eureport-generate-report", "-t", "s3", "-f", "json")
    report = json.loads(out.stdout)
    assert report["type"] == "s3" and isinstance(report["rows"], list)

    # Walrus reports use to the CLC asynchronously: wait until cli-other's object is counted.
    start, end = "2020-01-01", "2100-01-01"
    wait_for(lambda: _stored_bytes(cloud, other.account_id, start, end) == "1024", timeout=30,
             what="Walrus' usage of cli-other")
    report_file = tmp_path / "s3.csv"
    out = tool(admin_env, "eureport-generate-report", "-t", "s3", "-s", start, "-e", end,
               "-a", "cli-other", "-F", str(report_file))
    assert out.stdout == ""
    reader = csv.DictReader(io.StringIO(report_file.read_text()))
    assert reader.fieldnames == COLUMNS["s3"]
    (row,) = reader
    assert row["account_id"] == other.account_id and row["stored_bytes_at_end"] == "1024"


# -- 6. bad input ---------------------------------------------------------------------------

def test_bad_input_is_one_line_never_a_traceback(admin_env, other):
    assert "-a/--account-name" in usage_error(admin_env, "euare-accountcreate")
    usage_error(admin_env, "euca-modify-property")
    usage_error(admin_env, "eureport-generate-report", "-f", "csv")
    usage_error(admin_env, "euare-accountsetquota", "-a", "cli-other")
    failed(admin_env, "euare-accountdel", "-a", "cli-no-such", error="NoSuchEntity")
    failed(admin_env, "euare-accountlistquotas", "-a", "cli-no-such", error="NoSuchEntity")
    failed(admin_env, "euare-userlistbypath", "--as-account", "cli-no-such", error="NoSuchEntity")
    failed(admin_env, "euare-accountsetquota", "-a", "cli-other", "-q", "gpus=1", error="unknown quota 'gpus'")
    env = dict(admin_env, EUCA_PROPERTIES_URL="http://127.0.0.1:1/services/Properties")
    failed(env, "euca-describe-properties", error="cannot reach EUCA_PROPERTIES_URL")
