"""The NC's one seam to the hypervisor: a small contract and its libvirt implementation.

Contract (every driver keeps it):
- ``start(spec)`` defines (or redefines) the persistent domain and starts it: a new
  instance, or a stopped one whose definition may or may not have survived; when
  it fails, nothing of the domain is left behind.
- ``destroy(name)`` stops and undefines the domain; it succeeds when the domain is
  already gone.
- ``shutdown(name, grace)`` asks the guest to shut down, waits up to ``grace``
  seconds, then powers it off; ``power_off(name)`` does the last step at once. Both
  keep the domain defined and succeed when it is already off or gone.
- ``reboot(name)`` restarts the guest in place; the domain stays running.
- ``paused(name)`` is a context: a running guest is suspended for its block and resumed
  after, whatever the block raised; a domain that is not running (or gone) is left alone.
- ``console_output(name)`` is the tail of what the guest wrote to its serial
  console, empty when the domain has no console log or is gone.
- ``power_on(name)`` boots a defined domain that is off; it succeeds when it already runs.
- ``state(name)`` is the libvirt state name, or None when there is no such domain;
  ``info(name)`` adds its memory, cores and CPU time.
- ``attach_disk(name, disk)`` adds a disk to the domain (live and in its definition, or in
  its definition alone where the driver cannot change a running domain, as the test driver);
  ``detach_disk(name, target)`` removes it again; ``disks(name)`` lists the attached targets.
  Attaching a target that is taken is DiskInUse; detaching one that is absent, LookupError.
- ``host_info()`` is the host's memory and cores; ``accelerator`` says how guests run:
  "kvm" (hardware), "tcg" (qemu's software emulation) or "test" (libvirt's test driver).

The KVM/TCG choice is made once, at start: HYPERVISOR="kvm" uses KVM only where /dev/kvm
really answers (it exists but hangs on some machines), else falls back to TCG with a warning.
"""

import contextlib
import dataclasses
import functools
import glob
import logging
import os
import select
import shutil
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
from lxml import etree
from lxml.builder import E

log = logging.getLogger("eucalyptus.nc.hypervisor")

#: HYPERVISOR config value -> libvirt URI and domain type.
URIS = {"kvm": ("qemu:///system", "kvm"), "qemu": ("qemu:///system", "qemu"),
        "xen": ("xen:///system", "xen"), "test": ("test:///default", "test")}

# libvirt prints every error to stderr unless told otherwise; ours are raised and logged.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_STATES = {libvirt.VIR_DOMAIN_NOSTATE: "NO_STATE", libvirt.VIR_DOMAIN_RUNNING: "RUNNING",
           libvirt.VIR_DOMAIN_BLOCKED: "BLOCKED", libvirt.VIR_DOMAIN_PAUSED: "PAUSED",
           libvirt.VIR_DOMAIN_SHUTDOWN: "SHUTDOWN", libvirt.VIR_DOMAIN_SHUTOFF: "SHUTOFF",
           libvirt.VIR_DOMAIN_CRASHED: "CRASHED"}

#: Seconds the KVM probe may take before /dev/kvm counts as hung (a working KVM prints the
#: kernel's banner in well under a second).
KVM_PROBE_TIMEOUT = 10
QEMU = "qemu-system-x86_64"

#: How much of the console log ``console_output`` returns, as EC2 does.
CONSOLE_TAIL = 64 * 1024
_SHUTDOWN_POLL = 0.2


def disk_format(path: str | Path) -> str:
    """"qcow2" if the file at ``path`` is a qcow2 image (by its magic), else "raw"."""
    try:
        with open(path, "rb") as f:
            return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"
    except OSError:
        return "raw"


def tail(path: str | Path | None, limit: int = CONSOLE_TAIL) -> bytes:
    """The last ``limit`` bytes of the file at ``path``; empty if there is none."""
    if not path:
        return b""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - limit))
            return f.read()
    except OSError:
        return b""


