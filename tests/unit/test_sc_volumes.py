"""sc.volumes: volumes as sparse files on the real filesystem, recorded in SQLite."""

import os

import pytest

from eucacore.config import default_config
from sc.volumes import MAX_VOLUME_GB, StorageController, VolumeError

GIB = 2**30


@pytest.fixture
def sc(tmp_path):
    controller = StorageController(default_config(EUCALYPTUS=str(tmp_path)))
    yield controller
    controller.store.close()


def test_create_makes_a_sparse_file_of_the_right_size(sc):
    volume = sc.create_volume("vol-00000001", 2)
    path = sc.volumes_dir / "vol-00000001"
    assert volume["path"] == str(path)
    assert (volume["size"], volume["status"], volume["snapshot_id"]) == (2, "available", "")
    st = path.stat()
    assert st.st_size == 2 * GIB
    assert st.st_blocks * 512 < 1024 * 1024  # sparse: almost nothing allocated
    assert not [p for p in sc.volumes_dir.iterdir() if p.name.startswith(".")]


def test_create_is_idempotent(sc):
    first = sc.create_volume("vol-00000002", 1)
    second = sc.create_volume("vol-00000002", 1)
    assert second == first
    assert [v["volume_id"] for v in sc.volumes()] == ["vol-00000002"]


def test_volumes_are_recorded_durably(sc, tmp_path):
    sc.create_volume("vol-00000003", 1)
    again = StorageController(default_config(EUCALYPTUS=str(tmp_path)))
    try:
        assert again.volume("vol-00000003")["size"] == 1
    finally:
        again.store.close()


def test_volumes_filter(sc):
    sc.create_volume("vol-0000000a", 1)
    sc.create_volume("vol-0000000b", 1)
    assert sorted(v["volume_id"] for v in sc.volumes()) == ["vol-0000000a", "vol-0000000b"]
    assert [v["volume_id"] for v in sc.volumes(["vol-0000000b"])] == ["vol-0000000b"]
    assert sc.volume("vol-0000000c") is None


@pytest.mark.parametrize("volume_id,size,snapshot,code", [
    ("vol-00000004", 0, None, "InvalidParameterValue"),
    ("vol-00000004", -1, None, "InvalidParameterValue"),
    ("vol-00000004", MAX_VOLUME_GB + 1, None, "InvalidParameterValue"),
    ("volume-1", 1, None, "InvalidParameterValue"),
    ("i-12345678", 1, None, "InvalidParameterValue"),
    ("vol-00000004", 1, "snap-00000001", "InvalidSnapshot.NotFound"),
])
def test_bad_requests_are_refused_with_a_code(sc, volume_id, size, snapshot, code):
    with pytest.raises(VolumeError) as info:
        sc.create_volume(volume_id, size, snapshot)
    assert info.value.code == code
    assert str(info.value)
    assert sc.volumes() == []
    assert list(sc.volumes_dir.iterdir()) == []


def test_largest_volume_is_allowed(sc):
    volume = sc.create_volume("vol-0000000f", MAX_VOLUME_GB)
    assert os.stat(volume["path"]).st_size == MAX_VOLUME_GB * GIB


def test_delete_removes_file_and_row(sc):
    volume = sc.create_volume("vol-00000005", 1)
    sc.delete_volume("vol-00000005")
    assert not os.path.exists(volume["path"])
    assert sc.volume("vol-00000005") is None
    assert sc.volumes() == []


def test_delete_when_file_already_gone(sc):
    volume = sc.create_volume("vol-00000006", 1)
    os.unlink(volume["path"])
    sc.delete_volume("vol-00000006")
    assert sc.volume("vol-00000006") is None


def test_delete_unknown(sc):
    with pytest.raises(VolumeError) as info:
        sc.delete_volume("vol-deadbeef")
    assert info.value.code == "InvalidVolume.NotFound"
    assert "vol-deadbeef" in str(info.value)
