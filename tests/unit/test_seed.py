"""nc.seed: the NoCloud seed image really carries its label and files, under the names
cloud-init looks for, in every name space a reader may use (Rock Ridge, Joliet, plain ISO)."""

import gzip
import io

import pycdlib
import pytest
import yaml

from nc.seed import LABEL, build_seed, meta_data, read_seed

KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e alice@example: a # comment", "ssh-rsa AAAAB3Nza bob"]


def test_seed_carries_label_meta_data_and_user_data(tmp_path):
    user_data = b"#!/bin/sh\necho hello\n"
    path = build_seed(tmp_path / "seed.iso", "i-0badc0de", "host-1", user_data, KEYS)
    found = read_seed(path)
    assert found["label"] == b"cidata" == LABEL.encode()
    assert found["user-data"] == user_data
    assert yaml.safe_load(found["meta-data"]) == {"instance-id": "i-0badc0de", "local-hostname": "host-1",
                                                 "public-keys": KEYS}
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]  # no temporary file left


def test_joliet_and_plain_iso_readers_see_the_files_too(tmp_path):
    path = build_seed(tmp_path / "seed.iso", "i-0badc0de", "host-1", b"data", [])
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        joliet = sorted(c.file_identifier().decode("utf-16-be") for c in iso.list_children(joliet_path="/") if c.is_file())
        plain = sorted(c.file_identifier().decode() for c in iso.list_children(iso_path="/") if c.is_file())
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, joliet_path="/user-data")
    finally:
        iso.close()
    assert joliet == ["meta-data", "user-data"]
    assert plain == ["METADATA.;1", "USERDATA.;1"]
    assert out.getvalue() == b"data"


def test_binary_user_data_and_no_keys(tmp_path):
    packed = gzip.compress(b"#cloud-config\n")
    found = read_seed(build_seed(tmp_path / "seed.iso", "i-00000001", "i-00000001", packed, []))
    assert found["user-data"] == packed
    assert "public-keys" not in yaml.safe_load(found["meta-data"])


def test_rebuilding_replaces_the_seed(tmp_path):
    path = tmp_path / "seed.iso"
    build_seed(path, "i-00000001", "h", b"first", [])
    build_seed(path, "i-00000001", "h", b"second", [])
    assert read_seed(path)["user-data"] == b"second"


@pytest.mark.parametrize("instance_id, hostname", [("i-1\ninjected: x", "h"), ("i-1", "bad host"), ("", "h")])
def test_ids_and_host_names_must_be_plain_tokens(instance_id, hostname):
    with pytest.raises(ValueError):
        meta_data(instance_id, hostname, [])
