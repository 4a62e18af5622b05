"""The real bootable guest image, built at set-up time from the Debian packages installed here:
the distribution kernel (linux-image-amd64) as the EKI, a busybox initramfs (busybox-static)
as the ERI, and a small raw whole-disk image as the EMI.

The initramfs holds busybox with a link for each of its applets, the virtio, filesystem and
power-button drivers in load order (dependencies resolved from modules.dep, decompressed if
Debian ships them compressed), and ``guestinit.sh`` as ``/init``. The disk is a FAT
filesystem without a partition table, with SYSLINUX in its boot sector and the same kernel and
initramfs on it, so it boots by itself on BIOS (``console=ttyS0``), and serves as the root
disk vda when the NC boots the kernel and ramdisk directly. It is written with mkfs.vfat,
mtools and ``syslinux --install``: no loop mounts, no root.

``build(out_dir)`` is idempotent: it rebuilds only when an input (kernel, modules, busybox,
init script, this builder) changed, as a digest of them records.
"""

import fcntl
import gzip
import hashlib
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

#: Drivers the guest loads: the virtio PCI transport, disk and network, the filesystems of
#: the NoCloud seed (ISO 9660 or vfat and its code pages), and the ACPI power button with
#: the event device that acpid reads. Their dependencies come from modules.dep.
MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "isofs", "vfat", "nls_cp437", "nls_ascii",
           "nls_utf8", "nls_iso8859-1", "button", "evdev")
#: Size of the whole-disk image; the kernel and the initramfs take about half.
DISK_MB = 32
#: Kernel command line of the whole-disk image's boot loader (the NC passes its own with a kernel).
CMDLINE = "console=ttyS0"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")

#: Files besides /init and busybox: the power button's acpid handler and busybox init's table
#: (init only idles and reaps once /init has done its work).
_POWER_BUTTON = b'#!/bin/sh\necho "EUCA-BOOT: power off" > /dev/console\npoweroff -f\n'
_INITTAB = b"::ctrlaltdel:/sbin/reboot -f\n"
_SYSLINUX_CFG = f"""SERIAL 0 115200
DEFAULT euca
PROMPT 0
TIMEOUT 0
LABEL euca
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND {CMDLINE}
"""
# Fixed time stamp of the initramfs entries, so equal inputs give an equal archive.
_EPOCH = 0


class ImageBuildError(Exception):
    """A package or tool the image needs is missing, or a build step failed."""


@dataclass(frozen=True)
class GuestImage:
    """The built image's three files: EKI, ERI and EMI."""

    kernel: Path
    ramdisk: Path
    disk: Path


@dataclass(frozen=True)
class Kernel:
    """An installed distribution kernel: its version, image and module tree."""

    version: str
    vmlinuz: Path
    modules: Path