@dataclass
class InstanceSpec:
    """What the NC needs to build one instance's domain."""

    instance_id: str
    uuid: str
    memory_mb: int
    cores: int
    disk_path: str | None = None
    kernel_path: str | None = None
    ramdisk_path: str | None = None
    mac: str | None = None
    bridge: str | None = None
    console_path: str | None = None  # the serial console's log file
    seed_path: str | None = None     # the NoCloud seed, a second read-only disk (vdb)
    disks: list["Disk"] = field(default_factory=list)  # attached volumes
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Disk:
    """A disk attached to a domain: a local file or block device, or an iSCSI LUN that qemu
    reaches itself (``source`` = iscsi://host:port/iqn/lun)."""

    source: str
    target: str  # the guest's device name: vdb, vdc...

    def element(self):
        target = E.target(dev=self.target, bus="virtio")
        if self.source.startswith("iscsi://"):
            host_port, _, path = self.source[len("iscsi://"):].partition("/")
            host, _, port = host_port.partition(":")
            return E.disk(E.driver(name="qemu", type="raw", cache="none"),
                          E.source(E.host(name=host, port=port or "3260"), protocol="iscsi", name=path),
                          target, type="network", device="disk")
        kind = "block" if _is_block(self.source) else "file"
        return E.disk(E.driver(name="qemu", type="raw", cache="none"),
                      E.source(**({"dev": self.source} if kind == "block" else {"file": self.source})),
                      target, type=kind, device="disk")


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


class DiskInUse(Exception):
    """The domain already has a disk at that target."""


@dataclass
class DomainInfo:
    """A domain's state (libvirt's name), size and CPU time."""

    state: str
    memory_mb: int
    cores: int
    cpu_time_ns: int


@functools.cache
def kvm_works(device: str = "/dev/kvm", kernel: str | None = None, timeout: float = KVM_PROBE_TIMEOUT) -> bool:
    """Whether KVM really runs guests here: qemu must boot ``kernel`` (the host's newest
    /boot/vmlinuz-*) with KVM to the kernel's first console line within ``timeout``. On these
    machines /dev/kvm opens, creates VMs and even runs a lone ``hlt``, yet a kernel never gets
    past its decompressor: nothing short of booting one tells. Asked once per process."""
    kernel = kernel or max(glob.glob("/boot/vmlinuz-*"), default=None)
    if not os.path.exists(device) or not shutil.which(QEMU) or not kernel:
        log.info("KVM: no %s, %s or kernel to probe with: using software emulation (TCG)", device, QEMU)
        return False
    if not boots_kernel("kvm", kernel, timeout):
        log.warning("KVM did not boot a kernel within %ss: using software emulation (TCG)", timeout)
        return False
    return True


