"""Key pairs: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair.

Fingerprints are AWS's, which depend on how the key arrived:

- created RSA: SHA-1 of the DER PKCS#8 private key, colon-separated hex;
- imported RSA: MD5 of the DER SubjectPublicKeyInfo, colon-separated hex;
- ed25519, created or imported: base64 SHA-256 of the OpenSSH public key blob, '='-padded.

The key type is not stored: it is the OpenSSH type of the stored public key
(``ssh-rsa`` or ``ssh-ed25519``).
"""

import base64
import binascii
import hashlib
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from eucacore import ids
from eucacore.awsapi.errors import AWSError
from clc.ec2 import tags
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import apply_filters, dry_run, not_found

_NAME = re.compile(r"^[\x20-\x7e]{1,255}$")
RESOURCE_TYPE = "key-pair"
KEY_TYPES = ("rsa", "ed25519")
RSA_BITS = 2048
#: RSA sizes ImportKeyPair takes (AWS documents 1024, 2048 and 4096; ssh-keygen's default is 3072).
MIN_RSA_BITS, MAX_RSA_BITS = 1024, 16384
_SSH2_BEGIN, _SSH2_END = b"---- BEGIN SSH2 PUBLIC KEY ----", b"---- END SSH2 PUBLIC KEY ----"


def _bad_format() -> AWSError:
    return AWSError("InvalidKey.Format", "Key is not in valid OpenSSH public key format")


# -- fingerprints -----------------------------------------------------------------------------------

