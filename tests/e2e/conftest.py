"""Session fixtures of the end-to-end tests, which run real VMs: a libvirtd serving
qemu:///system, the project's guest image, and a host network (bridge + dnsmasq) for the
instances. Each fixture removes what it made, also when tests fail."""

import os
import signal
import subprocess
import time
from pathlib import Path

import libvirt
import pytest

from eucacore import guestimage, hostnet

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# libvirtd and virtlogd started as root write their pid files here.
PID_FILES = {"libvirtd": Path("/run/libvirtd.pid"), "virtlogd": Path("/run/virtlogd.pid")}
DAEMON_WAIT = 30


def _running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


def _pid(name: str) -> int | None:
    try:
        return int(PID_FILES[name].read_text())
    except (OSError, ValueError):
        return None


def _start_daemon(name: str) -> int:
    """Start ``/usr/sbin/<name> -d`` and return its pid (from its pid file)."""
    subprocess.run([f"/usr/sbin/{name}", "-d"], check=True, timeout=DAEMON_WAIT)
    deadline = time.monotonic() + DAEMON_WAIT
    while (pid := _pid(name)) is None:
        assert time.monotonic() < deadline, f"{name} wrote no pid file"
        time.sleep(0.1)
    return pid


def _stop_daemon(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + DAEMON_WAIT
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)


def _ensure_qemu_user() -> None:
    """Debian's qemu driver refuses to start without the libvirt-qemu user, which only the
    libvirt-daemon-system package (not installed here: it needs systemd) would create."""
    if subprocess.run(["getent", "passwd", "libvirt-qemu"], capture_output=True).returncode:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                        "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", "libvirt-qemu"], check=True)


@pytest.fixture(scope="session")
def libvirtd():
    """A libvirtd answering qemu:///system: the running one, or one started here (with
    virtlogd, and a qemu.conf running guests as root where there is none, so they read the
    tests' files) and stopped again at the end of the session."""
    started, wrote_conf = [], False
    try:
        if not _running("libvirtd"):
            _ensure_qemu_user()
            if not QEMU_CONF.exists():
                QEMU_CONF.parent.mkdir(parents=True, exist_ok=True)
                QEMU_CONF.write_text('user = "root"\ngroup = "root"\n')
                wrote_conf = True
            Path("/var/log/libvirt").mkdir(parents=True, exist_ok=True)
            for name in ("virtlogd", "libvirtd"):
                if not _running(name):
                    started.append(_start_daemon(name))
        deadline = time.monotonic() + DAEMON_WAIT
        while True:
            try:
                libvirt.open("qemu:///system").close()
                break
            except libvirt.libvirtError:
                assert time.monotonic() < deadline, "libvirtd does not answer on qemu:///system"
                time.sleep(0.2)
        yield
    finally:
        for pid in reversed(started):
            _stop_daemon(pid)
        if wrote_conf:
            QEMU_CONF.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def guest_image(tmp_path_factory) -> guestimage.GuestImage:
    """The project's guest image (kernel, initramfs, whole disk), built once a session."""
    return guestimage.build(tmp_path_factory.mktemp("guest-image"))


@pytest.fixture(scope="session")
def host_network(tmp_path_factory):
    """A bridge of its own (a name and a subnet no one else here uses) with dnsmasq serving DHCP,
    as VNET_BRIDGE of SYSTEM mode. No NAT: the instances reach the host, and nothing beyond
    it. Torn down (bridge, dnsmasq, iptables rules) at the end of the session."""
    net = hostnet.HostNetwork(bridge=f"eucae2e{os.getpid() % 100000}", subnet=hostnet.free_subnet(),
                              state_dir=tmp_path_factory.mktemp("hostnet"))
    try:
        net.up(nat=False)
        yield net
    finally:
        net.down()
