"""The node controller's domain: instances on this host, their state and the host's resources.

States, as the NC reports them upward: ``Pending`` (staging: image download and
domain start), ``Extant`` (the domain runs), ``Teardown`` (terminated or failed).
A Teardown record is kept for ``TEARDOWN_KEEP`` seconds so the CC sees the end.
"""

import json
import logging
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from eucacore import ids
from eucacore.config import Config
from eucacore.db import Store
from nc.hypervisor import InstanceSpec, LibvirtHypervisor
from nc.imagecache import ImageCache

log = logging.getLogger("eucalyptus.nc")
TEARDOWN_KEEP = 180


def _schema_v1(db):
    db["instances"].create({"instance_id": str, "spec": str, "state": str, "launch_time": float,
                            "terminated_at": float, "reason": str}, pk="instance_id")


MIGRATIONS = [_schema_v1]


class InstanceNotFound(Exception):
    """No instance of that id on this node."""


@dataclass
class Resources:
    """The node's capacity and what is free of it."""

    memory_max: int
    memory_free: int
    cores_max: int
    cores_free: int
    disk_max: int
    disk_free: int


class NodeController:
    """Runs, reports and terminates this host's instances; survives its own restart."""

    def __init__(self, config: Config, hypervisor: LibvirtHypervisor | None = None):
        self.config = config
        self.store = Store(config.state_dir() / "nc.db", MIGRATIONS)
        self.hypervisor = hypervisor or LibvirtHypervisor(config["HYPERVISOR"])
        self.instance_dir = config.instance_path()
        self.cache = ImageCache(self.instance_dir / "cache", config["NC_CACHE_SIZE"],
                                config["WALRUS_DOWNLOAD_MAX_ATTEMPTS"])
        self.workers = ThreadPoolExecutor(max_workers=config["CONCURRENT_DISK_OPS"], thread_name_prefix="stage")
        self._lock = threading.Lock()

    # -- records -------------------------------------------------------------

    def _row(self, instance_id: str) -> dict:
        rows = list(self.store.db["instances"].rows_where("instance_id = ?", [instance_id]))
        if not rows:
            raise InstanceNotFound(instance_id)
        return rows[0]

    def _set_state(self, instance_id: str, state: str, reason: str = "", **extra) -> None:
        with self.store.atomic():
            self.store.db["instances"].update(instance_id, {"state": state, "reason": reason, **extra})

    def instances(self, instance_ids: list[str] | None = None) -> list[dict]:
        """Instance records (spec fields plus state), Teardown ones while they are kept."""
        horizon = ids.now() - TEARDOWN_KEEP
        out = []
        for row in self.store.db["instances"].rows:
            if instance_ids and row["instance_id"] not in instance_ids:
                continue
            if row["state"] == "Teardown" and (row["terminated_at"] or 0) < horizon:
                continue
            record = json.loads(row["spec"])
            record.update(stateName=row["state"], launchTime=int(row["launch_time"]),
                          guestStateName=self.hypervisor.state(row["instance_id"]) or "SHUTOFF")
            if row["reason"]:
                record["statusMessage"] = row["reason"]
            out.append(record)
        return out

    # -- operations ----------------------------------------------------------

    def run_instance(self, request: dict) -> dict:
        """Record the instance (acknowledged from here on) and stage it in the background."""
        instance_id = request["instanceId"]
        with self.store.atomic():
            existing = list(self.store.db["instances"].rows_where("instance_id = ?", [instance_id]))
            if not existing:
                self.store.db["instances"].insert({"instance_id": instance_id, "spec": json.dumps(request),
                                                   "state": "Pending", "launch_time": ids.now(),
                                                   "terminated_at": None, "reason": ""})
        if not existing:
            self.workers.submit(self._stage, instance_id)
        return self.instances([instance_id])[0]

    def _spec(self, request: dict, disk: str | None) -> InstanceSpec:
        vm = request.get("instanceType") or {}
        net = request.get("netParams") or {}
        bridge = self.config["VNET_BRIDGE"] if self.config["VNET_MODE"] in ("SYSTEM", "STATIC") else None
        return InstanceSpec(instance_id=request["instanceId"], uuid=request.get("uuid") or _uuid(),
                            memory_mb=int(vm.get("memory") or 256), cores=int(vm.get("cores") or 1),
                            disk_path=disk, mac=net.get("privateMacAddress"),
                            bridge=bridge if self.hypervisor.domain_type != "test" else None)

    def _stage(self, instance_id: str) -> None:
        """Fetch the image and start the domain; a failure ends in Teardown with the reason."""
        try:
            request = json.loads(self._row(instance_id)["spec"])
            if self._row(instance_id)["state"] != "Pending":
                return
            disk = None
            if request.get("imageURL"):
                image = self.cache.fetch(request["imageId"], request["imageURL"])
                disk = str(self._instance_disk(instance_id, image))
            with self._lock:
                if self._row(instance_id)["state"] != "Pending":
                    return  # terminated while staging
                self.hypervisor.start(self._spec(request, disk))
                self._set_state(instance_id, "Extant")
            log.info("instance %s running", instance_id)
        except Exception as e:
            log.error("instance %s failed to start: %s", instance_id, e)
            try:
                self.hypervisor.destroy(instance_id)
                self._set_state(instance_id, "Teardown", reason=f"failed to start: {e}", terminated_at=ids.now())
            except Exception:  # a worker's exception would vanish in its future: say it here
                log.exception("instance %s: cannot record the failure", instance_id)

    def _instance_disk(self, instance_id: str, image) -> os.PathLike:
        """The instance's own root disk: a copy of the cached image (copy-on-write where the
        filesystem can), so instances never write into the cache."""
        work = self.instance_dir / "work" / instance_id
        work.mkdir(parents=True, exist_ok=True)
        disk = work / "root"
        if not disk.exists():
            tmp = work / ".root.part"
            shutil.copyfile(image, tmp)
            os.replace(tmp, disk)
        return disk

    def terminate_instance(self, instance_id: str) -> tuple[str, str]:
        """Destroy the domain and mark the instance Teardown; returns (previous, new) state."""
        with self._lock:
            row = self._row(instance_id)
            previous = row["state"]
            self.hypervisor.destroy(instance_id)
            if previous != "Teardown":
                self._set_state(instance_id, "Teardown", reason="terminated", terminated_at=ids.now())
        shutil.rmtree(self.instance_dir / "work" / instance_id, ignore_errors=True)
        return previous, "Teardown"

    def resources(self) -> Resources:
        """Capacity (MAX_* caps applied) and what running and pending instances leave free."""
        host = self.hypervisor.host_info()
        mem_max = min(host.memory_mb, self.config["MAX_MEM"]) if self.config["MAX_MEM"] else host.memory_mb
        cores_max = min(host.cores, self.config["MAX_CORES"]) if self.config["MAX_CORES"] else host.cores
        usage = shutil.disk_usage(self.instance_dir)
        disk_max = usage.total // 2**30
        if self.config["MAX_DISK"]:
            disk_max = min(disk_max, self.config["MAX_DISK"])
        mem_used = cores_used = disk_used = 0
        for record in self.instances():
            if record["stateName"] in ("Pending", "Extant"):
                vm = record.get("instanceType") or {}
                mem_used += int(vm.get("memory") or 0)
                cores_used += int(vm.get("cores") or 0)
                disk_used += int(vm.get("disk") or 0)
        return Resources(mem_max, max(0, mem_max - mem_used), cores_max, max(0, cores_max - cores_used),
                         disk_max, max(0, disk_max - disk_used))

    def reconcile(self) -> None:
        """After a restart: restart acknowledged instances whose domain is gone, resume
        staging, and destroy domains that look like ours but that we have no record of."""
        known = {}
        for row in self.store.db["instances"].rows:
            known[row["instance_id"]] = row["state"]
            if row["state"] == "Pending":
                self.workers.submit(self._stage, row["instance_id"])
            elif row["state"] == "Extant" and self.hypervisor.state(row["instance_id"]) is None:
                log.warning("instance %s has no domain after restart: starting it again", row["instance_id"])
                self._set_state(row["instance_id"], "Pending")
                self.workers.submit(self._stage, row["instance_id"])
        for name in self.hypervisor.domains():
            if _looks_like_instance(name) and known.get(name) in (None, "Teardown"):
                log.warning("destroying prodigal domain %s", name)
                self.hypervisor.destroy(name)

    def shutdown(self) -> None:
        self.workers.shutdown(wait=False, cancel_futures=True)


def _looks_like_instance(name: str) -> bool:
    return name.startswith("i-") and len(name) == 10


def _uuid() -> str:
    import uuid
    return str(uuid.uuid4())