def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def openssh_public_key(key) -> str:
    """``ssh-rsa AAAA...`` / ``ssh-ed25519 AAAA...``, without a comment."""
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _ed25519_fingerprint(key: ed25519.Ed25519PublicKey) -> str:
    # As ``ssh-keygen -l -E sha256`` but without its "SHA256:" prefix and with the '=' padding AWS shows.
    blob = base64.b64decode(openssh_public_key(key).split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def imported_fingerprint(key) -> str:
    """The fingerprint AWS gives an imported public key.

    For RSA, EC2 answers the MD5 of the DER SubjectPublicKeyInfo (what the EC2 User Guide
    has you check with ``openssl rsa -pubout -outform DER | openssl md5 -c``), not the MD5 of
    the OpenSSH blob that ``ssh-keygen -l -E md5`` prints, although the API reference names
    RFC 4716; clients compare against what EC2 answers, so we answer the same.
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _ed25519_fingerprint(key)
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _colon_hex(hashlib.md5(spki).digest())


def _created_rsa_fingerprint(key: rsa.RSAPrivateKey) -> str:
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    return _colon_hex(hashlib.sha1(pkcs8).digest())


def key_type(public_key: str) -> str:
    return "ed25519" if public_key.startswith("ssh-ed25519") else "rsa"


# -- public key material ----------------------------------------------------------------------------

def parse_public_key(material: bytes | str):
    """The RSA or Ed25519 public key of ImportKeyPair's material, or InvalidKey.Format.

    Taken as AWS takes them: an OpenSSH ``authorized_keys`` line (``ssh-rsa``,
    ``ssh-ed25519``), an RFC 4716 ``SSH2 PUBLIC KEY`` block, or an RSA key in DER (raw or
    base64) or PEM.
    """
    if isinstance(material, str):
        material = material.encode("utf-8", "replace")
    try:
        key = _load_public_key(material)
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error, IndexError):
        raise _bad_format() from None
    if isinstance(key, rsa.RSAPublicKey) and MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise _bad_format()


def _load_public_key(material: bytes):
    if material[:1] == b"0":  # a DER SEQUENCE (0x30): raw bytes, where trailing "whitespace" is data
        return _rsa_only(serialization.load_der_public_key(material))
    text = material.strip()
    if text.startswith(b"ssh-"):
        if b"\n" in text:
            raise ValueError("more than one key")
        return serialization.load_ssh_public_key(text)
    if text.startswith(_SSH2_BEGIN):
        return _load_rfc4716(text)
    if text.startswith(b"-----BEGIN"):
        return _rsa_only(serialization.load_pem_public_key(text))
    return _rsa_only(serialization.load_der_public_key(base64.b64decode(b"".join(text.split()), validate=True)))


def _rsa_only(key):
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("only RSA keys are taken in PEM or DER")
    return key


def _load_rfc4716(text: bytes):
    """An RFC 4716 block: header lines (``Tag: value``, continued by a trailing ``\\``), then base64."""
    lines = [line.strip() for line in text.splitlines()]
    if lines[-1] != _SSH2_END:
        raise ValueError("no END line")
    body, continued = [], False
    for line in lines[1:-1]:
        if continued or b":" in line:
            continued = line.endswith(b"\\")
        elif line:
            body.append(line)
    blob = base64.b64decode(b"".join(body), validate=True)
    size = int.from_bytes(blob[:4], "big")
    kind = blob[4:4 + size]
    return serialization.load_ssh_public_key(kind + b" " + base64.b64encode(blob))


# -- actions --------------------------------------------------------------------------------------

def _checked_name(params: dict) -> str:
    name = params.get("KeyName")
    if name is None:
        raise AWSError("MissingParameter", "The request must contain the parameter KeyName")
    if not _NAME.match(name):
        raise AWSError("InvalidParameterValue", "Key names are 1 to 255 printable ASCII characters")
    return name


def _store(ctx, name: str, fingerprint: str, public: str, tag_list: list[dict]) -> dict:
    """Records a new key pair of the caller's account (with its tags), or InvalidKeyPair.Duplicate."""
    row = {"account_id": ctx.account_id, "name": name, "fingerprint": fingerprint, "public_key": public,
           "key_pair_id": ids.new_id("key"), "created": ids.now()}
    table = ctx.cloud.store.db["keypairs"]
    with ctx.cloud.store.atomic():
        if list(table.rows_where("account_id = ? AND name = ?", [ctx.account_id, name])):
            raise AWSError("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
        table.insert(row)
        tags.add_tags(ctx, [row["key_pair_id"]], tag_list, RESOURCE_TYPE)
    return row


def create_key_pair(ctx, params):
    """A new RSA or Ed25519 key pair; the private key is returned once and never stored."""
    name = _checked_name(params)
    kind = params.get("KeyType") or "rsa"
    if kind not in KEY_TYPES:
        raise AWSError("InvalidParameterValue", f"Invalid value '{kind}' for KeyType. Expecting rsa or ed25519.")
    key_format = params.get("KeyFormat") or "pem"
    if key_format == "ppk":
        raise AWSError("InvalidParameterValue", "The key format 'ppk' is not supported by this cloud; use 'pem'.")
    if key_format != "pem":
        raise AWSError("InvalidParameterValue", f"Invalid value '{key_format}' for KeyFormat. Expecting pem.")
    tag_list = tags.requested_tags(params, RESOURCE_TYPE)
    dry_run(params)
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        fingerprint = _created_rsa_fingerprint(key)
        private_format = serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1, as EC2 returns it
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        fingerprint = _ed25519_fingerprint(key.public_key())
        private_format = serialization.PrivateFormat.OpenSSH
    row = _store(ctx, name, fingerprint, openssh_public_key(key.public_key()), tag_list)
    material = key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption()).decode()
    return {"KeyName": name, "KeyFingerprint": fingerprint, "KeyMaterial": material,
            "KeyPairId": row["key_pair_id"], "Tags": tag_list}


def import_key_pair(ctx, params):
    """Records a public key made elsewhere (RSA or Ed25519) under a new key pair name."""
    name = _checked_name(params)
    material = params.get("PublicKeyMaterial")
    if not material:
        raise AWSError("MissingParameter", "The request must contain the parameter PublicKeyMaterial")
    key = parse_public_key(material)
    tag_list = tags.requested_tags(params, RESOURCE_TYPE)
    dry_run(params)
    fingerprint = imported_fingerprint(key)
    row = _store(ctx, name, fingerprint, openssh_public_key(key), tag_list)
    return {"KeyName": name, "KeyFingerprint": fingerprint, "KeyPairId": row["key_pair_id"], "Tags": tag_list}


_FILTERS = {"key-name": lambda r: r["name"], "fingerprint": lambda r: r["fingerprint"],
            "key-pair-id": lambda r: r["key_pair_id"], "key-type": lambda r: key_type(r["public_key"]),
            "owner-id": lambda r: r["account_id"]}


def _key_pair(row: dict, tag_set: list[dict], include_public_key: bool) -> dict:
    out = {"KeyPairId": row["key_pair_id"], "KeyName": row["name"], "KeyFingerprint": row["fingerprint"],
           "KeyType": key_type(row["public_key"]), "Tags": tag_set, "CreateTime": ids.isoformat(row["created"])}
    if include_public_key:
        out["PublicKey"] = f"{row['public_key']} {row['name']}"  # EC2 names the key in the comment
    return out


def describe_key_pairs(ctx, params):
    """The caller's key pairs (the cloud admin's ``verbose``: every account's), by name or id, filtered."""
    every_account, names = sees_all_accounts(ctx, params.get("KeyNames"), params.get("Filters"))
    key_ids = params.get("KeyPairIds") or []
    table = ctx.cloud.store.db["keypairs"]
    if every_account:
        rows = list(table.rows_where(order_by="account_id, name"))
    else:
        rows = list(table.rows_where("account_id = ?", [ctx.account_id], order_by="name"))
    for name in names:
        if not any(r["name"] == name for r in rows):
            raise not_found("InvalidKeyPair.NotFound", "key pair", name)
    for key_id in key_ids:
        if not any(r["key_pair_id"] == key_id for r in rows):
            raise not_found("InvalidKeyPair.NotFound", "key pair ID", key_id)
    if names or key_ids:
        rows = [r for r in rows if r["name"] in names or r["key_pair_id"] in key_ids]
    resource_ids = [r["key_pair_id"] for r in rows]
    getters = {**_FILTERS, **tags.tag_getters(ctx, resource_ids, lambda r: r["key_pair_id"])}
    rows = apply_filters(rows, params.get("Filters"), getters)
    dry_run(params)
    tag_sets = tags.tag_sets(ctx, [r["key_pair_id"] for r in rows])
    include = bool(params.get("IncludePublicKey"))
    return {"KeyPairs": [_key_pair(r, tag_sets[r["key_pair_id"]], include) for r in rows]}


def delete_key_pair(ctx, params):
    """Deletes the caller's key pair named by KeyName or KeyPairId (both: the one that has both)
    and its tags; like AWS, deleting one that does not exist succeeds."""
    name, key_id = params.get("KeyName"), params.get("KeyPairId")
    if not name and not key_id:
        raise AWSError("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
    dry_run(params)
    where, args = "account_id = ?", [ctx.account_id]
    for column, value in (("name", name), ("key_pair_id", key_id)):
        if value:
            where, args = f"{where} AND {column} = ?", [*args, value]
    with ctx.cloud.store.atomic():
        deleted = [r["key_pair_id"] for r in ctx.cloud.store.db["keypairs"].rows_where(where, args)]
        ctx.cloud.store.db.execute(f"DELETE FROM keypairs WHERE {where}", args)
        tags.delete_resource_tags(ctx, deleted)
    out = {"Return": True}
    if deleted:
        out["KeyPairId"] = deleted[0]
    return out


def public_key(cloud, account_id: str, name: str) -> str | None:
    """The OpenSSH public key of an account's key pair, or None."""
    rows = list(cloud.store.db["keypairs"].rows_where("account_id = ? AND name = ?", [account_id, name]))
    return rows[0]["public_key"] if rows else None


HANDLERS = {"CreateKeyPair": create_key_pair, "ImportKeyPair": import_key_pair,
            "DescribeKeyPairs": describe_key_pairs, "DeleteKeyPair": delete_key_pair}
