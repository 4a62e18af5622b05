"""clc.ec2.keypairs in-process over a real store, through the EC2 wire both ways: botocore's
serializer -> Ec2Protocol.parse -> handler -> Ec2Protocol.serialize -> botocore's parser.

Fingerprints are checked against values computed here independently (hashlib over
``cryptography``'s encodings) and, where the tools are installed, against ssh-keygen and
openssl, the commands AWS's User Guide gives for checking them.
"""

import base64
import hashlib
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from clc.ec2 import HANDLERS, instances, keypairs
from eucacore.awsapi.errors import AWSError
from tests.unit.ec2wire import ALICE, BOB, call, code, context

ADMIN = "000000000001"
# `make deps` installs both (openssh-client, openssl), so under `make test` these always run;
# the skip is only for a hand-made environment without them.
needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None,
                                      reason="ssh-keygen is not installed (make deps installs openssh-client)")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl is not installed (make deps installs it)")




@pytest.fixture
def admin(cloud):
    return context(cloud, ADMIN, cloud_admin=True)


def names(ctx, **params) -> list[str]:
    return [k["KeyName"] for k in call(ctx, "DescribeKeyPairs", **params)["KeyPairs"]]


# -- independent fingerprints ------------------------------------------------------------------------

def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def openssh_line(key) -> bytes:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def md5_of_spki(key) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return colon_hex(hashlib.md5(der).digest())


def sha256_of_blob(key) -> str:
    blob = base64.b64decode(openssh_line(key).split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ssh_keygen(tmp_path, kind: str, bits: int | None = None):
    """A key pair made by ssh-keygen: (private key path, public key path)."""
    path = tmp_path / f"id_{kind}"
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "someone@example", "-f", str(path)]
    if bits:
        args[4:4] = ["-b", str(bits)]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    return path, path.with_suffix(".pub")


