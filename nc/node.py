"""The node controller's domain: instances on this host, their state and the host's resources.

States, as the NC reports them upward (``stateName``):

- ``Pending``: staging (image download, domain start), for a new instance or a
  stopped one being started again;
- ``Extant``: the domain runs;
- ``Stopping``: asked to stop; the guest is shutting down (powered off after
  ``SHUTDOWN_GRACE`` seconds, at once when forced);
- ``Stopped``: the domain is off but defined and its disk kept, so it can start
  again; it holds disk but no memory or cores. A guest that shuts itself down
  also ends here, with ``statusMessage`` GUEST_SHUTDOWN;
- ``Teardown``: terminated or failed to start the first time; the record is kept
  for ``TEARDOWN_KEEP`` seconds so the CC sees the end.

The original's NC had no such names for stop/start (its 3.x ncStopInstance reported
SHUTOFF-ish "Teardown" variants); the CC passes these through and the CLC maps
Stopping -> stopping, Stopped -> stopped.

CreateImage (``create_image``) copies a running or stopped instance's root disk and uploads
the copy to a presigned URL in the background (nc.imaging); each task is a row of
``image_tasks`` and is reported in its instance's record (``createImageTasks``, and the
original's ``createImageStateName`` of the latest one) while it runs and for ``TASK_KEEP``
seconds after, even when its instance has ended meanwhile. A task that a restart interrupted
starts again.
"""

import base64
import binascii
import functools
import json
import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from socket import AF_INET

from pyroute2 import IPRoute

from eucacore import ids
from eucacore.config import Config
from eucacore.db import Store
from eucacore.messages import (CREATEIMAGE_CREATING, CREATEIMAGE_FAILED, CREATEIMAGE_SUCCEEDED, GUEST_SHUTDOWN,
                               START_FAILED)
from nc import imaging, seed
from nc.hypervisor import Disk, DiskInUse, InstanceSpec, LibvirtHypervisor, disk_format, tail
from nc.imagecache import ImageCache

log = logging.getLogger("eucalyptus.nc")
TEARDOWN_KEEP = 180
#: Seconds a finished CreateImage task is still reported, so the CLC learns how it ended.
TASK_KEEP = 3600
#: Seconds a guest has to shut down cleanly before it is powered off (the original's 60).
SHUTDOWN_GRACE = 60
#: Seconds between ncPowerDown's answer and NC_POWERDOWN_COMMAND, so the answer gets out first.
POWERDOWN_DELAY = 1.0
#: Seconds the MAC address reported to the CC (the wake-on-LAN target) is kept before it is read again.
MAC_TTL = 60
PENDING, EXTANT, STOPPING, STOPPED, TEARDOWN = "Pending", "Extant", "Stopping", "Stopped", "Teardown"
# Neighbour states (linux/neighbour.h) of entries that name no reachable host.
NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
#: States that hold the node's memory and cores; all but Teardown hold disk.
_RUNNING = (PENDING, EXTANT, STOPPING)


def _schema_v1(db):
    db["instances"].create({"instance_id": str, "spec": str, "state": str, "launch_time": float,
                            "terminated_at": float, "reason": str}, pk="instance_id")


def _schema_v2(db):
    """Stop/start: how many times the domain has booted (a failed restart leaves it Stopped)."""
    db["instances"].add_column("boots", int, not_null_default=0)
    db.execute("UPDATE instances SET boots = 1 WHERE state = 'Extant'")


def _schema_v3(db):
    """CreateImage tasks: the image's id, the instance, where to upload (a presigned URL),
    whether to pause the guest for the copy, the state (messages.CREATEIMAGE_*), bytes sent."""
    db["image_tasks"].create({"image_id": str, "instance_id": str, "url": str, "no_reboot": int, "state": str,
                              "bytes": int, "message": str, "started": float, "finished": float},
                             pk="image_id")
    db["image_tasks"].create_index(["instance_id"])


def _schema_v4(db):
    """Volumes attached to instances (ncAttachVolume): where the disk comes from (``remote_dev``:
    a local device or file, or iscsi://host:port/iqn/lun) and the guest's device name."""
    db["volumes"].create({"volume_id": str, "instance_id": str, "remote_dev": str, "local_dev": str,
                          "attached": float}, pk="volume_id")
    db["volumes"].create_index(["instance_id"])


