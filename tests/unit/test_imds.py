"""The instance metadata service, in process: the instance is found by the request's source address."""

import base64
import io
import json

import pytest

from eucacore import ids
from eucacore.config import default_config
from clc.cloud import Cloud
from clc.imds import MetadataApp, is_metadata_path

ADDRESS = "10.1.2.3"


@pytest.fixture
def cloud(tmp_path):
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path)))
    account, _ = cloud.identity.create_account("tenant")
    db = cloud.store.db
    db["keypairs"].insert({"account_id": account["account_id"], "name": "mykey", "fingerprint": "aa",
                           "public_key": "ssh-rsa AAAAB3Nza mykey", "key_pair_id": "key-1", "created": ids.now()})
    db["images"].insert({"image_id": "emi-12345678", "account_id": account["account_id"], "location": "b/k.img",
                         "name": "img", "description": "", "architecture": "x86_64", "image_type": "machine",
                         "state": "available", "kernel_id": "", "ramdisk_id": "", "is_public": 0, "size": 1,
                         "created": ids.now()})
    db["instances"].insert({
        "instance_id": "i-0000abcd", "reservation_id": "r-1", "account_id": account["account_id"], "user_id": "u",
        "image_id": "emi-12345678", "kernel_id": "", "ramdisk_id": "", "instance_type": "m1.small",
        "key_name": "mykey", "zone": "zone-a", "state": "running", "reason": "", "launch_time": ids.now(),
        "launch_index": 0, "user_data": base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
        "mac": "d0:0d:00:00:ab:cd", "private_ip": ADDRESS, "public_ip": "192.0.2.7", "node": "n",
        "groups": "default,web", "updated": ids.now()})
    return cloud


def get(app, path, address=ADDRESS, method="GET", **headers):
    environ = {"PATH_INFO": path, "REMOTE_ADDR": address, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO()}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    seen = {}
    body = b"".join(app(environ, lambda status, hdrs: seen.update(status=int(status.split()[0]),
                                                                  headers=dict(hdrs))))
    return seen["status"], body.decode(), seen["headers"]


def test_paths_of_the_service():
    assert is_metadata_path("/latest/meta-data/") and is_metadata_path("/2009-04-04/user-data")
    assert is_metadata_path("/1.0/meta-data/instance-id")
    assert not is_metadata_path("/") and not is_metadata_path("/services/compute")


def test_meta_data_of_the_instance_at_the_source_address(cloud):
    app = MetadataApp(cloud)
    status, listing, _ = get(app, "/latest/meta-data/")
    assert status == 200
    for name in ("ami-id", "instance-id", "instance-type", "local-ipv4", "local-hostname", "public-ipv4",
                 "public-hostname", "public-keys/", "placement/", "security-groups", "reservation-id",
                 "ami-launch-index", "block-device-mapping/"):
        assert name in listing.splitlines()
    assert get(app, "/latest/meta-data/instance-id")[1] == "i-0000abcd"
    assert get(app, "/latest/meta-data/ami-id")[1] == "emi-12345678"
    assert get(app, "/latest/meta-data/instance-type")[1] == "m1.small"
    assert get(app, "/latest/meta-data/local-ipv4")[1] == ADDRESS
    assert get(app, "/latest/meta-data/public-ipv4")[1] == "192.0.2.7"
    assert get(app, "/latest/meta-data/placement/availability-zone")[1] == "zone-a"
    assert get(app, "/latest/meta-data/security-groups")[1] == "default\nweb"
    assert get(app, "/latest/meta-data/reservation-id")[1] == "r-1"
    assert get(app, "/latest/meta-data/public-keys/")[1] == "0=mykey"
    assert get(app, "/latest/meta-data/public-keys/0/")[1] == "openssh-key"
    assert get(app, "/latest/meta-data/public-keys/0/openssh-key")[1] == "ssh-rsa AAAAB3Nza mykey\n"
    assert get(app, "/latest/meta-data/block-device-mapping/root")[1] == "/dev/sda1"
    assert get(app, "/2009-04-04/meta-data/instance-id")[1] == "i-0000abcd"
    # The public address identifies the instance too.
    assert get(app, "/latest/meta-data/instance-id", address="192.0.2.7")[1] == "i-0000abcd"


def test_user_data_and_identity_document(cloud):
    app = MetadataApp(cloud)
    assert get(app, "/latest/user-data") == (200, "#!/bin/sh\necho hi\n", get(app, "/latest/user-data")[2])
    document = json.loads(get(app, "/latest/dynamic/instance-identity/document")[1])
    assert document["instanceId"] == "i-0000abcd" and document["imageId"] == "emi-12345678"
    assert document["availabilityZone"] == "zone-a" and document["privateIp"] == ADDRESS
    assert document["region"] == "eucalyptus" and document["accountId"] == cloud.identity.account("tenant")["account_id"]


def test_unknown_addresses_and_paths_get_404(cloud):
    app = MetadataApp(cloud)
    assert get(app, "/latest/meta-data/instance-id", address="10.9.9.9")[0] == 404
    assert get(app, "/latest/meta-data/no-such-thing")[0] == 404
    assert get(app, "/latest/meta-data/instance-id/deeper")[0] == 404
    cloud.store.db["instances"].update("i-0000abcd", {"state": "terminated"})
    assert get(app, "/latest/meta-data/instance-id")[0] == 404


def test_imdsv2_tokens(cloud):
    app = MetadataApp(cloud)
    status, token, headers = get(app, "/latest/api/token", method="PUT",
                                 **{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert status == 200 and headers["X-aws-ec2-metadata-token-ttl-seconds"] == "60"
    assert get(app, "/latest/meta-data/instance-id", **{"X-aws-ec2-metadata-token": token})[1] == "i-0000abcd"
    # A token is bound to the instance's address, and must be genuine.
    assert get(app, "/latest/meta-data/instance-id", address="192.0.2.7",
               **{"X-aws-ec2-metadata-token": token})[0] == 401
    assert get(app, "/latest/meta-data/instance-id", **{"X-aws-ec2-metadata-token": token + "x"})[0] == 401
    # TTL must be 1..21600; a proxied token request (X-Forwarded-For) is refused.
    for ttl in ("0", "21601", "abc"):
        assert get(app, "/latest/api/token", method="PUT", **{"X-aws-ec2-metadata-token-ttl-seconds": ttl})[0] == 400
    assert get(app, "/latest/api/token", method="PUT", **{"X-aws-ec2-metadata-token-ttl-seconds": "60",
                                                         "X-Forwarded-For": "10.0.0.1"})[0] == 403
    assert get(app, "/latest/meta-data/", method="POST")[0] == 405


def test_expired_tokens_are_refused(cloud, monkeypatch):
    app = MetadataApp(cloud)
    token = get(app, "/latest/api/token", method="PUT", **{"X-aws-ec2-metadata-token-ttl-seconds": "1"})[1]
    import clc.imds
    monkeypatch.setattr(clc.imds.time, "time", lambda: 4_000_000_000.0)
    assert get(app, "/latest/meta-data/instance-id", **{"X-aws-ec2-metadata-token": token})[0] == 401