def keygen_fingerprint(path, digest: str) -> str:
    """ssh-keygen's fingerprint of a key file, without its "MD5:"/"SHA256:" prefix."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", digest, "-f", str(path)], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return out.split()[1].split(":", 1)[1]


def openssl(args: list[str], data: bytes) -> bytes:
    return subprocess.run(["openssl", *args], input=data, check=True, capture_output=True, timeout=60).stdout


def openssl_digest(algorithm: str, data: bytes) -> str:
    """``openssl <md5|sha1> -c`` of ``data``: colon-separated hex (the User Guide's recipe)."""
    return openssl([algorithm, "-c"], data).decode().split("= ")[-1].strip()


# -- CreateKeyPair ---------------------------------------------------------------------------------

def test_created_rsa_key_fingerprint_is_sha1_of_its_pkcs8_der(alice):
    created = call(alice, "CreateKeyPair", KeyName="made")
    assert created["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")  # PKCS#1, as EC2
    private = serialization.load_pem_private_key(created["KeyMaterial"].encode(), None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    assert created["KeyFingerprint"] == colon_hex(hashlib.sha1(pkcs8).digest())
    assert created["KeyPairId"].startswith("key-")
    described = call(alice, "DescribeKeyPairs", KeyNames=["made"], IncludePublicKey=True)["KeyPairs"][0]
    assert described["KeyType"] == "rsa" and described["KeyFingerprint"] == created["KeyFingerprint"]
    assert described["PublicKey"] == f"{openssh_line(private.public_key()).decode()} made"


@needs_openssl
def test_created_rsa_fingerprint_matches_the_user_guides_openssl_recipe(alice):
    created = call(alice, "CreateKeyPair", KeyName="made")
    # openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c
    der = openssl(["pkcs8", "-inform", "PEM", "-outform", "DER", "-topk8", "-nocrypt"],
                  created["KeyMaterial"].encode())
    assert created["KeyFingerprint"] == openssl_digest("sha1", der)


def test_created_ed25519_key(alice, tmp_path):
    created = call(alice, "CreateKeyPair", KeyName="edge", KeyType="ed25519")
    assert created["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    private = serialization.load_ssh_private_key(created["KeyMaterial"].encode(), None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert created["KeyFingerprint"] == sha256_of_blob(private.public_key())
    assert created["KeyFingerprint"].endswith("=") and len(created["KeyFingerprint"]) == 44
    described = call(alice, "DescribeKeyPairs", KeyNames=["edge"], IncludePublicKey=True)["KeyPairs"][0]
    assert described["KeyType"] == "ed25519"
    assert described["PublicKey"].startswith("ssh-ed25519 ")
    if shutil.which("ssh-keygen"):
        path = tmp_path / "edge"
        path.write_text(created["KeyMaterial"])
        path.chmod(0o600)
        assert keygen_fingerprint(path, "sha256") + "=" == created["KeyFingerprint"]


@pytest.mark.parametrize("params,expected", [
    ({"KeyType": "dsa"}, "InvalidParameterValue"),
    ({"KeyFormat": "ppk"}, "InvalidParameterValue"),
    ({"KeyFormat": "der"}, "InvalidParameterValue"),
    ({"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]},
     "InvalidParameterValue"),
    ({"DryRun": True}, "DryRunOperation"),
])
def test_create_refusals(alice, params, expected):
    assert code(alice, "CreateKeyPair", KeyName="k", **params) == expected
    assert names(alice) == []


def test_ppk_is_named_unsupported(alice):
    with pytest.raises(AWSError, match="ppk"):
        keypairs.create_key_pair(alice, {"KeyName": "k", "KeyFormat": "ppk"})


def test_pem_format_is_accepted(alice):
    assert call(alice, "CreateKeyPair", KeyName="k", KeyFormat="pem")["KeyMaterial"]


@pytest.mark.parametrize("name,ok", [("a", True), ("x" * 255, True), ("with space & symbols!~", True),
                                     ("", False), ("x" * 256, False), ("caf\u00e9", False), ("tab\there", False)])
def test_key_names_are_1_to_255_ascii(alice, name, ok):
    if ok:
        assert call(alice, "CreateKeyPair", KeyName=name)["KeyName"] == name
    else:
        assert code(alice, "CreateKeyPair", KeyName=name) == "InvalidParameterValue"


def test_key_name_is_required(alice):
    with pytest.raises(AWSError) as info:
        keypairs.create_key_pair(alice, {})
    assert info.value.code == "MissingParameter"


def test_names_are_unique_per_account(alice, bob):
    call(alice, "CreateKeyPair", KeyName="k")
    assert code(alice, "CreateKeyPair", KeyName="k") == "InvalidKeyPair.Duplicate"
    public = openssh_line(rsa_key().public_key())
    assert code(alice, "ImportKeyPair", KeyName="k", PublicKeyMaterial=public) == "InvalidKeyPair.Duplicate"
    assert call(bob, "CreateKeyPair", KeyName="k")["KeyName"] == "k"


# -- ImportKeyPair ---------------------------------------------------------------------------------

def test_imported_rsa_fingerprint_is_md5_of_der_spki(alice):
    key = rsa_key().public_key()
    imported = call(alice, "ImportKeyPair", KeyName="mine", PublicKeyMaterial=openssh_line(key) + b" me@host\n")
    assert imported["KeyFingerprint"] == md5_of_spki(key)
    assert imported["KeyPairId"].startswith("key-") and "KeyMaterial" not in imported
    described = call(alice, "DescribeKeyPairs", KeyPairIds=[imported["KeyPairId"]],
                     IncludePublicKey=True)["KeyPairs"][0]
    assert described["KeyType"] == "rsa" and described["KeyFingerprint"] == imported["KeyFingerprint"]
    assert described["PublicKey"] == openssh_line(key).decode() + " mine"  # its comment dropped
    # What RunInstances gives the instance: the key itself, without the importer's comment.
    assert instances.public_key(alice.cloud, ALICE, "mine") == openssh_line(key).decode()


@needs_ssh_keygen
@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_imported_ssh_keygen_rsa_key(alice, tmp_path, bits):
    private_path, public_path = ssh_keygen(tmp_path, "rsa", bits)
    imported = call(alice, "ImportKeyPair", KeyName="kg", PublicKeyMaterial=public_path.read_bytes())
    key = serialization.load_ssh_public_key(public_path.read_bytes())
    assert imported["KeyFingerprint"] == md5_of_spki(key)
    # AWS matches MD5 of the DER SubjectPublicKeyInfo (the User Guide's openssl recipe), which is
    # not what ``ssh-keygen -l -E md5`` prints: that is the MD5 of the OpenSSH wire blob.
    assert imported["KeyFingerprint"] != keygen_fingerprint(public_path, "md5")
    blob = base64.b64decode(public_path.read_text().split()[1])
    assert keygen_fingerprint(public_path, "md5") == colon_hex(hashlib.md5(blob).digest())
    if shutil.which("openssl"):
        # ssh-keygen -e -m PKCS8 -f key.pub | openssl pkey -pubin -outform DER | openssl md5 -c
        pem = subprocess.run(["ssh-keygen", "-e", "-m", "PKCS8", "-f", str(public_path)], check=True,
                             capture_output=True, timeout=60).stdout
        der = openssl(["pkey", "-pubin", "-outform", "DER"], pem)
        assert imported["KeyFingerprint"] == openssl_digest("md5", der)


@needs_ssh_keygen
def test_imported_ssh_keygen_ed25519_key(alice, tmp_path):
    _, public_path = ssh_keygen(tmp_path, "ed25519")
    imported = call(alice, "ImportKeyPair", KeyName="kg", PublicKeyMaterial=public_path.read_bytes())
    assert imported["KeyFingerprint"] == keygen_fingerprint(public_path, "sha256") + "="
    key = serialization.load_ssh_public_key(public_path.read_bytes())
    assert imported["KeyFingerprint"] == sha256_of_blob(key)
    assert call(alice, "DescribeKeyPairs", KeyNames=["kg"])["KeyPairs"][0]["KeyType"] == "ed25519"


#: Fixed vectors, their fingerprints worked out once with the tools, not with this code:
#: ``ssh-keygen -e -m PKCS8 -f k.pub | openssl pkey -pubin -outform DER | openssl md5 -c`` and
#: ``ssh-keygen -l -E md5|sha256 -f k.pub``.
RSA_VECTOR = (b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDVyJGk35lg0K6yAoLCRZ1B1rQr8BZm/DW7483vSF/lEGSfdBQfjxlVUm+83z"
              b"24vnPRChos7cwpQyxGjdRcBZOXEzmB+3D/DKLIGH+2leIdfkdxOMXumu/FZzmmIYvkZzDTFzxzuYj3HDmRvTJ2yZ8btIusDN"
              b"q8lvvufrAHuNbXXQ== vector")
RSA_VECTOR_MD5_SPKI = "f8:15:3b:ec:a4:25:b7:3e:2f:0c:79:4f:68:cd:eb:71"
RSA_VECTOR_MD5_OPENSSH = "7c:6a:94:aa:d8:c9:94:a8:26:96:b5:68:59:a9:ea:98"
#: RFC 8032's first test public key as an OpenSSH line.
ED25519_VECTOR = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea rfc8032"
ED25519_VECTOR_SHA256 = "bbXpuKG6zhzdmnxq256TlqzFBzRl2f6OOg722cYNbU8"


def test_known_vectors(alice):
    imported = call(alice, "ImportKeyPair", KeyName="rsa", PublicKeyMaterial=RSA_VECTOR)
    assert imported["KeyFingerprint"] == RSA_VECTOR_MD5_SPKI != RSA_VECTOR_MD5_OPENSSH
    imported = call(alice, "ImportKeyPair", KeyName="ed", PublicKeyMaterial=ED25519_VECTOR)
    assert imported["KeyFingerprint"] == ED25519_VECTOR_SHA256 + "="


def rfc4716(key) -> bytes:
    body = openssh_line(key).split()[1].decode()
    lines = [body[i:i + 70] for i in range(0, len(body), 70)]
    return ("---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"a long comment that \\\ncontinues\"\n"
            + "\n".join(lines) + "\n---- END SSH2 PUBLIC KEY ----\n").encode()


@pytest.mark.parametrize("encode", [
    openssh_line,
    lambda k: b"  " + openssh_line(k) + b" comment with spaces\r\n",
    rfc4716,
    lambda k: k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    lambda k: k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
    lambda k: k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    lambda k: base64.encodebytes(
        k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)),
], ids=["openssh", "openssh-padded", "rfc4716", "pem-spki", "pem-pkcs1", "der", "base64-der"])
def test_rsa_material_formats_give_one_fingerprint(alice, encode):
    key = rsa_key().public_key()
    imported = call(alice, "ImportKeyPair", KeyName="k", PublicKeyMaterial=encode(key))
    assert imported["KeyFingerprint"] == md5_of_spki(key)
    assert keypairs.public_key(alice.cloud, ALICE, "k") == openssh_line(key).decode()


def test_ed25519_in_rfc4716(alice):
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    imported = call(alice, "ImportKeyPair", KeyName="k", PublicKeyMaterial=rfc4716(key))
    assert imported["KeyFingerprint"] == sha256_of_blob(key)


def _ecdsa_line():
    return openssh_line(ec.generate_private_key(ec.SECP256R1()).public_key())


def _ed25519_pem():
    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _private_pem():
    return rsa_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption())


@pytest.mark.parametrize("material", [
    lambda: b"not a key",
    lambda: b"ssh-rsa",
    lambda: b"ssh-rsa AAAA!!!notbase64",
    lambda: openssh_line(rsa_key().public_key())[:-20],
    lambda: openssh_line(rsa_key().public_key()).replace(b"ssh-rsa", b"ssh-ed25519", 1),
    lambda: openssh_line(rsa.RSAPublicNumbers(65537, (1 << 511) + 1).public_key()),
    lambda: openssh_line(rsa_key().public_key()) + b"\n" + openssh_line(rsa_key().public_key()),
    _ecdsa_line,
    _ed25519_pem,
    _private_pem,
    lambda: b"0\x82garbage",
    lambda: b"\xff\xfe\x00binary",
], ids=["text", "type-only", "bad-base64", "truncated", "wrong-type", "rsa-512", "two-keys", "ecdsa",
        "ed25519-pem", "private-key", "bad-der", "binary"])
def test_import_refuses_what_is_not_an_rsa_or_ed25519_public_key(alice, material):
    assert code(alice, "ImportKeyPair", KeyName="bad", PublicKeyMaterial=material()) == "InvalidKey.Format"
    assert names(alice) == []


def test_import_dry_run_validates_first(alice):
    assert code(alice, "ImportKeyPair", KeyName="k", PublicKeyMaterial=b"junk", DryRun=True) == "InvalidKey.Format"
    line = openssh_line(rsa_key().public_key())
    assert code(alice, "ImportKeyPair", KeyName="k", PublicKeyMaterial=line, DryRun=True) == "DryRunOperation"
    assert names(alice) == []


def test_import_with_tags(alice):
    tags = [{"Key": "team", "Value": "blue"}]
    imported = call(alice, "ImportKeyPair", KeyName="k", PublicKeyMaterial=openssh_line(rsa_key().public_key()),
                    TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}])
    assert imported["Tags"] == tags
    assert call(alice, "DescribeKeyPairs")["KeyPairs"][0]["Tags"] == tags


