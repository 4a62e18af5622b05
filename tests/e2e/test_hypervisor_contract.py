"""The hypervisor contract (nc/hypervisor.py's docstring), one suite over two drivers: libvirt's
test:///default, and qemu:///system booting the project's guest image for real (KVM where it
works, TCG otherwise). Each test cleans up the domains it made."""

import os
import time
import uuid

import pytest

from eucacore import ids
from nc import seed
from nc.hypervisor import (CONSOLE_TAIL, Disk, DiskInUse, InstanceSpec, LibvirtHypervisor, boots_kernel,
                           kvm_works)

BOOTED = b"EUCA-BOOT: finished"


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Driver:
    """One hypervisor under test and how to make a guest for it."""

    def __init__(self, kind: str, tmp_path, guest=None):
        self.kind, self.tmp, self.guest = kind, tmp_path, guest
        self.hv = LibvirtHypervisor("kvm" if kind == "qemu" else "test")
        self.made: list[str] = []

    @property
    def real(self) -> bool:
        return self.kind == "qemu"

    def spec(self, **overrides) -> InstanceSpec:
        name = ids.new_id("i")
        self.made.append(name)
        work = self.tmp / name
        work.mkdir()
        fields = {"instance_id": name, "uuid": str(uuid.uuid4()), "memory_mb": 256, "cores": 1,
                  "console_path": str(work / "console.log")}
        if self.real:
            fields.update(kernel_path=str(self.guest.kernel), ramdisk_path=str(self.guest.ramdisk),
                          seed_path=str(seed.build_seed(work / "seed.iso", name, name, b"", [])))
        return InstanceSpec(**{**fields, **overrides})

    def console(self, name: str) -> bytes:
        return self.hv.console_output(name)

    def booted(self, name: str, times: int = 1, timeout: float = 120) -> None:
        """Wait for the guest's boot marker (``times`` boots); the test driver has no guest."""
        if self.real:
            wait_until(lambda: self.console(name).count(BOOTED) >= times, timeout, f"{name} boot #{times}")

    def cleanup(self) -> None:
        for name in self.made:
            self.hv.destroy(name)


def _driver(request, kind: str, tmp_path):
    if kind == "qemu":
        request.getfixturevalue("libvirtd")
        return Driver("qemu", tmp_path, request.getfixturevalue("guest_image"))
    return Driver("test", tmp_path)


