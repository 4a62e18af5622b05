"""eucacore.bundle: bundles made and unpacked for real (files on disk, openssl to cross-check),
and clc.ec2.manifests reading what it makes."""

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from clc.ec2 import manifests
from eucacore import bundle, pki
from eucacore.awsapi.errors import AWSError

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A cloud CA (cloud-cert/pk.pem) and node, cluster keys issued by it."""
    keys_dir = tmp_path_factory.mktemp("keys")
    pki.create_ca(keys_dir)
    for kind in ("node", "cluster"):
        pki.issue(keys_dir, kind, f"{kind}-1", ["127.0.0.1"])
    return keys_dir


def cloud_cert(keys) -> bytes:
    return (keys / pki.CA_CERT).read_bytes()


def cloud_key(keys) -> bytes:
    return (keys / pki.CA_KEY).read_bytes()


def make_image(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def file_chunks(path: Path, size: int = 64 * 1024):
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def manifest_of(made: bundle.Bundle):
    return etree.fromstring(made.manifest.read_bytes())


def secrets_of(made: bundle.Bundle, keys) -> tuple[bytes, bytes]:
    image = manifest_of(made).find("image")
    return (bundle.decrypt_secret(cloud_key(keys), image.findtext("ec2_encrypted_key")),
            bundle.decrypt_secret(cloud_key(keys), image.findtext("ec2_encrypted_iv")))


def unpack(made: bundle.Bundle, keys, *, parts=None, digest=None, key=None) -> bytes:
    """The image of ``made``, unbundled as the NC does (from the files on disk)."""
    image = manifest_of(made).find("image")
    real_key, iv = secrets_of(made, keys)
    digests = [p.findtext("digest") for p in image.findall("parts/part")]
    out = io.BytesIO()
    bundle.unbundle([(d, file_chunks(p)) for d, p in zip(digests, parts or made.parts)], key or real_key, iv,
                    digest or image.findtext("digest"), int(image.findtext("size")), out)
    return out.getvalue()


# -- roundtrip -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, part_size", [(0, 1024), (1, 1024), (5000, 1024), (20_000, 16), (300_000, 4096),
                                             (300_000, bundle.PART_SIZE)])
def test_roundtrip_across_part_boundaries(tmp_path, keys, size, part_size):
    image = make_image(tmp_path / "disk.img", size)
    made = bundle.create_bundle(image, tmp_path / "out", cloud_cert(keys), account_id="123456789012",
                                part_size=part_size)
    sizes = [p.stat().st_size for p in made.parts]
    assert all(s == part_size for s in sizes[:-1]) and 0 < sizes[-1] <= part_size
    assert [p.name for p in made.parts] == [f"disk.img.part.{i:02d}" for i in range(len(made.parts))]
    assert made.manifest == tmp_path / "out" / "disk.img.manifest.xml"
    assert unpack(made, keys) == image.read_bytes()
    m = manifests.parse_manifest(made.manifest.read_bytes())
    assert (m.image_type, m.architecture, m.size, m.bundled_size) == ("machine", "x86_64", size, sum(sizes))
    assert m.parts == tuple(p.name for p in made.parts)


def test_an_image_over_10_mib_makes_parts_of_10_mib(tmp_path, keys):
    image = make_image(tmp_path / "big.img", 10 * MIB + 12345)  # random: gzip cannot shrink it
    made = bundle.create_bundle(image, tmp_path / "out", cloud_cert(keys))
    assert [p.stat().st_size for p in made.parts][0] == 10 * MIB and len(made.parts) == 2
    assert hashlib.sha256(unpack(made, keys)).digest() == hashlib.sha256(image.read_bytes()).digest()


def test_a_part_too_big_for_memory_waits_on_disk_for_its_check(tmp_path, keys, monkeypatch):
    monkeypatch.setattr(bundle, "SPOOL_MEMORY", 4096)
    image = make_image(tmp_path / "disk.img", 100_000)
    made = bundle.create_bundle(image, tmp_path / "out", cloud_cert(keys), part_size=32 * 1024)
    assert unpack(made, keys) == image.read_bytes()


def test_the_manifest_carries_digests_and_keys_for_the_cloud(tmp_path, keys):
    image = make_image(tmp_path / "k.img", 3000)
    made = bundle.create_bundle(image, tmp_path / "out", cloud_cert(keys), image_type="kernel", part_size=1024,
                                account_id="123456789012", architecture="i386", prefix="vmlinuz")
    root = manifest_of(made)
    assert root.findtext("version") == "2007-10-10"
    assert root.findtext("machine_configuration/kernel_id") == "true"
    assert root.findtext("image/user") == "123456789012" and root.findtext("image/name") == "vmlinuz"
    assert root.find("image/ec2_encrypted_key").get("algorithm") == "AES-128-CBC"
    assert root.find("image/user_encrypted_key") is None and root.findtext("signature") == ""
    download = manifests.parse_download(made.manifest.read_bytes())
    assert download.parts == tuple((p.name, hashlib.sha1(p.read_bytes()).hexdigest()) for p in made.parts)
    assert (download.size, manifests.parse_manifest(made.manifest.read_bytes()).image_type) == (3000, "kernel")
    tar = gzip.decompress(_openssl_decrypt(made, keys))
    assert download.digest == hashlib.sha1(tar).hexdigest()


def _openssl_decrypt(made: bundle.Bundle, keys) -> bytes:
    key, iv = secrets_of(made, keys)
    proc = subprocess.run(["openssl", "enc", "-d", "-aes-128-cbc", "-K", key.hex(), "-iv", iv.hex()],
                          input=b"".join(p.read_bytes() for p in made.parts), capture_output=True, check=True)
    return proc.stdout


def test_openssl_decrypts_the_parts_and_tar_unpacks_them(tmp_path, keys):
    assert shutil.which("openssl"), "openssl is in APT_PACKAGES"
    image = make_image(tmp_path / "disk.img", 50_000)
    made = bundle.create_bundle(image, tmp_path / "out", cloud_cert(keys), part_size=8192)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(_openssl_decrypt(made, keys)))) as tar:
        assert tar.getnames() == ["disk.img"]
        assert tar.extractfile("disk.img").read() == image.read_bytes()


def test_with_a_user_key_pair_the_user_gets_the_key_and_the_manifest_is_signed(tmp_path, keys):
    image = make_image(tmp_path / "disk.img", 2000)
    user_cert, user_key = (keys / "cluster-cert.pem").read_bytes(), (keys / "cluster-pk.pem").read_bytes()
    made = bundle.create_bundle(image, tmp_path / "out", cloud_cert(keys), user_cert=user_cert, user_key=user_key)
    root = manifest_of(made)
    image_element, config = root.find("image"), root.find("machine_configuration")
    assert bundle.decrypt_secret(user_key, image_element.findtext("user_encrypted_key")) == secrets_of(made, keys)[0]
    assert bundle.decrypt_secret(user_key, image_element.findtext("user_encrypted_iv")) == secrets_of(made, keys)[1]
    public = x509.load_pem_x509_certificate(user_cert).public_key()
    public.verify(bytes.fromhex(root.findtext("signature")), etree.tostring(config) + etree.tostring(image_element),
                  padding.PKCS1v15(), hashes.SHA1())  # raises if it does not verify


# -- what does not unpack --------------------------------------------------------------------------

@pytest.fixture
def three_parts(tmp_path, keys):
    image = make_image(tmp_path / "disk.img", 40_000)
    return bundle.create_bundle(image, tmp_path / "out", cloud_cert(keys), part_size=16 * 1024)


def test_a_tampered_part_is_refused_by_its_digest(three_parts, keys):
    assert len(three_parts.parts) == 3
    data = bytearray(three_parts.parts[1].read_bytes())
    data[100] ^= 1
    three_parts.parts[1].write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match="part 1 of the bundle does not match its digest"):
        unpack(three_parts, keys)


def test_a_wrong_image_digest_is_refused(three_parts, keys):
    with pytest.raises(bundle.BundleError, match="does not match its digest"):
        unpack(three_parts, keys, digest="0" * 40)


def test_a_wrong_key_is_refused(three_parts, keys):
    with pytest.raises(bundle.BundleError, match="corrupt, or a wrong key|bad padding"):
        unpack(three_parts, keys, key=os.urandom(16))


def test_a_missing_last_part_is_refused(three_parts, keys):
    image = manifest_of(three_parts).find("image")
    key, iv = secrets_of(three_parts, keys)
    digests = [p.findtext("digest") for p in image.findall("parts/part")][:2]
    with pytest.raises(bundle.BundleError):
        bundle.unbundle([(d, file_chunks(p)) for d, p in zip(digests, three_parts.parts)], key, iv,
                        image.findtext("digest"), int(image.findtext("size")), io.BytesIO())


def test_a_bundle_of_two_files_is_refused(tmp_path, keys):
    """Only euca-bundle-image's layout, one file, is an image (a hand-made tar of two is not)."""
    key, iv = os.urandom(16), os.urandom(16)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        for name in ("a", "b"):
            info = tarfile.TarInfo(name)
            info.size = 3
            t.addfile(info, io.BytesIO(b"abc"))
    encrypted = subprocess.run(["openssl", "enc", "-aes-128-cbc", "-K", key.hex(), "-iv", iv.hex()],
                               input=gzip.compress(tar.getvalue()), capture_output=True, check=True).stdout
    with pytest.raises(bundle.BundleError, match="more than one file"):
        bundle.unbundle([(hashlib.sha1(encrypted).hexdigest(), [encrypted])], key, iv,
                        hashlib.sha1(tar.getvalue()).hexdigest(), 3, io.BytesIO())


