"""The storage controller's domain: volumes as sparse files in the volumes directory.

Export over iSCSI (tgt) or AoE (vblade) and snapshots to Walrus come with the
storage issue; here a volume is a real file of its full size, created sparse.
"""

import logging
import os
from pathlib import Path

from eucacore import ids
from eucacore.config import Config
from eucacore.db import Store

log = logging.getLogger("eucalyptus.sc")
MAX_VOLUME_GB = 1024


def _schema_v1(db):
    db["volumes"].create({"volume_id": str, "size": int, "snapshot_id": str, "status": str,
                          "create_time": float, "path": str}, pk="volume_id")


MIGRATIONS = [_schema_v1]


class VolumeError(Exception):
    """A request the SC cannot carry out; ``code`` names it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class StorageController:
    """Creates, lists and deletes this zone's volumes."""

    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.state_dir() / "sc.db", MIGRATIONS)
        self.volumes_dir = config.sc_volumes_dir()
        self.volumes_dir.mkdir(parents=True, exist_ok=True)

    def create_volume(self, volume_id: str, size_gb: int, snapshot_id: str | None = None) -> dict:
        """Create the volume's backing file (sparse, ``size_gb`` GiB); idempotent per id."""
        if not volume_id.startswith("vol-"):
            raise VolumeError("InvalidParameterValue", f"bad volume id {volume_id!r}")
        if not 1 <= size_gb <= MAX_VOLUME_GB:
            raise VolumeError("InvalidParameterValue", f"size must be 1 to {MAX_VOLUME_GB} GiB, got {size_gb}")
        if snapshot_id:
            raise VolumeError("InvalidSnapshot.NotFound", f"snapshot {snapshot_id} does not exist")
        existing = self.volume(volume_id)
        if existing:
            return existing
        path = self.volumes_dir / volume_id
        tmp = path.with_name(f".{volume_id}.part")
        with open(tmp, "wb") as f:
            f.truncate(size_gb * 2**30)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        with self.store.atomic():
            self.store.db["volumes"].insert({"volume_id": volume_id, "size": size_gb, "snapshot_id": snapshot_id or "",
                                             "status": "available", "create_time": ids.now(), "path": str(path)})
        return self.volume(volume_id)

    def volume(self, volume_id: str) -> dict | None:
        rows = list(self.store.db["volumes"].rows_where("volume_id = ?", [volume_id]))
        return rows[0] if rows else None

    def volumes(self, volume_ids: list[str] | None = None) -> list[dict]:
        return [r for r in self.store.db["volumes"].rows if not volume_ids or r["volume_id"] in volume_ids]

    def delete_volume(self, volume_id: str) -> None:
        """Remove the volume and its file."""
        row = self.volume(volume_id)
        if row is None:
            raise VolumeError("InvalidVolume.NotFound", f"volume {volume_id} does not exist")
        Path(row["path"]).unlink(missing_ok=True)
        with self.store.atomic():
            self.store.db["volumes"].delete(volume_id)
