"""The NC's one seam to the hypervisor: a small contract and its libvirt implementation.

Contract (every driver keeps it):
- ``start(spec)`` defines and starts the domain; when it fails, nothing of the
  domain is left behind.
- ``destroy(name)`` stops and undefines the domain; it succeeds when the domain is
  already gone.
- ``state(name)`` is the libvirt state name, or None when there is no such domain.
"""

import logging
import threading
from dataclasses import dataclass, field

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
    extra: dict = field(default_factory=dict)


@dataclass
class HostInfo:
    """The host's size as the hypervisor reports it."""

    memory_mb: int
    cores: int


class LibvirtHypervisor:
    """Instances as libvirt domains named after their instance id."""

    def __init__(self, kind: str):
        self.uri, self.domain_type = URIS[kind]
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
            devices.append(E.disk(E.driver(name="qemu", type="qcow2" if spec.disk_path.endswith(".qcow2") else "raw"),
                                  E.source(file=spec.disk_path), E.target(dev="vda", bus="virtio"),
                                  type="file", device="disk"))
        if spec.bridge:
            iface = E.interface(E.source(bridge=spec.bridge), E.model(type="virtio"), type="bridge")
            if spec.mac:
                iface.insert(0, E.mac(address=spec.mac))
            devices.append(iface)
        if self.domain_type != "test":
            devices.append(E.serial(E.target(port="0"), type="pty"))
            devices.append(E.console(E.target(type="serial", port="0"), type="pty"))
        dom = E.domain(E.name(spec.instance_id), E.uuid(spec.uuid),
                       E.memory(str(spec.memory_mb * 1024), unit="KiB"), E.vcpu(str(spec.cores)),
                       os_el, devices, type=self.domain_type)
        return etree.tostring(dom, encoding="unicode")

    def start(self, spec: InstanceSpec) -> None:
        """Define and start the domain; undefine it again if starting fails."""
        dom = self.conn.defineXML(self.domain_xml(spec))
        try:
            dom.create()
        except libvirt.libvirtError:
            dom.undefine()
            raise

    def destroy(self, name: str) -> None:
        """Stop and undefine; a domain that is already gone is success."""
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
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

    def state(self, name: str) -> str | None:
        """libvirt's state name of the domain, or None if it does not exist."""
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return None
        return _STATES.get(dom.state()[0], "NO_STATE")

    def domains(self) -> list[str]:
        """Names of all domains the hypervisor knows."""
        return [d.name() for d in self.conn.listAllDomains()]

    def host_info(self) -> HostInfo:
        """Memory (MB) and cores of the host."""
        _, memory_mb, cpus, *_ = self.conn.getInfo()
        return HostInfo(memory_mb=memory_mb, cores=cpus)
