#!/usr/bin/env python3
"""Launch latency: RunInstances to ``running`` (as DescribeInstances shows it) and to the guest's
boot-finished console marker, with a cold and a warm image cache, on libvirt's test driver and
on qemu (KVM where it works, TCG otherwise; the run says which).

Usage (libvirtd must answer on qemu:///system; `make bench-launch` starts it):
    python bench/bench_launch.py [--runs 3]

Each run starts a whole single-host cloud (tests.cloudharness: five daemons on loopback, the CLC
and CC polling every second as in the tests), uploads the project's guest image (EKI + ERI +
EMI) to Walrus, and launches one instance at a time: the first launch of a fresh cloud fetches
the images (cold cache), the next ones find them cached (warm). qemu instances sit on a bridge
of their own with dnsmasq (eucacore.hostnet), as in SYSTEM mode. Everything is terminated,
stopped and removed at the end, however the run ends.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eucacore import guestimage, hostnet  # noqa: E402
from tests.cloudharness import running_cloud  # noqa: E402

BOOTED = "EUCA-BOOT: finished"
#: Published figures to compare with (what the sources say, not measured here).
PEERS = [
    ("OpenStack Nova (P. Feiner, 'Scaling the Boot Barrier', OpenStack Summit 2013, 24 cores, SSD)",
     "one `nova boot` to ACTIVE 'takes seconds'; 20 in parallel, the last ACTIVE after minutes"),
    ("OpenStack, OpenNebula, Eucalyptus (Jones et al., 'Scalability of VM Provisioning Systems', "
     "arXiv:1606.05794)", "Eucalyptus the fastest to start VMs, 10x faster than OpenNebula; most of "
     "the time is the guest waiting on its network in cloud-init"),
    ("OpenNebula (Razavi et al., 'Scaling VM Deployment in an Open Source Cloud Stack')",
     "512 VMs at once: 615 s untuned, 53.5 s after tuning"),
]


def register(cloud, image: guestimage.GuestImage) -> str:
    ec2, s3 = cloud.client("ec2"), cloud.client("s3")
    s3.create_bucket(Bucket="bench")
    for key, path in (("kernel", image.kernel), ("ramdisk", image.ramdisk), ("disk", image.disk)):
        s3.upload_file(str(path), "bench", key)
    eki = ec2.register_image(ImageLocation="bench/kernel", Name="bench-kernel", KernelId="true")["ImageId"]
    eri = ec2.register_image(ImageLocation="bench/ramdisk", Name="bench-ramdisk", RamdiskId="true")["ImageId"]
    return ec2.register_image(ImageLocation="bench/disk", Name="guest", KernelId=eki, RamdiskId=eri)["ImageId"]


def launch_once(ec2, image_id: str, real: bool, timeout: float = 300) -> tuple[float, float | None]:
    """(seconds to running, seconds to the boot marker or None) of one instance, terminated after."""
    start = time.monotonic()
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    running = booted = None
    try:
        while time.monotonic() - start < timeout:
            now = time.monotonic() - start
            if running is None:
                described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
                if described["State"]["Name"] == "running":
                    running = now
            if real and booted is None:
                if BOOTED in (ec2.get_console_output(InstanceId=instance_id).get("Output") or ""):  # decoded
                    booted = now
            if running is not None and (booted is not None or not real):
                return running, booted
            time.sleep(0.1)
        raise TimeoutError(f"{instance_id} not running/booted within {timeout}s")
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])


def bench(kind: str, root: Path, image: guestimage.GuestImage, runs: int) -> dict:
    settings = {"HYPERVISOR": "test"}
    net = None
    if kind == "qemu":
        net = hostnet.HostNetwork(bridge=f"eucabench{os.getpid() % 10000}", subnet=hostnet.free_subnet(),
                                  state_dir=root / "hostnet")
        net.up(nat=False)
        settings = {"HYPERVISOR": "kvm", "VNET_MODE": "SYSTEM", "VNET_BRIDGE": net.bridge}
    try:
        with running_cloud(root / kind, **settings) as cloud:
            ec2 = cloud.client("ec2")
            image_id = register(cloud, image)
            cold = launch_once(ec2, image_id, kind == "qemu")
            warm = [launch_once(ec2, image_id, kind == "qemu") for _ in range(runs)]
            accel = "test driver"
            if kind == "qemu":
                resource = (cloud.root / "nc.stderr").read_text(errors="replace")
                accel = "TCG (software)" if "software emulation (TCG)" in resource else "KVM"
            return {"accel": accel, "cold": cold, "warm": warm}
    finally:
        if net:
            net.down()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:6.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="warm launches per hypervisor")
    parser.add_argument("--only", choices=("test", "qemu"), help="one hypervisor only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        root = Path(tmp)
        image = guestimage.build(root / "image")
        print(f"guest image: kernel {image.kernel.stat().st_size >> 10} KiB, initramfs "
              f"{image.ramdisk.stat().st_size >> 10} KiB, disk {image.disk.stat().st_size >> 20} MiB")
        print(f"{'hypervisor':<28} {'cache':<6} {'to running':>12} {'to boot marker':>16}")
        for kind in ([args.only] if args.only else ["test", "qemu"]):
            result = bench(kind, root, image, args.runs)
            label = f"{kind} ({result['accel']})"
            print(f"{label:<28} {'cold':<6} {_fmt(result['cold'][0]):>12} {_fmt(result['cold'][1]):>16}")
            warm_running = statistics.median(r for r, _ in result["warm"])
            warm_booted = [b for _, b in result["warm"] if b is not None]
            print(f"{label:<28} {'warm':<6} {_fmt(warm_running):>12} "
                  f"{_fmt(statistics.median(warm_booted) if warm_booted else None):>16}   (median of {args.runs})")
    print("\npublished figures to compare with:")
    for peer, figure in PEERS:
        print(f"  {peer}: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
