"""euca-bundle-image and the bundle commands' options and one-line errors, run in-process
(uploads are exercised against the live cloud in tests/integration/test_bundles.py)."""

import os

import pytest

from euca2ools import ec2_bundles
from euca2ools.cli import CommandError
from eucacore import bundle, pki


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A user's environment: a eucarc-like EUCALYPTUS_CERT and EC2_USER_ID, no ~/.euca."""
    keys = tmp_path / "keys"
    pki.create_ca(keys)
    pki.issue(keys, "cluster", "user-stand-in", ["127.0.0.1"])
    for name in ("EC2_CERT", "EC2_PRIVATE_KEY", "S3_URL", "EC2_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EUCALYPTUS_CERT", str(keys / pki.CA_CERT))
    monkeypatch.setenv("EC2_USER_ID", "123456789012")
    return keys


def options(*argv: str) -> dict:
    return ec2_bundles.bundle_options(ec2_bundles.bundle_image_parser().parse_args(["-i", "x", *argv]))


def test_bundle_image_writes_parts_and_manifest(env, tmp_path, capsys):
    image = tmp_path / "disk.img"
    image.write_bytes(os.urandom(3000))
    assert ec2_bundles.bundle_image(["-i", str(image), "-d", str(tmp_path / "out"), "-r", "i386"]) == 0
    out = tmp_path / "out"
    assert capsys.readouterr().out.splitlines() == [f"Wrote {out}/disk.img.part.00",
                                                    f"Wrote manifest {out}/disk.img.manifest.xml"]
    manifest = (out / "disk.img.manifest.xml").read_bytes()
    assert b"<user>123456789012</user>" in manifest and b"<architecture>i386</architecture>" in manifest


def test_marking_a_kernel_or_ramdisk(env):
    assert options("--kernel", "true")["image_type"] == "kernel"
    assert (options("--ramdisk", "true")["image_type"], options("--ramdisk", "true")["kernel_id"]) == ("ramdisk", "")
    machine = options("--kernel", "eki-12345678", "--ramdisk", "eri-12345678")
    assert (machine["image_type"], machine["kernel_id"], machine["ramdisk_id"]) == \
        ("machine", "eki-12345678", "eri-12345678")
    for argv in (("--kernel", "true", "--ramdisk", "true"), ("--kernel", "true", "--ramdisk", "eri-12345678")):
        with pytest.raises(CommandError):
            options(*argv)


def test_a_user_key_pair_is_used_only_whole(env):
    assert options()["user_key"] is None
    with pytest.raises(CommandError, match="give both or neither"):
        options("-c", str(env / "cluster-cert.pem"))
    both = options("-c", str(env / "cluster-cert.pem"), "-k", str(env / "cluster-pk.pem"))
    assert both["user_cert"].startswith(b"-----BEGIN CERTIFICATE") and both["user_key"]


def test_the_cloud_certificate_comes_from_the_eucarc(env, tmp_path, monkeypatch):
    monkeypatch.delenv("EUCALYPTUS_CERT")
    with pytest.raises(CommandError, match="EUCALYPTUS_CERT"):
        options()
    (tmp_path / ".euca").mkdir()
    (tmp_path / ".euca" / "eucarc").write_text(f"export EUCALYPTUS_CERT={env / pki.CA_CERT}\n")
    assert options()["ec2_cert"] == (env / pki.CA_CERT).read_bytes()


def test_errors_are_one_line(env, tmp_path, capsys):
    assert ec2_bundles.bundle_image(["-i", str(tmp_path / "none.img")]) == 1
    assert capsys.readouterr().err == f"euca-bundle-image: error: the image {tmp_path}/none.img is not a file\n"
    image = tmp_path / "disk.img"
    image.write_bytes(b"x")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    assert ec2_bundles.bundle_image(["-i", str(image), "--ec2cert", str(not_pem), "-d", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("euca-bundle-image: error: cannot bundle") and err.count("\n") == 1
    assert ec2_bundles.upload_bundle(["-b", "bkt", "-m", str(image), "-U", "http://127.0.0.1:1",
                                      "-I", "AKID", "-S", "secret"]) == 1
    assert capsys.readouterr().err.startswith(f"euca-upload-bundle: error: {image}: the manifest is not")


def test_a_local_bundle_needs_all_its_parts(env, tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(os.urandom(5000))
    made = bundle.create_bundle(image, tmp_path / "out", (env / pki.CA_CERT).read_bytes(), part_size=2048)
    assert ec2_bundles.local_bundle(str(made.manifest), None) == made
    made.parts[1].unlink()
    with pytest.raises(CommandError, match="missing part .*disk.img.part.01"):
        ec2_bundles.local_bundle(str(made.manifest), None)
