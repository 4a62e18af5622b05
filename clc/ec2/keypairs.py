"""Key pairs: CreateKeyPair, DescribeKeyPairs, DeleteKeyPair."""

import hashlib
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from eucacore import ids
from eucacore.awsapi.errors import AWSError
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import apply_filters, dry_run, not_found

_NAME = re.compile(r"^[\x20-\x7e]{1,255}$")


def _row_to_key(row):
    return {"KeyName": row["name"], "KeyFingerprint": row["fingerprint"], "KeyPairId": row["key_pair_id"],
            "KeyType": "rsa", "CreateTime": ids.isoformat(row["created"])}


def create_key_pair(ctx, params):
    """A new RSA key pair; the private key is returned once and never stored."""
    name = params["KeyName"]
    if not _NAME.match(name):
        raise AWSError("InvalidParameterValue", "Key names are 1 to 255 printable ASCII characters")
    dry_run(params)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    fingerprint = hashlib.sha1(pkcs8).hexdigest()  # AWS: SHA-1 of the DER PKCS#8 private key
    fingerprint = ":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    row = {"account_id": ctx.account_id, "name": name, "fingerprint": fingerprint, "public_key": public,
           "key_pair_id": ids.new_id("key"), "created": ids.now()}
    table = ctx.cloud.store.db["keypairs"]
    with ctx.cloud.store.atomic():
        if list(table.rows_where("account_id = ? AND name = ?", [ctx.account_id, name])):
            raise AWSError("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
        table.insert(row)
    material = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()).decode()
    return {"KeyName": name, "KeyFingerprint": fingerprint, "KeyMaterial": material,
            "KeyPairId": row["key_pair_id"]}


def describe_key_pairs(ctx, params):
    every_account, names = sees_all_accounts(ctx, params.get("KeyNames"), params.get("Filters"))
    table = ctx.cloud.store.db["keypairs"]
    if every_account:
        rows = list(table.rows_where(order_by="account_id, name"))
    else:
        rows = list(table.rows_where("account_id = ?", [ctx.account_id], order_by="name"))
    for name in names:
        if not any(r["name"] == name for r in rows):
            raise not_found("InvalidKeyPair.NotFound", "key pair", name)
    if names:
        rows = [r for r in rows if r["name"] in names]
    if params.get("KeyPairIds"):
        rows = [r for r in rows if r["key_pair_id"] in params["KeyPairIds"]]
    rows = apply_filters(rows, params.get("Filters"), {"key-name": lambda r: r["name"],
                                                       "fingerprint": lambda r: r["fingerprint"],
                                                       "key-pair-id": lambda r: r["key_pair_id"],
                                                       "owner-id": lambda r: r["account_id"]})
    return {"KeyPairs": [_row_to_key(r) for r in rows]}


def delete_key_pair(ctx, params):
    """Deletes the key pair; like AWS, deleting one that does not exist succeeds."""
    dry_run(params)
    with ctx.cloud.store.atomic():
        ctx.cloud.store.db.execute("DELETE FROM keypairs WHERE account_id = ? AND (name = ? OR key_pair_id = ?)",
                                   [ctx.account_id, params.get("KeyName", ""), params.get("KeyPairId", "")])
    return {"Return": True}


def public_key(cloud, account_id: str, name: str) -> str | None:
    rows = list(cloud.store.db["keypairs"].rows_where("account_id = ? AND name = ?", [account_id, name]))
    return rows[0]["public_key"] if rows else None


HANDLERS = {"CreateKeyPair": create_key_pair, "DescribeKeyPairs": describe_key_pairs,
            "DeleteKeyPair": delete_key_pair}
