"""The instance metadata service, as instances reach it at http://169.254.169.254/.

The networking layer sends the guests' 169.254.169.254:80 to the CLC's port (as the
original did); the CLC answers ``/latest/...`` and the dated versions here, with
no signature: the instance is the one whose private or public address the request
comes from, and an address that is no running instance's gets 404.

IMDSv1 (plain GET) and IMDSv2 (``PUT /latest/api/token`` with
``X-aws-ec2-metadata-token-ttl-seconds``, then GETs with ``X-aws-ec2-metadata-token``)
both work.  A token is an HMAC, under a key the CLC makes at start, of the
instance's address and the token's expiry, so it is bound to the instance and
needs no storage.  As on AWS, a token request carrying ``X-Forwarded-For`` (it came
through a proxy, past the hop limit of 1) is refused, and the token's reply goes
out with IP TTL 1 where the socket is reachable.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import time

from eucacore import ids
from eucacore.serving import SOCKET
from clc.ec2.instances import user_data_text
from clc.ec2.keypairs import public_key

VERSIONS = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
            "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25",
            "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02", "latest"]
_VERSION_PATH = re.compile(r"^/(latest|1\.0|\d{4}-\d{2}-\d{2})(/.*)?$")
TOKEN_HEADER = "HTTP_X_AWS_EC2_METADATA_TOKEN"
TTL_HEADER = "HTTP_X_AWS_EC2_METADATA_TOKEN_TTL_SECONDS"
MAX_TOKEN_TTL = 21600
HOP_LIMIT = 1
REGION = "eucalyptus"


def is_metadata_path(path: str) -> bool:
    return bool(_VERSION_PATH.match(path))


class MetadataApp:
    """WSGI app of the metadata service over a clc.cloud.Cloud."""

    def __init__(self, cloud):
        self.cloud = cloud
        self._key = secrets.token_bytes(32)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        address = environ.get("REMOTE_ADDR", "")
        method = environ.get("REQUEST_METHOD", "GET")
        match = _VERSION_PATH.match(path)
        rest = (match.group(2) or "/") if match else "/"
        if method == "PUT" and rest == "/api/token":
            return self._issue_token(environ, address, start_response)
        if method not in ("GET", "HEAD"):
            return _reply(start_response, 405, "Method Not Allowed")
        token = environ.get(TOKEN_HEADER)
        if token is not None and not self._token_valid(token, address):
            return _reply(start_response, 401, "Unauthorized")
        row = self._instance(address)
        if row is None:
            return _reply(start_response, 404, "Not Found")
        tree = self._tree(row)
        node = tree
        for part in [p for p in rest.split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                return _reply(start_response, 404, "Not Found")
            node = node[part]
        if isinstance(node, dict):
            return _reply(start_response, 200, _listing(node))
        return _reply(start_response, 200, node)

    # -- the instance and its tree -------------------------------------------

    def _instance(self, address: str) -> dict | None:
        if not address:
            return None
        rows = list(self.cloud.store.db["instances"].rows_where(
            "(private_ip = ? OR public_ip = ?) AND state IN ('pending', 'running')", [address, address],
            order_by="launch_time DESC", limit=1))
        return rows[0] if rows else None

    def _tree(self, row: dict) -> dict:
        """The metadata of one instance: directories are dicts, documents are str or bytes."""
        private_ip, public_ip = row["private_ip"] or "", row["public_ip"] or ""
        local_host = _hostname(private_ip) if private_ip else ""
        public_host = _hostname(public_ip) if public_ip else ""
        groups = [g for g in (row["groups"] or "").split(",") if g]
        meta = {
            "ami-id": row["image_id"], "ami-launch-index": str(row["launch_index"]),
            "ami-manifest-path": self._image_location(row["image_id"]),
            "block-device-mapping": {"ami": "/dev/sda1", "root": "/dev/sda1", "ephemeral0": "sda2"},
            "hostname": local_host, "instance-action": "none", "instance-id": row["instance_id"],
            "instance-type": row["instance_type"], "local-hostname": local_host, "local-ipv4": private_ip,
            "placement": {"availability-zone": row["zone"], "region": REGION},
            "public-hostname": public_host, "public-ipv4": public_ip,
            "reservation-id": row["reservation_id"], "security-groups": "\n".join(groups),
            "mac": row["mac"],
        }
        if row["kernel_id"]:
            meta["kernel-id"] = row["kernel_id"]
        if row["ramdisk_id"]:
            meta["ramdisk-id"] = row["ramdisk_id"]
        if row["key_name"]:
            key = public_key(self.cloud, row["account_id"], row["key_name"])
            if key:
                meta["public-keys"] = _Directory({"0": {"openssh-key": key + "\n"}},
                                                 listing=f"0={row['key_name']}")
        tree = {"meta-data": meta, "dynamic": {"instance-identity": {
            "document": json.dumps(self._identity_document(row), indent=2)}}}
        user_data = user_data_text(row)
        if user_data:
            tree["user-data"] = user_data
        return tree

    def _identity_document(self, row: dict) -> dict:
        return {"accountId": row["account_id"], "architecture": "x86_64",
                "availabilityZone": row["zone"], "billingProducts": None, "devpayProductCodes": None,
                "marketplaceProductCodes": None, "imageId": row["image_id"], "instanceId": row["instance_id"],
                "instanceType": row["instance_type"], "kernelId": row["kernel_id"] or None,
                "ramdiskId": row["ramdisk_id"] or None, "pendingTime": ids.isoformat(row["launch_time"]),
                "privateIp": row["private_ip"] or None, "region": REGION, "version": "2017-09-30"}

    def _image_location(self, image_id: str) -> str:
        rows = list(self.cloud.store.db["images"].rows_where("image_id = ?", [image_id]))
        return rows[0]["location"] if rows else "(unknown)"

    # -- IMDSv2 tokens -----------------------------------------------------------

    def _issue_token(self, environ, address: str, start_response):
        if environ.get("HTTP_X_FORWARDED_FOR"):
            return _reply(start_response, 403, "Forbidden")
        try:
            ttl = int(environ.get(TTL_HEADER, ""))
        except ValueError:
            return _reply(start_response, 400, "Bad Request")
        if not 1 <= ttl <= MAX_TOKEN_TTL:
            return _reply(start_response, 400, "Bad Request")
        if self._instance(address) is None:
            return _reply(start_response, 404, "Not Found")
        _limit_hops(environ)
        expires = int(time.time()) + ttl
        token = f"{expires}.{self._mac(address, expires)}"
        return _reply(start_response, 200, token, [("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])

    def _mac(self, address: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{address}|{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _token_valid(self, token: str, address: str) -> bool:
        expires, _, mac = token.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(mac, self._mac(address, int(expires)))


class _Directory(dict):
    """A directory whose listing is not its entries' names (``public-keys/`` lists ``0=keyname``)."""

    def __init__(self, entries: dict, listing: str):
        super().__init__(entries)
        self.listing = listing


def _listing(directory: dict) -> str:
    if isinstance(directory, _Directory):
        return directory.listing
    return "\n".join(k + "/" if isinstance(v, dict) else k for k, v in directory.items())


def _hostname(ip: str) -> str:
    return f"euca-{ip.replace('.', '-')}.eucalyptus.internal"


def _limit_hops(environ) -> None:
    """Send the token's reply with IP TTL = the hop limit, as AWS does, if the socket is at hand."""
    sock = environ.get(SOCKET)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, HOP_LIMIT)
        except OSError:
            pass


def _reply(start_response, status: int, body, headers=()):
    data = body if isinstance(body, bytes) else str(body).encode()
    reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               405: "Method Not Allowed"}
    start_response(f"{status} {reasons[status]}", [("Content-Type", "text/plain"),
                                                   ("Content-Length", str(len(data))), *headers])
    return [data]