@pytest.fixture(params=["test", "qemu"])
def driver(request, tmp_path):
    made = _driver(request, request.param, tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def qemu(request, tmp_path):
    """The qemu driver alone, for what the test driver cannot show (it opens no files)."""
    made = _driver(request, "qemu", tmp_path)
    yield made
    made.cleanup()


def test_start_info_and_destroy(driver):
    spec = driver.spec(memory_mb=192, cores=1)
    driver.hv.start(spec)
    info = driver.hv.info(spec.instance_id)
    assert (info.state, info.memory_mb, info.cores) == ("RUNNING", 192, 1)
    assert spec.instance_id in driver.hv.domains()
    driver.booted(spec.instance_id)
    driver.hv.destroy(spec.instance_id)
    assert driver.hv.state(spec.instance_id) is None and driver.hv.info(spec.instance_id) is None
    driver.hv.destroy(spec.instance_id)  # gone already: success


def test_power_off_keeps_the_domain_and_power_on_boots_it_again(driver):
    spec = driver.spec()
    driver.hv.start(spec)
    driver.booted(spec.instance_id)
    driver.hv.power_off(spec.instance_id)
    assert driver.hv.state(spec.instance_id) == "SHUTOFF"
    driver.hv.power_off(spec.instance_id)  # off already: success
    driver.hv.power_on(spec.instance_id)
    driver.hv.power_on(spec.instance_id)  # running already: success
    assert driver.hv.state(spec.instance_id) == "RUNNING"
    driver.booted(spec.instance_id, times=2)
    with pytest.raises(LookupError):
        driver.hv.power_on(ids.new_id("i"))


def test_shutdown_lets_the_guest_go_down_by_itself(driver):
    spec = driver.spec()
    driver.hv.start(spec)
    driver.booted(spec.instance_id)
    assert driver.hv.shutdown(spec.instance_id, grace=60) is True  # ACPI power button, then off
    assert driver.hv.state(spec.instance_id) == "SHUTOFF"
    assert driver.hv.shutdown(spec.instance_id, grace=60) is True  # off already


def test_start_again_redefines_with_the_new_size_and_keeps_the_uuid(driver):
    spec = driver.spec(memory_mb=128)
    driver.hv.start(spec)
    first_uuid = driver.hv.conn.lookupByName(spec.instance_id).UUIDString()
    driver.hv.power_off(spec.instance_id)
    driver.hv.start(InstanceSpec(**{**spec.__dict__, "uuid": str(uuid.uuid4()), "memory_mb": 256}))
    dom = driver.hv.conn.lookupByName(spec.instance_id)
    assert (dom.UUIDString(), driver.hv.info(spec.instance_id).memory_mb) == (first_uuid, 256)


def test_reboot_restarts_the_guest_in_place(driver):
    spec = driver.spec()
    driver.hv.start(spec)
    driver.booted(spec.instance_id)
    driver.hv.reboot(spec.instance_id)
    driver.booted(spec.instance_id, times=2)
    assert driver.hv.state(spec.instance_id) == "RUNNING"
    with pytest.raises(LookupError):
        driver.hv.reboot(ids.new_id("i"))


def test_paused_suspends_for_the_block_and_resumes_after(driver):
    spec = driver.spec()
    driver.hv.start(spec)
    with pytest.raises(RuntimeError):
        with driver.hv.paused(spec.instance_id) as suspended:
            assert suspended and driver.hv.state(spec.instance_id) == "PAUSED"
            raise RuntimeError("the block failed")
    assert driver.hv.state(spec.instance_id) == "RUNNING"


def test_console_output_is_the_tail_of_the_serial_console(driver):
    spec = driver.spec()
    driver.hv.start(spec)
    if driver.real:
        driver.booted(spec.instance_id)
        assert b"Linux version" in driver.console(spec.instance_id)
        assert len(driver.console(spec.instance_id)) <= CONSOLE_TAIL
    else:  # the test driver's guest prints nothing: what is in the log is what comes back
        with open(spec.console_path, "wb") as log:
            log.write(b"a" * CONSOLE_TAIL + b"the end")
        output = driver.console(spec.instance_id)
        assert len(output) == CONSOLE_TAIL and output.endswith(b"the end")
    assert driver.console(ids.new_id("i")) == b""


def test_attach_and_detach_a_disk(driver, tmp_path):
    spec = driver.spec()
    driver.hv.start(spec)
    driver.booted(spec.instance_id)
    volume = tmp_path / "volume.img"
    volume.write_bytes(bytes(8 * 1024 * 1024))
    driver.hv.attach_disk(spec.instance_id, Disk(str(volume), "vdc"))
    assert "vdc" in driver.hv.disks(spec.instance_id)
    with pytest.raises(DiskInUse):
        driver.hv.attach_disk(spec.instance_id, Disk(str(volume), "vdc"))
    if driver.real:  # the running guest's kernel sees the new disk (named in the order it finds disks)
        wait_until(lambda: b"16384 512-byte logical blocks" in driver.console(spec.instance_id), 30,
                   "the guest to see the 8 MiB disk")
    driver.hv.detach_disk(spec.instance_id, "vdc")
    assert "vdc" not in driver.hv.disks(spec.instance_id)
    with pytest.raises(LookupError):
        driver.hv.detach_disk(spec.instance_id, "vdc")


def test_a_start_that_fails_leaves_no_domain(qemu, tmp_path):
    spec = qemu.spec(disk_path=str(tmp_path / "no-such-disk.img"))
    with pytest.raises(Exception, match="no-such-disk"):
        qemu.hv.start(spec)
    assert qemu.hv.state(spec.instance_id) is None


def test_host_info(driver):
    host = driver.hv.host_info()
    assert host.memory_mb > 0 and host.cores > 0
    assert driver.hv.accelerator in (("kvm", "tcg") if driver.real else ("test",))


def test_kvm_detection_boots_a_kernel(guest_image):
    """The probe behind the KVM/TCG choice: it sees a kernel's banner where the accelerator
    works (TCG works everywhere) and nothing where qemu cannot boot what it was given."""
    assert boots_kernel("tcg", str(guest_image.kernel), timeout=60)
    assert not boots_kernel("tcg", os.devnull, timeout=10)
    assert not kvm_works(device="/nonexistent/kvm")
