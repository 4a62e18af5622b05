"""A whole single-host cloud for trying it out: ``python -m eucacore.devcloud up|down``.

``up`` writes a eucalyptus.conf under the cloud's root (default ``<checkout>/.cloud``,
or $EUCA_DEV_ROOT), initializes the cloud, registers Walrus, an SC, one cluster
(zone ``zone-a``) and this host's node, brings up the instances' network (the bridge
VNET_BRIDGE with DHCP and NAT, SYSTEM mode), starts the five daemons in the background,
writes the admin's credentials to ~/.euca/eucarc, and builds, uploads and registers the
guest image (EKI + ERI + EMI, and the same disk as a whole-disk EMI). Running it again
starts only what is not running. ``down`` stops what ``up`` started and removes the network.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from eucacore import guestimage, hostnet
from eucacore.launch import LaunchError, launch

DAEMONS = ("clc", "walrus", "sc", "nc", "cc")
ZONE = "zone-a"
BRIDGE = "eucabr0"
IMAGE_BUCKET = "images"
#: The guest image's registrations: name -> (file of the built image, role).
IMAGES = {"guest-kernel": ("kernel", "kernel"), "guest-ramdisk": ("ramdisk", "ramdisk"),
          "guest": ("disk", "machine"), "guest-hvm": ("disk", "whole disk")}
#: The placeholder image of earlier dev clouds, deregistered now that the real one is there.
OLD_IMAGE_NAME = "dev-image"
_SETTING = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")
#: Settings of the dev cloud; every other key keeps the shipped eucalyptus.conf's default.
SETTINGS = {
    "BIND_ADDR": "127.0.0.1", "CLOUD_HOST": "127.0.0.1",
    "NC_POLLING_FREQUENCY": "2", "CLC_POLLING_FREQUENCY": "2",
    "VNET_MODE": "SYSTEM", "VNET_BRIDGE": BRIDGE,
}


class DevCloud:
    """The dev cloud rooted at ``root``."""

    def __init__(self, root: Path, cred_dir: Path):
        self.root = root.resolve()
        self.cred_dir = cred_dir
        self.conf = self.root / "etc/eucalyptus/eucalyptus.conf"
        self.run_dir = self.root / "run"
        self.log_dir = self.root / "var/log/eucalyptus"

    def _euca_conf(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "euca2ools.euca_conf", "--config", str(self.conf), *args],
                              capture_output=True, text=True)
        if check and proc.returncode:
            raise SystemExit(proc.stderr.strip() or f"euca_conf {' '.join(args)} failed")
        return proc

    def write_conf(self) -> None:
        """Write eucalyptus.conf, or add to an existing one the settings it lacks (a dev cloud
        made before there was a network); a setting already there is the user's."""
        if self.conf.exists():
            text = self.conf.read_text()
            present = {m.group(1) for m in map(_SETTING.match, text.splitlines()) if m}
        else:
            self.conf.parent.mkdir(parents=True, exist_ok=True)
            text = ("# The dev cloud's settings; see etc/eucalyptus/eucalyptus.conf in the source for every key.\n"
                    f'EUCALYPTUS="{self.root}"\n')
            present = set()
        missing = {k: v for k, v in {**SETTINGS, "HYPERVISOR": None}.items() if k not in present}
        if not missing:
            return
        if "HYPERVISOR" in missing:
            missing["HYPERVISOR"] = _hypervisor()
        self.conf.write_text(text + "".join(f'{k}="{v}"\n' for k, v in missing.items()))

    def register(self) -> None:
        from eucacore.config import load_config
        config = load_config(self.conf)
        self._euca_conf("--initialize", "--cred-dir", str(self.cred_dir))
        wanted = [("--list-walruses", "--register-walrus", [f"127.0.0.1:{config['WALRUS_PORT']}"]),
                  ("--list-scs", "--register-sc", [ZONE, f"127.0.0.1:{config['SC_PORT']}"]),
                  ("--list-clusters", "--register-cluster", [ZONE, f"127.0.0.1:{config['CC_PORT']}"]),
                  ("--list-nodes", "--register-nodes", [f"127.0.0.1:{config['NC_PORT']}"])]
        for listing, register, args in wanted:
            if not self._euca_conf(listing).stdout.strip():
                self._euca_conf(register, *args)
        self._euca_conf("--get-credentials", str(self.cred_dir))

    def _pid(self, name: str) -> int | None:
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in DAEMONS:
            if self._pid(name):
                print(f"{name}: already running (pid {self._pid(name)})")
                continue
            try:
                proc = launch(name, self.conf, self.log_dir / f"{name}.stderr", detach=True)
            except LaunchError as e:
                raise SystemExit(f"{name}: {e}")
            (self.run_dir / f"{name}.pid").write_text(str(proc.pid))
            print(f"{name}: started (pid {proc.pid})")

    def network(self) -> hostnet.HostNetwork:
        """The instances' host network: VNET_BRIDGE on a subnet chosen at the first ``up`` (one
        that none of the host's routes overlaps) and kept in the run directory."""
        from eucacore.config import load_config
        state = self.run_dir / "hostnet"
        subnet_file = state / "subnet"
        if subnet_file.exists():
            subnet = subnet_file.read_text().strip()
        else:
            subnet = str(hostnet.free_subnet())
            state.mkdir(parents=True, exist_ok=True)
            subnet_file.write_text(subnet + "\n")
        return hostnet.HostNetwork(load_config(self.conf)["VNET_BRIDGE"], subnet, state)

    def network_up(self) -> None:
        """Bridge, DHCP and NAT for the instances; their metadata requests go to the CLC."""
        from eucacore.config import load_config
        net = self.network()
        try:
            net.up(nat=True, metadata=("127.0.0.1", load_config(self.conf)["CLOUD_PORT"]))
        except hostnet.HostNetError as e:
            raise SystemExit(f"network: {e}")
        print(f"network: bridge {net.bridge} on {net.subnet}, DHCP and NAT (dnsmasq pid {net.dnsmasq_pid()})")

    def _clients(self):
        from euca2ools.credentials import parse_eucarc
        import boto3
        import botocore.config
        env = parse_eucarc(self.cred_dir / "eucarc", dict(os.environ))
        session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="eucalyptus")
        s3 = session.client("s3", endpoint_url=env["S3_URL"], verify=False,
                            config=botocore.config.Config(s3={"addressing_style": "path"}))
        return s3, session.client("ec2", endpoint_url=env["EC2_URL"], verify=False)

    def ensure_images(self) -> dict[str, str]:
        """Build the guest image (or reuse the built one), upload its files to Walrus under a
        folder named after its inputs' digest, and register them: name -> image id. A name
        registered with files of another build is registered anew."""
        try:
            image = guestimage.build(self.root / "images/guest")
        except guestimage.ImageBuildError as e:
            raise SystemExit(f"guest image: {e}")
        folder = "guest-" + (image.kernel.parent / "inputs.sha256").read_text()[:12]
        s3, ec2 = self._clients()
        if IMAGE_BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=IMAGE_BUCKET)
        registered = {}
        for name, (role, kind) in IMAGES.items():
            path = getattr(image, role)
            location = f"{IMAGE_BUCKET}/{folder}/{path.name}"
            registered[name] = self._register(s3, ec2, name, path, location, kind, registered)
        for old in _images_named(ec2, OLD_IMAGE_NAME):
            ec2.deregister_image(ImageId=old["ImageId"])
        return registered

    @staticmethod
    def _register(s3, ec2, name: str, path: Path, location: str, kind: str, registered: dict) -> str:
        for found in _images_named(ec2, name):
            if found.get("ImageLocation") == location:
                return found["ImageId"]
            ec2.deregister_image(ImageId=found["ImageId"])
        bucket, key = location.split("/", 1)
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError:
            with open(path, "rb") as body:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
        boot = {"KernelId": registered["guest-kernel"], "RamdiskId": registered["guest-ramdisk"]} \
            if kind == "machine" else {}
        return ec2.register_image(ImageLocation=location, Name=name, Description=f"the project's guest image ({kind})",
                                  **boot)["ImageId"]

    def up(self) -> None:
        self.write_conf()
        self.register()
        self.network_up()
        self.start()
        images = self.ensure_images()
        print(f"""
The cloud is up (root {self.root}, logs in {self.log_dir}).
Credentials: {self.cred_dir / 'eucarc'}. The guest image is registered:
  {images['guest']}  kernel {images['guest-kernel']} + ramdisk {images['guest-ramdisk']}
  {images['guest-hvm']}  the same disk, booting by itself

  source {self.cred_dir / 'eucarc'}
  euca-describe-availability-zones
  euca-run-instances {images['guest']} -t m1.small
  euca-describe-instances
  euca-get-console-output <instance id>

Stop it with: make cloud-down""")

    def down(self) -> None:
        for name in reversed(DAEMONS):
            pid = self._pid(name)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            for _ in range(400):
                if self._pid(name) is None or _reaped(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
            print(f"{name}: stopped")
        if (self.run_dir / "hostnet").exists():
            net = self.network()
            net.down()
            print(f"network: bridge {net.bridge} removed")


def _hypervisor() -> str:
    """kvm where /dev/kvm really runs guests, else qemu (software emulation)."""
    from nc.hypervisor import kvm_works
    return "kvm" if kvm_works() else "qemu"


def _images_named(ec2, name: str) -> list[dict]:
    return ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]


def _reaped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="devcloud", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "destroy"],
                        help="up: start (again); down: stop; destroy: stop and delete the cloud's root")
    parser.add_argument("--root", default=os.environ.get("EUCA_DEV_ROOT",
                                                         str(Path(__file__).resolve().parents[1] / ".cloud")))
    parser.add_argument("--cred-dir", default=os.path.expanduser("~/.euca"))
    args = parser.parse_args(argv)
    cloud = DevCloud(Path(args.root), Path(args.cred_dir))
    if args.action == "up":
        cloud.up()
    else:
        cloud.down()
        if args.action == "destroy":
            shutil.rmtree(cloud.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