def boots_kernel(accel: str, kernel: str, timeout: float) -> bool:
    """Whether qemu with accelerator ``accel`` ("kvm", "tcg") gets ``kernel`` to print its banner
    ("Linux version") on the serial console within ``timeout`` seconds; qemu is killed after."""
    probe = subprocess.Popen([QEMU, "-accel", accel, "-m", "128", "-nodefaults", "-nographic", "-no-reboot",
                              "-serial", "stdio", "-kernel", kernel, "-append", "console=ttyS0 panic=-1"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while b"Linux version" not in seen and time.monotonic() < deadline:
            if select.select([probe.stdout], [], [], 0.2)[0]:
                chunk = os.read(probe.stdout.fileno(), 65536)
                if not chunk:
                    break  # qemu ended: a kernel it could not load, an accelerator it could not use
                seen = seen[-4096:] + chunk
    finally:
        probe.kill()
        probe.wait()
        probe.stdout.close()
    return b"Linux version" in seen


@dataclass
class HostInfo:
    """The host's size as the hypervisor reports it."""

    memory_mb: int
    cores: int


class LibvirtHypervisor:
    """Instances as libvirt domains named after their instance id."""

    def __init__(self, kind: str, kvm_probe=kvm_works):
        self.uri, self.domain_type = URIS[kind]
        if self.domain_type == "kvm" and not kvm_probe():
            self.domain_type = "qemu"
        self.accelerator = {"kvm": "kvm", "qemu": "tcg"}.get(self.domain_type, self.domain_type)
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None

    @property
    def conn(self) -> libvirt.virConnect:
        with self._lock:
            if self._conn is None or not self._conn.isAlive():
                self._conn = libvirt.open(self.uri)
            return self._conn

    def domain_xml(self, spec: InstanceSpec) -> str:
        """The domain XML for ``spec``, built as a tree, never from a string template."""
        os_el = E.os(E.type("hvm", arch="x86_64"))
        if spec.kernel_path:
            os_el.append(E.kernel(spec.kernel_path))
            if spec.ramdisk_path:
                os_el.append(E.initrd(spec.ramdisk_path))
            os_el.append(E.cmdline("console=ttyS0 root=/dev/vda"))
        else:
            os_el.append(E.boot(dev="hd"))
        devices = E.devices()
        if spec.disk_path:
            devices.append(E.disk(E.driver(name="qemu", type=disk_format(spec.disk_path)),
                                  E.source(file=spec.disk_path), E.target(dev="vda", bus="virtio"),
                                  type="file", device="disk"))
        if spec.seed_path:
            devices.append(E.disk(E.driver(name="qemu", type="raw"), E.source(file=spec.seed_path),
                                  E.target(dev="vdb", bus="virtio"), E.readonly(), type="file", device="disk"))
        for disk in spec.disks:
            devices.append(disk.element())
        if spec.bridge:
            iface = E.interface(E.source(bridge=spec.bridge), E.model(type="virtio"), type="bridge")
            if spec.mac:
                iface.insert(0, E.mac(address=spec.mac))
            devices.append(iface)
        if spec.console_path:
            # A file-backed serial console: what the guest prints survives for GetConsoleOutput,
            # appended across reboots, stops and starts as EC2's console output is.
            devices.append(E.serial(E.source(path=spec.console_path, append="on"), E.target(port="0"),
                                    type="file"))
            devices.append(E.console(E.source(path=spec.console_path, append="on"),
                                     E.target(type="serial", port="0"), type="file"))
        elif self.domain_type != "test":
            devices.append(E.serial(E.target(port="0"), type="pty"))
            devices.append(E.console(E.target(type="serial", port="0"), type="pty"))
        # ACPI, so that a shutdown is the guest's power button and not the plug pulled.
        dom = E.domain(E.name(spec.instance_id), E.uuid(spec.uuid),
                       E.memory(str(spec.memory_mb * 1024), unit="KiB"), E.vcpu(str(spec.cores)),
                       os_el, E.features(E.acpi(), E.apic()), devices, type=self.domain_type)
        return etree.tostring(dom, encoding="unicode")

    def _lookup(self, name: str) -> libvirt.virDomain | None:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return None

    def start(self, spec: InstanceSpec) -> None:
        """Define (or redefine, e.g. with a new size) and start the persistent domain; undefine
        it again if starting fails (the caller keeps the spec to define it anew). A domain of
        that name keeps its UUID: the name is the instance's identity."""
        existing = self._lookup(spec.instance_id)
        if existing is not None:
            spec = dataclasses.replace(spec, uuid=existing.UUIDString())
        dom = self.conn.defineXML(self.domain_xml(spec))
        try:
            dom.create()
        except libvirt.libvirtError:
            dom.undefine()
            raise

    def reboot(self, name: str, hard: bool = False) -> None:
        """Restart the guest: ACPI reboot, or a reset (``hard``) as a power button would.
        LookupError if there is no such domain."""
        dom = self._lookup(name)
        if dom is None:
            raise LookupError(f"no domain {name}")
        if hard:
            dom.reset(0)
        else:
            dom.reboot(0)

    def shutdown(self, name: str, grace: float) -> bool:
        """Ask the guest to shut down and wait up to ``grace`` seconds, then power it off;
        the domain stays defined. True if the guest went down by itself (or was already)."""
        dom = self._lookup(name)
        if dom is None or not dom.isActive():
            return True
        if grace > 0:
            try:
                dom.shutdown()
            except libvirt.libvirtError as e:
                log.warning("shutdown %s: %s", name, e)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self._active(name):
                    return True
                time.sleep(_SHUTDOWN_POLL)
        self.power_off(name)
        return False

    @contextlib.contextmanager
    def paused(self, name: str):
        """Suspend the running guest for the block (its disk holds still) and resume it after;
        yields whether it was suspended. A domain that is not running is left as it is."""
        dom = self._lookup(name)
        suspended = False
        try:
            if dom is not None and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
                dom.suspend()
                suspended = True
        except libvirt.libvirtError as e:
            log.warning("suspend %s: %s", name, e)
        try:
            yield suspended
        finally:
            if suspended:
                try:
                    dom.resume()
                except libvirt.libvirtError as e:  # destroyed or stopped meanwhile
                    log.warning("resume %s: %s", name, e)

    def power_off(self, name: str) -> None:
        """Pull the plug; the domain stays defined. A domain that is off or gone is success."""
        dom = self._lookup(name)
        try:
            if dom is not None and dom.isActive():
                dom.destroy()
        except libvirt.libvirtError as e:
            if self._active(name):
                raise
            log.info("power off %s: already off (%s)", name, e)

    def _active(self, name: str) -> bool:
        dom = self._lookup(name)
        try:
            return dom is not None and bool(dom.isActive())
        except libvirt.libvirtError:
            return False

    def console_output(self, name: str, limit: int = CONSOLE_TAIL) -> bytes:
        """The last ``limit`` bytes of the domain's serial console log; empty if it has none."""
        dom = self._lookup(name)
        if dom is None:
            return b""
        try:
            xml = etree.fromstring(dom.XMLDesc(0))
        except libvirt.libvirtError:
            return b""
        paths = xml.xpath("devices/serial[@type='file']/source/@path | devices/console[@type='file']/source/@path")
        return tail(paths[0], limit) if paths else b""

    def destroy(self, name: str) -> None:
        """Stop and undefine; a domain that is already gone is success."""
        dom = self._lookup(name)
        if dom is None:
            return
        try:
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError as e:
            log.warning("destroy %s: %s", name, e)
        try:
            dom.undefine()
        except libvirt.libvirtError:
            pass  # a transient domain is gone once destroyed

    def power_on(self, name: str) -> None:
        """Boot the defined domain that is off; one that runs already is success. LookupError if
        there is no such domain."""
        dom = self._lookup(name)
        if dom is None:
            raise LookupError(f"no domain {name}")
        if not dom.isActive():
            dom.create()

    def info(self, name: str) -> DomainInfo | None:
        """State, memory, cores and CPU time of the domain, or None if it does not exist."""
        dom = self._lookup(name)
        if dom is None:
            return None
        try:
            state, _, memory_kib, cores, cpu_time = dom.info()
        except libvirt.libvirtError:  # undefined between the lookup and the question
            return None
        return DomainInfo(_STATES.get(state, "NO_STATE"), memory_kib // 1024, cores, cpu_time)

    def disks(self, name: str) -> list[str]:
        """Target names of the domain's disks (vda, vdb...), from its definition; empty if gone."""
        dom = self._lookup(name)
        try:
            xml = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) if dom is not None else None
        except libvirt.libvirtError:
            return []
        return xml.xpath("devices/disk/target/@dev") if xml is not None else []

    def attach_disk(self, name: str, disk: Disk) -> None:
        """Add ``disk`` to the domain: to the running guest and its definition, or to the
        definition alone where the driver cannot (the test driver) or the domain is off."""
        dom = self._lookup(name)
        if dom is None:
            raise LookupError(f"no domain {name}")
        if disk.target in self.disks(name):
            raise DiskInUse(f"{name} already has a disk at {disk.target}")
        self._change_device(dom, etree.tostring(disk.element(), encoding="unicode"), attach=True)

    def detach_disk(self, name: str, target: str) -> None:
        """Remove the disk at ``target`` from the domain (live and definition). LookupError if
        the domain or the disk is not there."""
        dom = self._lookup(name)
        if dom is None:
            raise LookupError(f"no domain {name}")
        xml = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        found = xml.xpath("devices/disk[target/@dev=$t]", t=target)
        if not found:
            raise LookupError(f"{name} has no disk at {target}")
        self._change_device(dom, etree.tostring(found[0], encoding="unicode"), attach=False)

    def _change_device(self, dom, device_xml: str, attach: bool) -> None:
        change = dom.attachDeviceFlags if attach else dom.detachDeviceFlags
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            change(device_xml, flags)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            self._redefine_devices(dom, device_xml, attach)

    def _redefine_devices(self, dom, device_xml: str, attach: bool) -> None:
        """Where the driver cannot change devices (the test driver): define the domain anew with
        the device added or removed; a running domain sees it at its next boot."""
        xml = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        devices = xml.find("devices")
        device = etree.fromstring(device_xml)
        if attach:
            devices.append(device)
        else:
            target = device.find("target").get("dev")
            for found in devices.xpath("disk[target/@dev=$t]", t=target):
                devices.remove(found)
        self.conn.defineXML(etree.tostring(xml, encoding="unicode"))

    def state(self, name: str) -> str | None:
        """libvirt's state name of the domain, or None if it does not exist."""
        dom = self._lookup(name)
        if dom is None:
            return None
        try:
            return _STATES.get(dom.state()[0], "NO_STATE")
        except libvirt.libvirtError:  # undefined between the lookup and the question
            return None

    def domains(self) -> list[str]:
        """Names of all domains the hypervisor knows."""
        return [d.name() for d in self.conn.listAllDomains()]

    def host_info(self) -> HostInfo:
        """Memory (MB) and cores of the host."""
        _, memory_mb, cpus, *_ = self.conn.getInfo()
        return HostInfo(memory_mb=memory_mb, cores=cpus)