MIGRATIONS = [_schema_v1, _schema_v2, _schema_v3, _schema_v4]


class InstanceNotFound(Exception):
    """No instance of that id on this node."""


class IncorrectState(Exception):
    """The instance is not in a state that allows the operation."""


class VolumeError(Exception):
    """A volume cannot be attached or detached as asked (``code`` says why, as EC2 would)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


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
                                config["WALRUS_DOWNLOAD_MAX_ATTEMPTS"], keys_dir=config.keys_dir())
        self.workers = ThreadPoolExecutor(max_workers=config["CONCURRENT_DISK_OPS"], thread_name_prefix="stage")
        # Guests shutting down wait out their grace period here, not in the staging pool.
        self.power = ThreadPoolExecutor(max_workers=4, thread_name_prefix="power")
        # Disk copies and uploads of CreateImage, apart from staging.
        self.imaging = ThreadPoolExecutor(max_workers=2, thread_name_prefix="image")
        self.shutdown_grace = SHUTDOWN_GRACE
        self._lock = threading.Lock()
        self.powering_down = False  # from ncPowerDown until its command has returned (the host woke)

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
        tasks = self._reported_tasks()
        volumes: dict[str, list[dict]] = {}
        for v in self.store.db["volumes"].rows:
            volumes.setdefault(v["instance_id"], []).append(
                {"volumeId": v["volume_id"], "remoteDev": v["remote_dev"], "localDev": v["local_dev"],
                 "state": "attached"})
        addresses = self._addresses() if self.hypervisor.domain_type != "test" else {}
        out = []
        for row in self.store.db["instances"].rows:
            if instance_ids and row["instance_id"] not in instance_ids:
                continue
            if row["state"] == TEARDOWN and (row["terminated_at"] or 0) < horizon and row["instance_id"] not in tasks:
                continue
            guest = self.hypervisor.state(row["instance_id"])
            if row["state"] == EXTANT and guest == "SHUTOFF":
                row = self._guest_shut_down(row["instance_id"])
            record = json.loads(row["spec"])
            record.update(stateName=row["state"], launchTime=int(row["launch_time"]), guestStateName=guest or "SHUTOFF",
                          volumes=volumes.get(row["instance_id"], []))
            if row["reason"]:
                record["statusMessage"] = row["reason"]
            mac = ((record.get("netParams") or {}).get("privateMacAddress") or "").lower()
            if row["state"] == EXTANT and mac in addresses:
                record.setdefault("netParams", {})["privateIp"] = addresses[mac]
            if row["instance_id"] in tasks:
                record["createImageTasks"] = tasks[row["instance_id"]]
                record["createImageStateName"] = tasks[row["instance_id"]][-1]["stateName"]
            out.append(record)
        return out

    @staticmethod
    def _addresses() -> dict[str, str]:
        """IPv4 address by MAC, from the host's neighbour (ARP) table: in SYSTEM mode an instance
        gets its address from the LAN's DHCP, and the node learns it as the original's CC did,
        from the traffic it sees."""
        try:
            with IPRoute() as ip:
                return {n.get_attr("NDA_LLADDR"): n.get_attr("NDA_DST") for n in ip.get_neighbours(family=AF_INET)
                        if n.get_attr("NDA_LLADDR") and n["state"] not in (NUD_FAILED, NUD_INCOMPLETE)}
        except OSError as e:
            log.warning("cannot read the neighbour table: %s", e)
            return {}

    @staticmethod
    def mac_toward(address: str) -> str:
        """The MAC address of the interface this host reaches ``address`` by: where a wake-on-LAN
        packet for this host must arrive. Empty if there is no route. Read again each MAC_TTL
        seconds (the CC asks at every poll)."""
        return _mac_toward(address, int(time.monotonic() // MAC_TTL))


    def _reported_tasks(self) -> dict[str, list[dict]]:
        """CreateImage tasks running or finished within TASK_KEEP, by instance, oldest first."""
        out: dict[str, list[dict]] = {}
        for task in self.store.db["image_tasks"].rows_where("state = ? OR finished >= ?",
                                                            [CREATEIMAGE_CREATING, ids.now() - TASK_KEEP],
                                                            order_by="started"):
            report = {"imageId": task["image_id"], "stateName": task["state"], "bytes": task["bytes"]}
            if task["message"]:
                report["statusMessage"] = task["message"]
            out.setdefault(task["instance_id"], []).append(report)
        return out

    def _guest_shut_down(self, instance_id: str) -> dict:
        """An Extant instance whose domain is off: the guest shut itself down, so it is Stopped."""
        with self._lock:
            row = self._row(instance_id)
            if row["state"] == EXTANT and self.hypervisor.state(instance_id) == "SHUTOFF":
                log.info("instance %s: the guest shut down", instance_id)
                self._set_state(instance_id, STOPPED, reason=GUEST_SHUTDOWN)
                row = self._row(instance_id)
        return row

    # -- operations ----------------------------------------------------------

    def run_instance(self, request: dict) -> dict:
        """Record the instance (acknowledged from here on) and stage it in the background;
        IncorrectState while the node is powering down."""
        instance_id = request["instanceId"]
        request = {**request, "uuid": request.get("uuid") or _uuid()}  # the same domain at every start
        with self._lock, self.store.atomic():
            existing = list(self.store.db["instances"].rows_where("instance_id = ?", [instance_id]))
            if not existing and self.powering_down:
                raise IncorrectState(f"the node is powering down: instance {instance_id} not started")
            if not existing:
                self.store.db["instances"].insert({"instance_id": instance_id, "spec": json.dumps(request),
                                                   "state": PENDING, "launch_time": ids.now(),
                                                   "terminated_at": None, "reason": ""})
        if not existing:
            self.workers.submit(self._stage, instance_id)
        return self.instances([instance_id])[0]

    def _spec(self, request: dict, files: dict[str, str]) -> InstanceSpec:
        vm = request.get("instanceType") or {}
        net = request.get("netParams") or {}
        bridge = self.config["VNET_BRIDGE"] if self.config["VNET_MODE"] in ("SYSTEM", "STATIC") else None
        return InstanceSpec(instance_id=request["instanceId"], uuid=request.get("uuid") or _uuid(),
                            memory_mb=int(vm.get("memory") or 256), cores=int(vm.get("cores") or 1),
                            disk_path=files.get("root"), kernel_path=files.get("kernel"),
                            ramdisk_path=files.get("ramdisk"), mac=net.get("privateMacAddress"),
                            bridge=bridge if self.hypervisor.domain_type != "test" else None,
                            console_path=str(self._work(request["instanceId"]) / "console.log"),
                            seed_path=files.get("seed"), disks=self._volume_disks(request["instanceId"]))

    def _work(self, instance_id: str):
        return self.instance_dir / "work" / instance_id

    def _stage(self, instance_id: str) -> None:
        """Fetch the images and start the domain. A first start that fails ends in Teardown
        with the reason; a failed restart of a stopped instance leaves it Stopped."""
        try:
            row = self._row(instance_id)
            if row["state"] != PENDING:
                return
            request = json.loads(row["spec"])
            files = self._instance_files(instance_id, request)
            with self._lock:
                if self._row(instance_id)["state"] != PENDING:
                    return  # terminated while staging
                self.hypervisor.start(self._spec(request, files))
                self._set_state(instance_id, EXTANT, boots=row["boots"] + 1)
            log.info("instance %s running", instance_id)
        except Exception as e:
            log.error("instance %s failed to start: %s", instance_id, e)
            try:
                self._start_failed(instance_id, f"{START_FAILED}: {e}")
            except Exception:  # a worker's exception would vanish in its future: say it here
                log.exception("instance %s: cannot record the failure", instance_id)

    def _start_failed(self, instance_id: str, reason: str) -> None:
        with self._lock:
            row = self._row(instance_id)
            if row["state"] != PENDING:
                return
            if row["boots"]:
                self.hypervisor.power_off(instance_id)
                self._set_state(instance_id, STOPPED, reason=reason)
            else:  # nothing of a first start stays behind: no domain, no disk
                self.hypervisor.destroy(instance_id)
                self._set_state(instance_id, TEARDOWN, reason=reason, terminated_at=ids.now())
                shutil.rmtree(self._work(instance_id), ignore_errors=True)

    def _instance_files(self, instance_id: str, request: dict) -> dict[str, str]:
        """The instance's own files, made once: its root disk, a qcow2 overlay on the cached image
        (so instances never write into the cache, and a stopped instance starts again from its
        own disk without fetching anything), its kernel and ramdisk, and its NoCloud seed. The
        cached images are hard-linked into the instance's directory, so evicting one from the
        cache never pulls a disk from under a guest."""
        work = self._work(instance_id)
        work.mkdir(parents=True, exist_ok=True)  # the console log goes there too
        files = {}
        for role, prefix in (("root", "image"), ("kernel", "kernel"), ("ramdisk", "ramdisk")):
            target = work / role
            if not target.exists() and request.get(f"{prefix}URL"):
                linked = work / "root.base" if role == "root" else target
                self._link_cached(linked, request, prefix)
                if role == "root":
                    _overlay(target, linked)
            if target.exists():
                files[role] = str(target)
        seed_path = work / "seed.iso"
        if not seed_path.exists():
            seed.build_seed(seed_path, instance_id=instance_id, hostname=instance_id,
                            user_data=_user_data(request), public_keys=_public_keys(request))
        files["seed"] = str(seed_path)
        return files

    def _link_cached(self, target, request: dict, prefix: str) -> None:
        """Hard-link the cached image into ``target``; fetched again if another launch evicted it
        between the fetch and the link."""
        for attempt in (1, 2):
            try:
                _link_into(target, self.cache.fetch_image(request, prefix))
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def terminate_instance(self, instance_id: str) -> tuple[str, str]:
        """Destroy the domain and mark the instance Teardown; returns (previous, new) state."""
        with self._lock:
            row = self._row(instance_id)
            previous = row["state"]
            self.hypervisor.destroy(instance_id)
            if previous != TEARDOWN:
                with self.store.atomic() as db:
                    self._set_state(instance_id, TEARDOWN, reason="terminated", terminated_at=ids.now())
                    db.execute("DELETE FROM volumes WHERE instance_id = ?", [instance_id])
        shutil.rmtree(self._work(instance_id), ignore_errors=True)
        return previous, TEARDOWN

    def reboot_instance(self, instance_id: str) -> None:
        """Restart the running guest in place; one whose domain has vanished boots again."""
        with self._lock:
            row = self._row(instance_id)
            if row["state"] != EXTANT:
                raise IncorrectState(f"instance {instance_id} is {row['state']}, not Extant")
            if self.hypervisor.state(instance_id) in (None, "SHUTOFF", "CRASHED"):
                self._set_state(instance_id, PENDING)
                self.workers.submit(self._stage, instance_id)
            else:
                self.hypervisor.reboot(instance_id)
        log.info("instance %s rebooted", instance_id)

    def stop_instance(self, instance_id: str, force: bool = False) -> tuple[str, str]:
        """Begin stopping a running instance (Stopping, then Stopped once its guest is off);
        returns (previous, new) state. Stopping or stopped already is no change (``force``
        still pulls the plug of one that is shutting down)."""
        with self._lock:
            row = self._row(instance_id)
            previous = row["state"]
            if previous not in (EXTANT, STOPPING, STOPPED):
                raise IncorrectState(f"instance {instance_id} is {previous} and cannot be stopped")
            if previous == EXTANT:
                self._set_state(instance_id, STOPPING)
            if previous == EXTANT or (previous == STOPPING and force):
                self.power.submit(self._stop, instance_id, force)
        return previous, STOPPED if previous == STOPPED else STOPPING

    def _stop(self, instance_id: str, force: bool) -> None:
        """Shut the guest down (outside the lock: it may take the whole grace period), then
        record it Stopped unless something else happened to it meanwhile."""
        try:
            clean = self.hypervisor.shutdown(instance_id, 0 if force else self.shutdown_grace)
            with self._lock:
                if self._row(instance_id)["state"] == STOPPING:
                    self._set_state(instance_id, STOPPED)
            log.info("instance %s stopped%s", instance_id, "" if clean else " (powered off)")
        except Exception:  # a worker's exception would vanish in its future: say it here
            log.exception("instance %s: cannot stop", instance_id)

    def start_instance(self, instance_id: str, instance_type: dict | None = None) -> tuple[str, str]:
        """Boot a stopped instance again from its own disk (Pending, then Extant), with
        ``instance_type``'s size if given; returns (previous, new) state. Pending or Extant
        already is no change."""
        with self._lock:
            row = self._row(instance_id)
            previous = row["state"]
            if previous in (PENDING, EXTANT):
                return previous, previous
            if previous != STOPPED:
                raise IncorrectState(f"instance {instance_id} is {previous} and cannot be started")
            changes = {}
            if instance_type:
                spec = json.loads(row["spec"])
                spec["instanceType"] = {**(spec.get("instanceType") or {}), **instance_type}
                changes["spec"] = json.dumps(spec)
            self._set_state(instance_id, PENDING, launch_time=ids.now(), **changes)
        self.workers.submit(self._stage, instance_id)
        return previous, PENDING

    def create_image(self, instance_id: str, image_id: str, url: str, no_reboot: bool = False) -> None:
        """Begin copying the root disk of a running or stopped instance into a new image, uploaded
        to ``url`` (a presigned PUT); the task's end shows in the instance's record. Asking again
        for the same ``image_id`` is no new task."""
        with self._lock:
            row = self._row(instance_id)
            if row["state"] not in (EXTANT, STOPPED):
                raise IncorrectState(f"instance {instance_id} is {row['state']}: an image is made of a running "
                                     "or stopped instance")
            if not (self._work(instance_id) / "root").exists():
                raise IncorrectState(f"instance {instance_id} has no root disk on this node to make an image of")
            with self.store.atomic() as db:
                if db["image_tasks"].count_where("image_id = ?", [image_id]):
                    return
                db["image_tasks"].insert({"image_id": image_id, "instance_id": instance_id, "url": url,
                                          "no_reboot": int(no_reboot), "state": CREATEIMAGE_CREATING, "bytes": 0,
                                          "message": "", "started": ids.now(), "finished": None})
        self.imaging.submit(self._create_image, image_id)

    def _create_image(self, image_id: str) -> None:
        """Copy the instance's disk (its guest paused unless no_reboot), upload the copy, and
        record how it ended."""
        task = self.store.db["image_tasks"].get(image_id)
        snapshot = self.instance_dir / "images" / f"{image_id}.img"
        try:
            disk = self._work(task["instance_id"]) / "root"
            if task["no_reboot"]:
                md5 = imaging.copy_disk(disk, snapshot)
            else:
                with self.hypervisor.paused(task["instance_id"]):
                    md5 = imaging.copy_disk(disk, snapshot)
            size = imaging.upload(snapshot, task["url"], md5)
            self._end_task(image_id, CREATEIMAGE_SUCCEEDED, bytes=size)
            log.info("image %s of %s uploaded (%d bytes)", image_id, task["instance_id"], size)
        except Exception as e:  # a worker's exception would vanish in its future: record it
            reason = f"the instance's disk is gone: {e}" if isinstance(e, FileNotFoundError) else str(e)
            log.error("image %s of %s failed: %s", image_id, task["instance_id"], reason)
            self._end_task(image_id, CREATEIMAGE_FAILED, message=reason)
        finally:
            snapshot.unlink(missing_ok=True)

    def _end_task(self, image_id: str, state: str, **changes) -> None:
        with self.store.atomic() as db:
            db["image_tasks"].update(image_id, {"state": state, "finished": ids.now(), "url": "", **changes})

    def _volume_disks(self, instance_id: str) -> list[Disk]:
        return [Disk(v["remote_dev"], v["local_dev"])
                for v in self.store.db["volumes"].rows_where("instance_id = ?", [instance_id], order_by="attached")]

    def attach_volume(self, instance_id: str, volume_id: str, remote_dev: str, local_dev: str) -> None:
        """Attach the volume at ``remote_dev`` to the instance as ``local_dev`` (e.g. /dev/vdc or
        vdc); the attachment is recorded, so it survives a stop/start and a restart of the NC.
        Attaching the same volume again to the same place is no change."""
        target = local_dev.rsplit("/", 1)[-1]
        if not target.startswith("vd") or target in ("vda", "vdb") or not target[2:].isalpha():
            raise VolumeError("InvalidParameterValue", f"device {local_dev} is not free for volumes "
                              "(vdc to vdz; vda is the root disk, vdb the seed)")
        with self._lock:
            row = self._row(instance_id)
            if row["state"] not in (EXTANT, STOPPED):
                raise IncorrectState(f"instance {instance_id} is {row['state']}: volumes attach to running "
                                     "or stopped instances")
            existing = next(self.store.db["volumes"].rows_where("volume_id = ?", [volume_id]), None)
            if existing:
                if existing["instance_id"] == instance_id and existing["local_dev"] == target:
                    return
                raise VolumeError("VolumeInUse", f"{volume_id} is attached to {existing['instance_id']}")
            try:
                if self.hypervisor.state(instance_id) is not None:
                    self.hypervisor.attach_disk(instance_id, Disk(remote_dev, target))
            except DiskInUse as e:
                raise VolumeError("InvalidParameterValue", str(e)) from None
            with self.store.atomic() as db:
                db["volumes"].insert({"volume_id": volume_id, "instance_id": instance_id, "remote_dev": remote_dev,
                                      "local_dev": target, "attached": ids.now()})
        log.info("volume %s attached to %s as %s", volume_id, instance_id, target)

    def detach_volume(self, instance_id: str, volume_id: str, force: bool = False) -> None:
        """Detach the volume from the instance; with ``force``, forget the attachment even when
        the hypervisor cannot remove the disk (the guest holds it, or the domain is gone)."""
        with self._lock:
            self._row(instance_id)
            rows = list(self.store.db["volumes"].rows_where("volume_id = ? AND instance_id = ?",
                                                            [volume_id, instance_id]))
            if not rows:
                raise VolumeError("IncorrectState", f"{volume_id} is not attached to {instance_id}")
            try:
                if self.hypervisor.state(instance_id) is not None:
                    self.hypervisor.detach_disk(instance_id, rows[0]["local_dev"])
            except LookupError:
                pass  # the disk is not in the domain: nothing to remove
            except Exception as e:
                if not force:
                    raise VolumeError("VolumeInUse", f"cannot detach {volume_id}: {e}") from None
                log.warning("forced detach of %s from %s: %s", volume_id, instance_id, e)
            with self.store.atomic() as db:
                db["volumes"].delete(volume_id)
        log.info("volume %s detached from %s", volume_id, instance_id)

    def console_output(self, instance_id: str) -> bytes:
        """The tail of the instance's serial console log (empty when there is none)."""
        self._row(instance_id)
        return (self.hypervisor.console_output(instance_id)
                or tail(self._work(instance_id) / "console.log"))  # its domain may be gone while stopped

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
            vm = record.get("instanceType") or {}
            if record["stateName"] in _RUNNING:
                mem_used += int(vm.get("memory") or 0)
                cores_used += int(vm.get("cores") or 0)
            if record["stateName"] != TEARDOWN:  # a stopped instance keeps its disk here
                disk_used += int(vm.get("disk") or 0)
        return Resources(mem_max, max(0, mem_max - mem_used), cores_max, max(0, cores_max - cores_used),
                         disk_max, max(0, disk_max - disk_used))

    def power_down(self) -> None:
        """ncPowerDown (the CC's POWERSAVE): put this host to sleep with NC_POWERDOWN_COMMAND (the
        original ran powernap-now), a moment after the answer. IncorrectState while the node
        holds an instance that has not ended, or without a command. New instances are refused
        until the command has returned, when the host is awake again (a guest started
        meanwhile would go to sleep with the host, unseen). The CC wakes the host with
        wake-on-LAN."""
        command = shlex.split(self.config["NC_POWERDOWN_COMMAND"])
        if not command:
            raise IncorrectState("NC_POWERDOWN_COMMAND is not set: this node is not powered down")
        with self._lock:
            held = [r["instance_id"] for r in self.store.db["instances"].rows_where("state != ?", [TEARDOWN])]
            if held:
                raise IncorrectState(f"the node holds {len(held)} instance(s) ({', '.join(held[:5])}): "
                                     f"not powering down")
            self.powering_down = True
        log.info("powering down the node: %s", shlex.join(command))
        threading.Timer(POWERDOWN_DELAY, self._run_power_command, [command]).start()

    def _run_power_command(self, command: list[str]) -> None:
        try:
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                log.error("power-down command %s failed (%d): %s", shlex.join(command), done.returncode,
                          done.stderr.strip())
        except OSError as e:
            log.error("power-down command %s failed: %s", shlex.join(command), e)
        finally:
            self.powering_down = False
        log.info("the node is awake: taking instances again")

    def reconcile(self) -> None:
        """After a restart: start again acknowledged running instances whose domain is gone or
        off (a host reboot), resume staging and stopping, and destroy domains that look like
        ours but that we have no record of. Stopped instances stay stopped, with or without a
        domain: starting one defines it anew."""
        known = {}
        for row in self.store.db["instances"].rows:
            instance_id, state = row["instance_id"], row["state"]
            known[instance_id] = state
            if state == PENDING:
                self.workers.submit(self._stage, instance_id)
            elif state == EXTANT and self.hypervisor.state(instance_id) in (None, "SHUTOFF", "CRASHED"):
                log.warning("instance %s has no running domain after restart: starting it again", instance_id)
                self._set_state(instance_id, PENDING)
                self.workers.submit(self._stage, instance_id)
            elif state == STOPPING:
                self.power.submit(self._stop, instance_id, False)
        for task in self.store.db["image_tasks"].rows_where("state = ?", [CREATEIMAGE_CREATING]):
            log.info("image %s of %s: copying again after the restart", task["image_id"], task["instance_id"])
            self.imaging.submit(self._create_image, task["image_id"])
        for name in self.hypervisor.domains():
            if _looks_like_instance(name) and known.get(name) in (None, TEARDOWN):
                log.warning("destroying prodigal domain %s", name)
                self.hypervisor.destroy(name)
        work = self.instance_dir / "work"
        for leftover in (work.iterdir() if work.is_dir() else ()):
            if known.get(leftover.name) in (None, TEARDOWN):
                log.warning("removing the disks of ended instance %s", leftover.name)
                shutil.rmtree(leftover, ignore_errors=True)

    def shutdown(self) -> None:
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.power.shutdown(wait=False, cancel_futures=True)
        self.imaging.shutdown(wait=False, cancel_futures=True)