def test_a_failed_bundle_leaves_no_part(tmp_path, keys):
    with pytest.raises(ValueError):
        bundle.create_bundle(make_image(tmp_path / "disk.img", 50_000), tmp_path / "out", b"not a certificate",
                             part_size=1024)
    assert not (tmp_path / "out").exists()  # refused before any work
    (tmp_path / "out" / "disk.img.manifest.xml").mkdir(parents=True)  # the manifest cannot be written
    with pytest.raises(OSError):
        bundle.create_bundle(tmp_path / "disk.img", tmp_path / "out", cloud_cert(keys), part_size=1024)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["disk.img.manifest.xml"]  # the parts are gone


# -- keys --------------------------------------------------------------------------------------

def test_secrets_open_only_with_the_right_key(keys):
    secret = os.urandom(16)
    node_cert, node_key = (keys / "node-cert.pem").read_bytes(), (keys / "node-pk.pem").read_bytes()
    cluster_key = (keys / "cluster-pk.pem").read_bytes()
    assert bundle.unseal(node_key, bundle.seal(node_cert, secret)) == secret
    with pytest.raises(bundle.BundleError, match="not sealed for this node"):
        bundle.unseal(cluster_key, bundle.seal(node_cert, secret))
    assert bundle.decrypt_secret(cloud_key(keys), bundle.encrypt_secret(cloud_cert(keys), secret)) == secret
    with pytest.raises(bundle.BundleError, match="not encrypted for this cloud"):
        bundle.decrypt_secret(cluster_key, bundle.encrypt_secret(cloud_cert(keys), secret))


