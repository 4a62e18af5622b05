"""The project's guest image boots for real on libvirt qemu:///system (KVM where it works, TCG
otherwise), on a bridge of the host network with DHCP: as kernel + ramdisk with the disk as
vda and a NoCloud seed as vdb, and as a whole disk that boots by itself (SYSLINUX). It says
what it did on its console, serves its page on port 80 and a shell on port 22, runs its
user-data, and takes its identity from the metadata service when that answers."""

import http.server
import re
import secrets
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from nc import seed
from nc.hypervisor import InstanceSpec, LibvirtHypervisor

pytestmark = pytest.mark.e2e

FINISHED = "EUCA-BOOT: finished"
BOOT_TIMEOUT = 180


@pytest.fixture(scope="module")
def hypervisor(libvirtd):
    """qemu:///system with KVM where /dev/kvm really works, TCG otherwise."""
    return LibvirtHypervisor("kvm")


class Guest:
    """One instance of the guest image: its files under ``work``, its domain, its console."""

    def __init__(self, hv: LibvirtHypervisor, image, bridge: str, work: Path, whole_disk: bool = False):
        self.hv, self.image, self.work = hv, image, work
        self.name = f"i-{secrets.token_hex(4)}"
        self.mac = "d0:0d:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))
        self.console_path = work / "console.log"
        self.bridge, self.whole_disk = bridge, whole_disk

    def start(self, user_data: bytes) -> float:
        """Boot the guest; returns the monotonic time it was started."""
        root = self.work / "root.qcow2"  # an overlay on the image, as the NC makes
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image.disk),
                        str(root)], check=True)
        seed_path = seed.build_seed(self.work / "seed.iso", self.name, "guest-" + self.name[2:], user_data,
                                    ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e e2e@test"])
        boot = {} if self.whole_disk else {"kernel_path": str(self.image.kernel),
                                           "ramdisk_path": str(self.image.ramdisk)}
        spec = InstanceSpec(instance_id=self.name, uuid=str(uuid.uuid4()), memory_mb=256, cores=1,
                            disk_path=str(root), seed_path=str(seed_path), mac=self.mac, bridge=self.bridge,
                            console_path=str(self.console_path), **boot)
        started = time.monotonic()
        self.hv.start(spec)
        return started

    def console(self) -> str:
        return self.hv.console_output(self.name).decode(errors="replace")

    def wait_for_console(self, text: str, count: int = 1, timeout: float = BOOT_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while (out := self.console()).count(text) < count:
            assert time.monotonic() < deadline, f"no {text!r} (#{count}) on {self.name}'s console:\n{out[-3000:]}"
            time.sleep(0.25)
        return out


@pytest.fixture
def guest_factory(hypervisor, guest_image, host_network, tmp_path):
    """Makes guests; destroys their domains afterwards, whatever the test did."""
    made = []

    def make(**kwargs) -> Guest:
        guest = Guest(hypervisor, guest_image, host_network.bridge, tmp_path / f"g{len(made)}", **kwargs)
        guest.work.mkdir()
        made.append(guest)
        return guest

    yield make
    for guest in made:
        hypervisor.destroy(guest.name)


def shell(address: str, command: str, timeout: float = 20) -> str:
    """Run ``command`` through the guest's shell on port 22 and return what it printed."""
    with socket.create_connection((address, 22), timeout=timeout) as conn:
        conn.sendall(command.encode() + b"\nexit\n")
        out = b""
        while chunk := conn.recv(4096):
            out += chunk
    return out.decode(errors="replace")


def http_get(address: str) -> str:
    with socket.create_connection((address, 80), timeout=20) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\nHost: guest\r\n\r\n")
        out = b""
        while chunk := conn.recv(4096):
            out += chunk
    return out.decode(errors="replace")


def test_kernel_and_ramdisk_boot_with_the_seed_and_serve(guest_factory, host_network):
    guest = guest_factory()
    started = guest.start(b"#!/bin/sh\necho user-data-says-$((6 * 7))\nexit 0\n")
    out = guest.wait_for_console(FINISHED)
    boot_seconds = time.monotonic() - started
    print(f"\nboot to '{FINISHED}' (kernel + ramdisk, {guest.hv.accelerator}): {boot_seconds:.1f} s")

    assert f"EUCA-BOOT: instance-id {guest.name}" in out
    assert f"EUCA-BOOT: hostname guest-{guest.name[2:]}" in out
    assert "EUCA-BOOT: seed /dev/vdb" in out
    assert "EUCA-BOOT: public-keys 1" in out
    assert re.search(r"EUCA-BOOT: user-data begin\s+user-data-says-42\s+EUCA-BOOT: user-data end 0", out)
    address = re.search(r"EUCA-BOOT: dhcp (\d+\.\d+\.\d+\.\d+)", out).group(1)
    assert host_network.wait_for_lease(guest.mac, timeout=10) == address  # dnsmasq gave it to that MAC

    page = http_get(address)
    assert page.startswith("HTTP/1.") and guest.name in page
    answer = shell(address, "echo shell-says-$((6 * 7)); hostname; cat /root/.ssh/authorized_keys")
    assert "shell-says-42" in answer and f"guest-{guest.name[2:]}" in answer and "e2e@test" in answer


class MetadataService:
    """A stand-in metadata service on the host's bridge address: answers only the instance
    whose address dnsmasq leased to ``mac``, as the CLC's answers only known instances."""

    def __init__(self, host_network, mac: str, instance_id: str, user_data: bytes):
        net, answers = host_network, {"/latest/meta-data/instance-id": instance_id.encode(),
                                      "/latest/user-data": user_data}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = answers.get(self.path) if net.leases().get(mac) == self.client_address[0] else None
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host_network.gateway, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_whole_disk_boots_by_itself_and_prefers_the_metadata_service(guest_factory, host_network):
    guest = guest_factory(whole_disk=True)
    imds = MetadataService(host_network, guest.mac, "i-fromimds",
                           b"#!/bin/sh\necho imds-user-data-ran\n")
    host_network.route_metadata(host_network.gateway, imds.port)
    try:
        started = guest.start(b"#!/bin/sh\necho seed-user-data-ran\n")
        out = guest.wait_for_console(FINISHED)
        print(f"\nboot to '{FINISHED}' (whole disk via SYSLINUX, {guest.hv.accelerator}): "
              f"{time.monotonic() - started:.1f} s")
    finally:
        host_network.route_metadata(None)
        imds.close()
    assert "SYSLINUX" in out and "console=ttyS0" in out  # the disk's own boot loader and command line
    assert "EUCA-BOOT: metadata-service answered" in out
    assert "EUCA-BOOT: instance-id i-fromimds" in out
    assert "imds-user-data-ran" in out and "seed-user-data-ran" not in out
    address = re.search(r"EUCA-BOOT: dhcp (\d+\.\d+\.\d+\.\d+)", out).group(1)
    assert "i-fromimds" in http_get(address)
