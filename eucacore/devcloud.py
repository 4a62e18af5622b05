"""A whole single-host cloud for trying it out: ``python -m eucacore.devcloud up|down``.

``up`` writes a eucalyptus.conf under the cloud's root (default ``<checkout>/.cloud``,
or $EUCA_DEV_ROOT), initializes the cloud, registers Walrus, an SC, one cluster
(zone ``zone-a``) and this host's node, starts the five daemons in the background,
writes the admin's credentials to ~/.euca/eucarc and registers a first image.
Running it again starts only what is not running. ``down`` stops what ``up`` started.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from eucacore.launch import LaunchError, launch

DAEMONS = ("clc", "walrus", "sc", "nc", "cc")
ZONE = "zone-a"
IMAGE_BUCKET, IMAGE_KEY, IMAGE_NAME = "images", "dev-disk.img", "dev-image"
IMAGE_SIZE = 16 * 2**20
#: Settings of the dev cloud; every other key keeps the shipped eucalyptus.conf's default.
SETTINGS = {
    "BIND_ADDR": "127.0.0.1", "CLOUD_HOST": "127.0.0.1",
    # Until the compute issue brings real VMs, instances are domains of libvirt's test driver.
    "HYPERVISOR": "test", "NC_POLLING_FREQUENCY": "2", "CLC_POLLING_FREQUENCY": "2",
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
        if self.conf.exists():
            return
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# The dev cloud's settings; see etc/eucalyptus/eucalyptus.conf in the source for every key.",
                 f'EUCALYPTUS="{self.root}"'] + [f'{k}="{v}"' for k, v in SETTINGS.items()]
        self.conf.write_text("\n".join(lines) + "\n")

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

    def ensure_image(self) -> str:
        """The first image: a raw disk object in Walrus, registered as an emi."""
        from euca2ools.credentials import parse_eucarc
        import boto3
        import botocore.config
        env = parse_eucarc(self.cred_dir / "eucarc", dict(os.environ))
        session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="eucalyptus")
        s3 = session.client("s3", endpoint_url=env["S3_URL"], verify=False,
                            config=botocore.config.Config(s3={"addressing_style": "path"}))
        ec2 = session.client("ec2", endpoint_url=env["EC2_URL"], verify=False)
        found = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [IMAGE_NAME]}])["Images"]
        if found:
            return found[0]["ImageId"]
        if IMAGE_BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=IMAGE_BUCKET)
        s3.put_object(Bucket=IMAGE_BUCKET, Key=IMAGE_KEY, Body=b"\0" * IMAGE_SIZE)
        return ec2.register_image(ImageLocation=f"{IMAGE_BUCKET}/{IMAGE_KEY}", Name=IMAGE_NAME)["ImageId"]

    def up(self) -> None:
        self.write_conf()
        self.register()
        self.start()
        image_id = self.ensure_image()
        print(f"""
The cloud is up (root {self.root}, logs in {self.log_dir}).
Credentials: {self.cred_dir / 'eucarc'}; image {image_id} is ready to run.

  source {self.cred_dir / 'eucarc'}
  euca-describe-availability-zones
  euca-run-instances {image_id} -t m1.small
  euca-describe-instances

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
