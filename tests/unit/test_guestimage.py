"""eucacore.guestimage: the initramfs holds /init, busybox and the drivers with their
dependencies in load order; the whole disk has a boot sector, SYSLINUX and the same kernel and
initramfs; a second build reuses the first. The image is built once for this module from the
Debian packages installed here (booting it is the e2e tier's business)."""

import gzip
import hashlib
import lzma
import os
import stat
import subprocess
from pathlib import Path

import pytest

from eucacore import guestimage
from eucacore.guestimage import ImageBuildError, Kernel, build, module_load_order


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return build(tmp_path_factory.mktemp("guest-image"))


@pytest.fixture(scope="module")
def initramfs(image, tmp_path_factory):
    """The initramfs unpacked with GNU cpio: the archive is what a standard reader sees."""
    root = tmp_path_factory.mktemp("initramfs")
    subprocess.run(["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"], input=gzip.decompress(
        image.ramdisk.read_bytes()), cwd=root, check=True, capture_output=True)
    return root


def _dep_map(kernel: Kernel) -> dict[str, list[str]]:
    """modules.dep as module name -> names of what it needs."""
    def name(path):
        return Path(path).name.split(".ko")[0]
    deps = {}
    for line in (kernel.modules / "modules.dep").read_text().splitlines():
        module, _, needs = line.partition(":")
        deps[name(module)] = [name(n) for n in needs.split()]
    return deps


def test_initramfs_has_init_busybox_and_a_console(initramfs):
    init = initramfs / "init"
    assert init.read_bytes() == (Path(guestimage.__file__).parent / "guestinit.sh").read_bytes()
    assert init.stat().st_mode & 0o111
    assert os.readlink(initramfs / "sbin/init") == "/bin/busybox"
    assert os.readlink(initramfs / "bin/sh") == "/bin/busybox"
    assert (initramfs / "bin/busybox").read_bytes() == guestimage.find_busybox().read_bytes()
    console = (initramfs / "dev/console").lstat()
    assert stat.S_ISCHR(console.st_mode) and (os.major(console.st_rdev), os.minor(console.st_rdev)) == (5, 1)
    assert os.access(initramfs / "etc/acpi/PWRF/00000080", os.X_OK)  # the power button's handler


def test_init_script_is_valid_shell(initramfs):
    checked = subprocess.run([str(initramfs / "bin/busybox"), "sh", "-n", str(initramfs / "init")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_initramfs_has_the_drivers_each_after_its_dependencies(initramfs):
    kernel = guestimage.find_kernel()
    order = (initramfs / "etc/modules").read_text().split()
    for wanted in ("virtio_pci", "virtio_blk", "virtio_net", "isofs", "vfat", "button", "evdev"):
        assert wanted in order
    deps = _dep_map(kernel)
    for position, module in enumerate(order):
        assert set(deps[module]) <= set(order[:position]), f"{module} loads before what it needs"
        assert (initramfs / f"lib/modules/{module}.ko").read_bytes()[:4] == b"\x7fELF"
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_pci")
    assert order.index("failover") < order.index("net_failover") < order.index("virtio_net")


def _mtools(tool: str, disk: Path, *args: str) -> bytes:
    return subprocess.run([tool, "-i", str(disk), *args], check=True, capture_output=True,
                          env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout


def test_disk_boots_by_itself_with_syslinux(image):
    sector = image.disk.read_bytes()[:512]
    assert sector[510:] == b"\x55\xaa" and b"SYSLINUX" in sector
    listing = _mtools("mdir", image.disk, "-a", "-b", "::/").decode().lower()
    for name in ("ldlinux.sys", "ldlinux.c32", "syslinux.cfg", "vmlinuz", "initrd.gz"):
        assert f"::/{name}" in listing
    cfg = _mtools("mtype", image.disk, "::/syslinux.cfg").decode()
    assert "console=ttyS0" in cfg and "SERIAL 0" in cfg
    assert _mtools("mtype", image.disk, "::/vmlinuz") == image.kernel.read_bytes()
    assert _mtools("mtype", image.disk, "::/initrd.gz") == image.ramdisk.read_bytes()


def test_kernel_is_the_distribution_kernel(image):
    kernel = guestimage.find_kernel()
    assert hashlib.sha256(image.kernel.read_bytes()).digest() == hashlib.sha256(kernel.vmlinuz.read_bytes()).digest()


def test_a_second_build_reuses_the_first(image):
    before = {p: p.stat().st_mtime_ns for p in (image.kernel, image.ramdisk, image.disk)}
    again = build(image.kernel.parent)
    assert again == image
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_changed_inputs_rebuild(image, tmp_path):
    out = tmp_path / "copy"
    first = build(out)
    (out / "inputs.sha256").write_text("stale")
    first.ramdisk.write_bytes(b"broken")
    rebuilt = build(out)
    assert rebuilt.ramdisk.read_bytes() == image.ramdisk.read_bytes()  # reproducible, too


def test_load_order_and_compressed_modules(tmp_path):
    """A module tree as Debian ships it compressed: dependencies first, built-ins skipped."""
    (tmp_path / "kernel").mkdir()
    (tmp_path / "modules.dep").write_text("kernel/b.ko.xz: kernel/a.ko.xz\nkernel/a.ko.xz:\n"
                                          "kernel/c.ko.xz: kernel/b.ko.xz kernel/a.ko.xz\n")
    (tmp_path / "modules.builtin").write_text("kernel/d.ko\n")
    assert module_load_order(tmp_path, ["c", "b", "d"]) == [Path(f"kernel/{m}.ko.xz") for m in "abc"]
    (tmp_path / "kernel/a.ko.xz").write_bytes(lzma.compress(b"\x7fELF module"))
    assert guestimage._module_bytes(tmp_path / "kernel/a.ko.xz") == b"\x7fELF module"
    with pytest.raises(ImageBuildError, match="nope"):
        module_load_order(tmp_path, ["nope"])


def test_missing_packages_are_named(tmp_path):
    with pytest.raises(ImageBuildError, match="linux-image-amd64"):
        guestimage.find_kernel(boot=tmp_path, lib_modules=tmp_path)
    assert not guestimage._is_dynamic(guestimage.find_busybox())
    assert guestimage._is_dynamic(Path("/bin/sh").resolve())  # dash, linked with libc