# -- DescribeKeyPairs ------------------------------------------------------------------------------

@pytest.fixture
def three(alice):
    """Alice's keys: an RSA key made here, an imported RSA key, an ed25519 key (tagged)."""
    made = call(alice, "CreateKeyPair", KeyName="made",
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "env", "Value": "prod"}]}])
    imported = call(alice, "ImportKeyPair", KeyName="imported",
                    PublicKeyMaterial=openssh_line(rsa_key().public_key()))
    edge = call(alice, "CreateKeyPair", KeyName="edge", KeyType="ed25519",
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "env", "Value": "dev"}]}])
    return {"made": made, "imported": imported, "edge": edge}


def test_describe_lists_by_name_with_types_tags_and_times(alice, three):
    pairs = call(alice, "DescribeKeyPairs")["KeyPairs"]
    assert [p["KeyName"] for p in pairs] == ["edge", "imported", "made"]
    by_name = {p["KeyName"]: p for p in pairs}
    assert {n: p["KeyType"] for n, p in by_name.items()} == {"edge": "ed25519", "imported": "rsa", "made": "rsa"}
    assert by_name["made"]["Tags"] == [{"Key": "env", "Value": "prod"}] and by_name["imported"]["Tags"] == []
    assert all("PublicKey" not in p and p["CreateTime"].tzinfo for p in pairs)


