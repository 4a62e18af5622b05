"""A whole single-host cloud for tests: five daemons as real processes on loopback.

``Cloud.start()`` writes a eucalyptus.conf with free ports and the libvirt test
driver, runs ``euca_conf --initialize`` and the registrations, starts every daemon
with its own NOTIFY_SOCKET and waits for its ``READY=1``. ``stop()`` ends them all
(SIGTERM, then SIGKILL) and is safe to call more than once.
"""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.config

from eucacore.awsapi import models
from eucacore.launch import LaunchError, launch

DAEMONS = {"clc": "clc", "walrus": "walrus", "sc": "sc", "cc": "cc", "nc": "nc"}
#: Start order: the CLC first (Walrus asks it about keys), the NC before the CC polls it.
ORDER = ("clc", "walrus", "sc", "nc", "cc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_tool(args: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run one of the project's commands (``python -m module``) and capture its output."""
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


class Cloud:
    """One test cloud rooted at ``root``."""

    def __init__(self, root: Path, **overrides):
        self.root = Path(root)
        self.ports = {"CLOUD_PORT": free_port(), "CLOUD_SSL_PORT": free_port(), "CC_PORT": free_port(),
                      "NC_PORT": free_port(), "WALRUS_PORT": free_port(), "SC_PORT": free_port()}
        self.settings = {"EUCALYPTUS": str(self.root), "BIND_ADDR": "127.0.0.1", "CLOUD_HOST": "127.0.0.1",
                         "HYPERVISOR": "test", "NC_POLLING_FREQUENCY": "1", "CLC_POLLING_FREQUENCY": "1",
                         "LOGLEVEL": "DEBUG", **{k: str(v) for k, v in self.ports.items()}, **overrides}
        self.conf = self.root / "eucalyptus.conf"
        self.cred_dir = self.root / "creds"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    # -- set-up --------------------------------------------------------------

    def write_conf(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf.write_text("".join(f'{k}="{v}"\n' for k, v in self.settings.items()))

    def euca_conf(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_tool(["euca2ools.euca_conf", "--config", str(self.conf), *args], check=check)

    def setup(self) -> None:
        """Config, CA, admin credentials and the registration of every component."""
        self.write_conf()
        self.euca_conf("--initialize", "--cred-dir", str(self.cred_dir))
        self.euca_conf("--register-walrus", f"127.0.0.1:{self.ports['WALRUS_PORT']}")
        self.euca_conf("--register-sc", "zone-a", f"127.0.0.1:{self.ports['SC_PORT']}")
        self.euca_conf("--register-cluster", "zone-a", f"127.0.0.1:{self.ports['CC_PORT']}")
        self.euca_conf("--register-nodes", f"127.0.0.1:{self.ports['NC_PORT']}")
        self.euca_conf("--get-credentials", str(self.cred_dir))
        self.eucarc = parse_eucarc(self.cred_dir / "eucarc")

    def start(self) -> "Cloud":
        """Set up, start every daemon, and wait until the CLC has seen zone-a's cluster answer
        (it polls every second; the CC starts last)."""
        self.setup()
        for name in ORDER:
            self.start_daemon(name)
        ec2 = self.client("ec2")
        wait_for(lambda: [z["State"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
                 == ["available"], timeout=30, what="zone-a available")
        return self

    def start_daemon(self, name: str, timeout: float = 60) -> subprocess.Popen:
        """Start one daemon and wait for its READY=1 (as systemd would)."""
        log = self.root / f"{name}.stderr"
        self.logs[name] = log
        try:
            proc = launch(DAEMONS[name], self.conf, log, timeout=timeout)
        except LaunchError as e:
            raise AssertionError(str(e)) from None
        self.procs[name] = proc
        return proc

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_daemon(self, name: str, timeout: float = 40) -> int:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9

    def stop(self) -> None:
        for name in reversed(ORDER):
            self.stop_daemon(name)

    # -- clients -------------------------------------------------------------

    @property
    def ec2_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['CLOUD_PORT']}/services/compute"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['WALRUS_PORT']}"

    def url(self, service: str) -> str:
        """The endpoint of ``service``: ec2, s3, iam (= euare), properties, reporting."""
        if service == "s3":
            return self.s3_url
        base = f"http://127.0.0.1:{self.ports['CLOUD_PORT']}/services/"
        return base + {"ec2": "compute", "iam": "Euare", "euare": "Euare", "properties": "Properties",
                       "reporting": "Reporting"}[service]

    def client(self, service: str, access_key: str | None = None, secret_key: str | None = None, **config):
        """A boto3 client of one of our endpoints, as the cloud admin unless keys are given.

        ``iam`` is stock boto3's IAM client; ``euare``, ``properties`` and ``reporting`` are
        clients of our own service models (eucacore.awsapi.models).
        """
        cfg = botocore.config.Config(retries={"max_attempts": 1}, **config)
        if service == "s3":
            cfg = cfg.merge(botocore.config.Config(s3={"addressing_style": "path"}))
        access_key = access_key or self.eucarc["AWS_ACCESS_KEY_ID"]
        secret_key = secret_key or self.eucarc["AWS_SECRET_ACCESS_KEY"]
        if service in models.VERSIONS:
            return models.client(service, endpoint_url=self.url(service), access_key=access_key,
                                 secret_key=secret_key, verify=False, config=cfg)
        return boto3.session.Session().client(
            service, endpoint_url=self.url(service), region_name="eucalyptus", verify=False, config=cfg,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    def new_account(self, name: str) -> "Tenant":
        """A new account (made by the cloud admin through Euare) with a key for its admin user."""
        euare = self.client("euare")
        account = euare.create_account(AccountName=name)["Account"]
        key = euare.create_access_key(UserName="admin", DelegateAccount=name)["AccessKey"]
        return Tenant(self, name, account["AccountId"], key["AccessKeyId"], key["SecretAccessKey"])

    def keys_dir(self) -> Path:
        return self.root / "var/lib/eucalyptus/keys"

    def tool_env(self) -> dict:
        """The environment a user gets by sourcing the eucarc."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA"))}
        env.update(self.eucarc)
        env["HOME"] = str(self.root)
        return env


@dataclasses.dataclass
class Tenant:
    """An account of a test cloud and the keys of one of its users."""

    cloud: Cloud
    name: str
    account_id: str
    access_key: str
    secret_key: str

    def client(self, service: str, **config):
        return self.cloud.client(service, self.access_key, self.secret_key, **config)

    def user(self, user_name: str, policy: dict | None = None) -> "Tenant":
        """A new user of this account (with an inline policy, if given) and its key."""
        iam = self.client("iam")
        iam.create_user(UserName=user_name)
        if policy is not None:
            iam.put_user_policy(UserName=user_name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user_name)["AccessKey"]
        return Tenant(self.cloud, self.name, self.account_id, key["AccessKeyId"], key["SecretAccessKey"])


def parse_eucarc(path: Path) -> dict[str, str]:
    """The exported KEY=value pairs of an eucarc, with ${EUCA_KEY_DIR} resolved."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.replace("${EUCA_KEY_DIR}", str(path.parent))
    return out


def poll_until(predicate, timeout: float = 10, interval: float = 0.02):
    """Call ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (falsy returned)."""
    deadline = time.monotonic() + timeout
    last = predicate()
    while not last and time.monotonic() < deadline:
        time.sleep(interval)
        last = predicate()
    return last


def wait_for(predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    """Like ``poll_until``, but a timeout is a test failure naming ``what``."""
    last = poll_until(predicate, timeout, interval)
    if not last:
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
    return last


def register_image(ec2, s3, bucket: str, name: str, key: str = "disk.img", size: int = 65536) -> str:
    """A machine image of the clients' account: ``size`` zero bytes in a new bucket, registered as ``name``."""
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=b"\0" * size)
    return ec2.register_image(ImageLocation=f"{bucket}/{key}", Name=name)["ImageId"]


@contextlib.contextmanager
def running_cloud(root: Path, **overrides):
    """A started cloud at ``root`` (``overrides`` of its eucalyptus.conf), stopped again however
    the block ends."""
    cloud = Cloud(root, **overrides)
    try:
        cloud.start()
        yield cloud
    finally:
        cloud.stop()