def test_node_bundle_passes_the_key_from_the_cloud_to_the_node(tmp_path, keys):
    made = bundle.create_bundle(make_image(tmp_path / "disk.img", 5000), tmp_path / "out", cloud_cert(keys),
                                part_size=2048)
    download = manifests.parse_download(made.manifest.read_bytes())
    sent = manifests.node_bundle(download, cloud_key(keys), (keys / "node-cert.pem").read_bytes(),
                                 lambda name: f"http://walrus/b/{name}")
    node_key = (keys / "node-pk.pem").read_bytes()
    assert (bundle.unseal(node_key, sent["encryptedKey"]), bundle.unseal(node_key, sent["encryptedIv"])) == \
        secrets_of(made, keys)
    assert sent["parts"] == [{"url": f"http://walrus/b/{p.name}", "digest": d} for p, (_, d) in
                             zip(made.parts, download.parts)]
    assert (sent["digest"], sent["size"]) == (download.digest, 5000)


def test_a_bundle_for_another_cloud_is_an_invalid_manifest(tmp_path, keys):
    other = tmp_path / "other-ca"
    pki.create_ca(other)
    made = bundle.create_bundle(make_image(tmp_path / "disk.img", 100), tmp_path / "out", cloud_cert(other))
    download = manifests.parse_download(made.manifest.read_bytes())
    with pytest.raises(AWSError) as e:
        manifests.node_bundle(download, cloud_key(keys), (keys / "node-cert.pem").read_bytes(), str)
    assert e.value.code == "InvalidManifest" and "not encrypted for this cloud" in e.value.message


def test_a_download_needs_sha1_digests(tmp_path, keys):
    made = bundle.create_bundle(make_image(tmp_path / "disk.img", 100), tmp_path / "out", cloud_cert(keys))
    data = made.manifest.read_bytes()
    digest = manifest_of(made).findtext("image/parts/part/digest").encode()
    with pytest.raises(AWSError, match="digest of part 0"):
        manifests.parse_download(data.replace(digest, b"00"))


def test_part_names_are_read_in_index_order_and_must_be_plain(tmp_path, keys):
    made = bundle.create_bundle(make_image(tmp_path / "disk.img", 5000), tmp_path / "out", cloud_cert(keys),
                                part_size=2048)
    assert bundle.part_names(made.manifest.read_bytes()) == [p.name for p in made.parts]
    evil = made.manifest.read_bytes().replace(b"disk.img.part.00", b"../../etc/passwd")
    with pytest.raises(bundle.BundleError, match="plain file name"):
        bundle.part_names(evil)