def test_describe_by_names_and_ids(alice, bob, three):
    assert names(alice, KeyNames=["made", "edge"]) == ["edge", "made"]
    assert names(alice, KeyPairIds=[three["imported"]["KeyPairId"]]) == ["imported"]
    assert names(alice, KeyNames=["made"], KeyPairIds=[three["edge"]["KeyPairId"]]) == ["edge", "made"]
    assert code(alice, "DescribeKeyPairs", KeyNames=["nope"]) == "InvalidKeyPair.NotFound"
    assert code(alice, "DescribeKeyPairs", KeyPairIds=["key-00000000"]) == "InvalidKeyPair.NotFound"
    # Another account's key answers exactly as a key that does not exist.
    assert code(bob, "DescribeKeyPairs", KeyNames=["made"]) == "InvalidKeyPair.NotFound"
    assert code(bob, "DescribeKeyPairs", KeyPairIds=[three["made"]["KeyPairId"]]) == "InvalidKeyPair.NotFound"
    assert names(bob) == []


@pytest.mark.parametrize("filters,expected", [
    ([{"Name": "key-name", "Values": ["ma*", "e?ge"]}], ["edge", "made"]),
    ([{"Name": "key-type", "Values": ["ed25519"]}], ["edge"]),
    ([{"Name": "key-type", "Values": ["rsa"]}], ["imported", "made"]),
    ([{"Name": "tag:env", "Values": ["prod"]}], ["made"]),
    ([{"Name": "tag-key", "Values": ["env"]}], ["edge", "made"]),
    ([{"Name": "tag-value", "Values": ["dev"]}], ["edge"]),
    ([{"Name": "key-type", "Values": ["rsa"]}, {"Name": "tag-key", "Values": ["env"]}], ["made"]),
])
def test_describe_filters(alice, three, filters, expected):
    assert names(alice, Filters=filters) == expected