@functools.lru_cache(maxsize=64)
def _mac_toward(address: str, period: int) -> str:
    """NodeController.mac_toward, remembered for one ``period``."""
    try:
        with IPRoute() as ip:
            route = ip.route("get", dst=address)[0]
            return ip.get_links(route.get_attr("RTA_OIF"))[0].get_attr("IFLA_ADDRESS") or ""
    except (OSError, IndexError) as e:
        log.warning("no interface toward %s: %s", address, e)
        return ""


def _link_into(target, source) -> None:
    """``target`` as a hard link of ``source`` (a copy where they are on different filesystems),
    through a temporary name so that a crash leaves no whole-looking file."""
    tmp = target.with_name(f".{target.name}.part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _overlay(target, base) -> None:
    """A qcow2 overlay at ``target`` whose backing file is ``base``: the guest's writes go to the
    overlay, the image stays as it was."""
    tmp = target.with_name(f".{target.name}.part")
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", disk_format(base), "-b", str(base),
                        str(tmp)], check=True, capture_output=True, text=True, timeout=60)
    except subprocess.CalledProcessError as e:
        raise OSError(f"qemu-img could not create the root disk: {e.stderr.strip()}") from None
    os.replace(tmp, target)


def _user_data(request: dict) -> bytes:
    """The instance's user data: base64 as EC2 carries it (raw text is taken as it is)."""
    data = request.get("userData") or ""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return data.encode()


def _public_keys(request: dict) -> list[str]:
    """The key pair's public key, which ncRunInstance's ``keyName`` carries (as the original's)."""
    key = (request.get("keyName") or "").strip()
    return [key] if key.startswith(("ssh-", "ecdsa-")) else []


def _looks_like_instance(name: str) -> bool:
    return name.startswith("i-") and len(name) == 10


def _uuid() -> str:
    import uuid
    return str(uuid.uuid4())
