"""Access keys: a deactivated or deleted key is refused at once on EC2 and IAM, and on S3 within
Walrus's credential cache interval; secrets are sealed at rest with the CLC's key and never
written in the clear to any file of the cloud."""

import os
import sqlite3

import botocore.exceptions
import pytest

from clc.secrets import KEY_FILE, SecretBox
from tests.cloudharness import poll_until
from walrus.__main__ import CREDENTIAL_TTL

pytestmark = pytest.mark.integration

#: Each endpoint, a read-only call on it, and the code a refused key gets there.
ENDPOINTS = {
    "ec2": (lambda c: c.describe_instances(), "AuthFailure"),
    "iam": (lambda c: c.get_user(), "AuthFailure"),
    "s3": (lambda c: c.list_buckets(), "InvalidAccessKeyId"),
}


def _refused(client, call) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(client)
    return e.value.response["Error"]["Code"]


def _refusal(name, client, call, code) -> bool:
    """Whether the endpoint refuses the key with ``code``: at once on EC2 and IAM; Walrus may
    serve a key it looked up for CREDENTIAL_TTL seconds more."""
    if name != "s3":
        return _refused(client, call) == code

    def refused():
        try:
            call(client)
        except botocore.exceptions.ClientError as e:
            return e.response["Error"]["Code"] == code
        return False
    return poll_until(refused, timeout=CREDENTIAL_TTL + 3, interval=0.2)


@pytest.fixture(scope="module")
def tenant(cloud):
    return cloud.new_account("keys-tenant")


def test_deactivated_then_deleted_key_is_refused(tenant):
    user = tenant.user("key-user", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:Describe*", "iam:GetUser", "s3:ListAllMyBuckets"], "Resource": "*"}]})
    clients = {name: user.client(name) for name in ENDPOINTS}
    for name, (call, _) in ENDPOINTS.items():
        call(clients[name])
    iam = tenant.client("iam")
    iam.update_access_key(UserName="key-user", AccessKeyId=user.access_key, Status="Inactive")
    for name, (call, code) in ENDPOINTS.items():
        assert _refusal(name, clients[name], call, code), name
    iam.update_access_key(UserName="key-user", AccessKeyId=user.access_key, Status="Active")
    for name, (call, _) in ENDPOINTS.items():
        call(clients[name])
    iam.delete_access_key(UserName="key-user", AccessKeyId=user.access_key)
    for name, (call, code) in ENDPOINTS.items():
        assert _refusal(name, clients[name], call, code), name


def test_secrets_are_sealed_at_rest_and_never_written_in_the_clear(cloud, tenant):
    key = tenant.client("iam").create_access_key(UserName="admin")["AccessKey"]
    secret = key["SecretAccessKey"]
    # Use it everywhere, so every daemon has handled it (Walrus gets it from the CLC).
    client = lambda service: cloud.client(service, key["AccessKeyId"], secret)  # noqa: E731
    client("ec2").describe_instances()
    client("s3").list_buckets()
    client("iam").list_access_keys()
    cred_dir = cloud.cred_dir.resolve()
    scanned = 0
    for directory, _, files in os.walk(cloud.root):
        if os.path.realpath(directory).startswith(str(cred_dir)):
            continue  # the cloud admin's own eucarc, not this key
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                assert secret.encode() not in f.read(), f"secret in clear in {path}"
            scanned += 1
    assert scanned > 10
    # The row holds a sealed secret that only the CLC's key opens.
    db = sqlite3.connect(cloud.root / "var/lib/eucalyptus/clc.db")
    (sealed,) = db.execute("SELECT sealed_secret FROM access_keys WHERE access_key = ?",
                           [key["AccessKeyId"]]).fetchone()
    db.close()
    assert sealed.startswith("v1:") and secret not in sealed
    key_file = cloud.keys_dir() / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert SecretBox(key_file.read_bytes()).open(sealed, key["AccessKeyId"]) == secret