def test_describe_filters_by_fingerprint_and_id(alice, three):
    for name, created in three.items():
        assert names(alice, Filters=[{"Name": "fingerprint", "Values": [created["KeyFingerprint"]]}]) == [name]
        assert names(alice, Filters=[{"Name": "key-pair-id", "Values": [created["KeyPairId"]]}]) == [name]


def test_describe_unknown_filter(alice, three):
    assert code(alice, "DescribeKeyPairs", Filters=[{"Name": "colour", "Values": ["x"]}]) == "InvalidParameterValue"


def test_describe_include_public_key(alice, three):
    pairs = call(alice, "DescribeKeyPairs", IncludePublicKey=True)["KeyPairs"]
    assert {p["KeyName"]: p["PublicKey"].split()[0] for p in pairs} == {
        "edge": "ssh-ed25519", "imported": "ssh-rsa", "made": "ssh-rsa"}
    assert all(p["PublicKey"].endswith(" " + p["KeyName"]) for p in pairs)


def test_describe_dry_run(alice, three):
    assert code(alice, "DescribeKeyPairs", DryRun=True) == "DryRunOperation"


def test_verbose_is_the_cloud_admins_view(cloud, alice, bob, admin, three):
    call(bob, "CreateKeyPair", KeyName="bobs")
    assert names(admin, KeyNames=["verbose"]) == ["edge", "imported", "made", "bobs"]
    assert names(admin, Filters=[{"Name": "owner-id", "Values": [BOB]}]) == ["bobs"]
    assert names(admin) == []
    # Anyone else asking for verbose sees their own keys only.
    assert names(bob, KeyNames=["verbose"]) == ["bobs"]


# -- DeleteKeyPair ---------------------------------------------------------------------------------

def test_delete_by_name_or_id_forgets_tags(alice, three):
    assert call(alice, "DeleteKeyPair", KeyName="made") == {"Return": True, "KeyPairId": three["made"]["KeyPairId"]}
    assert call(alice, "DeleteKeyPair", KeyPairId=three["edge"]["KeyPairId"])["Return"] is True
    assert names(alice) == ["imported"]
    left = alice.cloud.store.db.execute("SELECT resource_id FROM tags").fetchall()
    assert left == []


def test_delete_with_name_and_id_needs_both_to_match(alice, three):
    call(alice, "DeleteKeyPair", KeyName="made", KeyPairId=three["edge"]["KeyPairId"])
    assert names(alice) == ["edge", "imported", "made"]
    call(alice, "DeleteKeyPair", KeyName="made", KeyPairId=three["made"]["KeyPairId"])
    assert names(alice) == ["edge", "imported"]


def test_delete_missing_or_anothers_key_succeeds_and_changes_nothing(alice, bob, three):
    assert call(bob, "DeleteKeyPair", KeyName="made") == {"Return": True}
    assert call(bob, "DeleteKeyPair", KeyPairId=three["made"]["KeyPairId"]) == {"Return": True}
    assert call(alice, "DeleteKeyPair", KeyName="never") == {"Return": True}
    assert names(alice) == ["edge", "imported", "made"]


def test_delete_refusals(alice, three):
    assert code(alice, "DeleteKeyPair", KeyName="made", DryRun=True) == "DryRunOperation"
    with pytest.raises(AWSError) as info:
        keypairs.delete_key_pair(alice, {})
    assert info.value.code == "MissingParameter"
    assert names(alice) == ["edge", "imported", "made"]


def test_handlers_are_registered():
    for action in ("CreateKeyPair", "ImportKeyPair", "DescribeKeyPairs", "DeleteKeyPair"):
        assert HANDLERS[action] is keypairs.HANDLERS[action]