def find_kernel(boot: Path = Path("/boot"), lib_modules: Path = Path("/lib/modules")) -> Kernel:
    """The newest kernel in ``boot`` whose modules are installed."""
    found = []
    for vmlinuz in boot.glob("vmlinuz-*"):
        version = vmlinuz.name[len("vmlinuz-"):]
        if (lib_modules / version / "modules.dep").exists():
            found.append(Kernel(version, vmlinuz, lib_modules / version))
    if not found:
        raise ImageBuildError(f"no kernel with modules in {boot} (install linux-image-amd64)")
    return max(found, key=lambda k: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", k.version)])


def find_busybox() -> Path:
    """The statically linked busybox (package busybox-static): the initramfs has no libc."""
    for candidate in BUSYBOX_PATHS:
        path = Path(candidate)
        if path.exists():
            if _is_dynamic(path):
                raise ImageBuildError(f"{path} is linked dynamically (install busybox-static)")
            return path
    raise ImageBuildError("no busybox (install busybox-static)")


def _is_dynamic(elf: Path) -> bool:
    """Whether the ELF64 file has a program interpreter (PT_INTERP), i.e. needs ld.so."""
    with open(elf, "rb") as f:
        header = f.read(64)
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


def module_load_order(modules_dir: Path, wanted=MODULES) -> list[Path]:
    """The module files (relative to ``modules_dir``) for ``wanted``, each after what it
    depends on. modules.dep lists a module's dependencies, transitively, the last to load
    first. A module that is built into the kernel needs no file."""
    deps, by_name = {}, {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        module, _, needs = line.partition(":")
        deps[module] = needs.split()
        by_name[_module_name(module)] = module
    builtin = {_module_name(m) for m in _words(modules_dir / "modules.builtin")}
    order = []
    for name in wanted:
        if name in builtin:
            continue
        if name not in by_name:
            raise ImageBuildError(f"kernel module {name} is not in {modules_dir}")
        for module in [*reversed(deps[by_name[name]]), by_name[name]]:
            if module not in order:
                order.append(module)
    return [Path(m) for m in order]


def _words(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _module_name(path: str) -> str:
    """``kernel/drivers/net/virtio_net.ko.xz`` -> ``virtio_net``."""
    return Path(path).name.split(".ko")[0]


def _module_bytes(path: Path) -> bytes:
    """A module file's contents, decompressed: busybox insmod takes plain ELF."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        return _run(["zstd", "-d", "-c", str(path)], "decompress " + path.name, binary=True)
    return data


def _init_script() -> bytes:
    return resources.files("eucacore").joinpath("guestinit.sh").read_bytes()


def initramfs_entries(kernel: Kernel, busybox: Path) -> list[tuple[str, int, bytes]]:
    """The initramfs as (path, mode, data) entries in archive order: directories, device
    nodes (data = packed major/minor), files and symlinks (data = target)."""
    dirs = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp", "etc",
            "etc/acpi", "etc/acpi/PWRF", "lib", "lib/modules", "root", "var"]
    entries = [(d, stat.S_IFDIR | 0o755, b"") for d in dirs]
    # The kernel opens /dev/console for /init before anything is mounted.
    entries.append(("dev/console", stat.S_IFCHR | 0o600, struct.pack("II", 5, 1)))
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes()))
    for applet in _applets(busybox):
        if applet != "bin/busybox":
            entries.append((applet, stat.S_IFLNK | 0o777, b"/bin/busybox"))
    entries.append(("init", stat.S_IFREG | 0o755, _init_script()))
    entries.append(("etc/inittab", stat.S_IFREG | 0o644, _INITTAB))
    entries.append(("etc/acpi/PWRF/00000080", stat.S_IFREG | 0o755, _POWER_BUTTON))
    order = module_load_order(kernel.modules)
    entries.append(("etc/modules", stat.S_IFREG | 0o644,
                    "".join(_module_name(str(m)) + "\n" for m in order).encode()))
    for module in order:
        entries.append((f"lib/modules/{_module_name(str(module))}.ko", stat.S_IFREG | 0o644,
                        _module_bytes(kernel.modules / module)))
    return entries


def _applets(busybox: Path) -> list[str]:
    """Where each applet of this busybox lives (``sbin/init``...), relative to /."""
    listed = _run([str(busybox), "--list-full"], "list the busybox applets")
    return sorted({line.strip().lstrip("/") for line in listed.splitlines() if line.strip()})


def write_cpio(entries, out) -> None:
    """Write ``entries`` as a newc cpio archive (what the kernel unpacks as initramfs) to the
    binary file ``out``."""
    for ino, (name, mode, data) in enumerate(entries, start=1):
        rdev = struct.unpack("II", data) if stat.S_ISCHR(mode) else (0, 0)
        body = b"" if stat.S_ISCHR(mode) or stat.S_ISDIR(mode) else data
        _write_cpio_member(out, ino, name, mode, body, rdev)
    _write_cpio_member(out, 0, "TRAILER!!!", 0, b"", (0, 0))


def _write_cpio_member(out, ino: int, name: str, mode: int, body: bytes, rdev: tuple[int, int]) -> None:
    encoded = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = (ino, mode, 0, 0, nlink, _EPOCH, len(body), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out.write(header + encoded + _pad(len(header) + len(encoded)))
    out.write(body + _pad(len(body)))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def build_initramfs(kernel: Kernel, busybox: Path, target: Path) -> None:
    """The gzip'd newc initramfs, written reproducibly (fixed time stamps)."""
    with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=_EPOCH, compresslevel=6) as out:
        write_cpio(initramfs_entries(kernel, busybox), out)


def build_disk(vmlinuz: Path, initramfs: Path, target: Path, size_mb: int = DISK_MB) -> None:
    """The whole-disk image: a FAT filesystem from sector 0 (no partition table), SYSLINUX in
    its boot sector, and vmlinuz, initrd.gz and syslinux.cfg on it."""
    for tool, package in (("mkfs.vfat", "dosfstools"), ("mcopy", "mtools"), ("syslinux", "syslinux")):
        if not shutil.which(tool):
            raise ImageBuildError(f"{tool} is missing (install {package})")
    target.unlink(missing_ok=True)
    _run(["mkfs.vfat", "-C", "-n", "EUCAROOT", "--invariant", str(target),
          str(size_mb * 1024)], "make the disk's FAT filesystem")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "syslinux.cfg"
        cfg.write_text(_SYSLINUX_CFG)
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
        for source, name in ((vmlinuz, "vmlinuz"), (initramfs, "initrd.gz"), (cfg, "syslinux.cfg")):
            _run(["mcopy", "-i", str(target), str(source), f"::/{name}"], f"copy {name} onto the disk", env=env)
    _run(["syslinux", "--install", str(target)], "install SYSLINUX on the disk")


def _run(argv: list[str], what: str, binary: bool = False, env=None):
    try:
        proc = subprocess.run(argv, capture_output=True, env=env, timeout=300)
    except OSError as e:
        raise ImageBuildError(f"cannot {what}: {e}") from None
    if proc.returncode:
        raise ImageBuildError(f"cannot {what}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout if binary else proc.stdout.decode()


def inputs_digest(kernel: Kernel, busybox: Path) -> str:
    """A digest of everything the image is made of: rebuild when it changes."""
    digest = hashlib.sha256()
    parts = [Path(__file__).read_bytes(), _init_script(), kernel.vmlinuz.read_bytes(), busybox.read_bytes()]
    parts += [(kernel.modules / m).read_bytes() for m in module_load_order(kernel.modules)]
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def build(out_dir: Path, kernel: Kernel | None = None) -> GuestImage:
    """Build the image into ``out_dir`` (vmlinuz, initrd.gz, disk.img), or reuse what is there
    when it was built from the same inputs. Concurrent builders of one directory take turns.
    ImageBuildError when a package or tool is missing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kernel = kernel or find_kernel()
    busybox = find_busybox()
    image = GuestImage(out_dir / "vmlinuz", out_dir / "initrd.gz", out_dir / "disk.img")
    stamp = out_dir / "inputs.sha256"
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = inputs_digest(kernel, busybox)
        if stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in vars(image).values()):
            return image
        stamp.unlink(missing_ok=True)
        shutil.copyfile(kernel.vmlinuz, image.kernel)
        build_initramfs(kernel, busybox, image.ramdisk)
        build_disk(image.kernel, image.ramdisk, image.disk)
        stamp.write_text(digest)
    return image


def main(argv=None) -> int:
    """``python -m eucacore.guestimage OUT_DIR``: build (or reuse) the image and print its files."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m eucacore.guestimage OUT_DIR", file=sys.stderr)
        return 2
    try:
        image = build(Path(args[0]))
    except ImageBuildError as e:
        print(f"guestimage: {e}", file=sys.stderr)
        return 1
    for role, path in (("kernel", image.kernel), ("ramdisk", image.ramdisk), ("disk", image.disk)):
        print(f"{role}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
