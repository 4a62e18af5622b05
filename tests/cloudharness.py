"""A whole single-host cloud for tests: five daemons as real processes on loopback.

``Cloud.start()`` writes a eucalyptus.conf with free ports and the libvirt test
driver, runs ``euca_conf --initialize`` and the registrations, starts every daemon
with its own NOTIFY_SOCKET and waits for its ``READY=1``. ``stop()`` ends them all
(SIGTERM, then SIGKILL) and is safe to call more than once.

More zones and nodes: ``Cloud(root, zones={"zone-a": Zone(nodes=[{}, {}]), "zone-b": Zone(...)})``
runs one CC per zone and the zone's NCs, each with the settings given (MAX_CORES=...; a
zone's ``settings`` go to its CC: SCHEDPOLICY=...). Zone-a's CC and first NC are the daemons
"cc" and "nc" of the cloud's own eucalyptus.conf, as in a one-zone cloud; every other one is a
host of its own (``hosts``: "cc-zone-b", "nc-zone-a-2", ...) with its own directory, conf,
port, state and a copy of the keys, as on another machine. Clusters and nodes are registered
with euca_conf as an administrator would; euca_conf writes the nodes it registers into the
conf it works on (the CLC's, which is zone-a's CC's), and the harness moves another zone's
nodes into that zone's CC's conf, as the original's register-nodes on that CC's host did.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import botocore.config

from eucacore.awsapi import models
from eucacore.launch import LaunchError, launch

DAEMONS = {"clc": "clc", "walrus": "walrus", "sc": "sc", "cc": "cc", "nc": "nc"}
#: Start order: the CLC first (Walrus asks it about keys), the NC before the CC polls it.
ORDER = ("clc", "walrus", "sc", "nc", "cc")
ZONE = "zone-a"
#: Each daemon module's program name: its log file is $EUCALYPTUS/var/log/eucalyptus/<name>.log.
PROGRAMS = {"clc": "eucalyptus-cloud", "walrus": "eucalyptus-walrus", "sc": "eucalyptus-sc",
            "nc": "eucalyptus-nc", "cc": "eucalyptus-cc"}


@dataclasses.dataclass
class Zone:
    """One availability zone of a test cloud: its nodes (the settings of each NC) and its CC's settings."""

    nodes: list[dict] = dataclasses.field(default_factory=lambda: [{}])
    settings: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Host:
    """A daemon of the cloud: its module (cc, nc, ...), zone, eucalyptus.conf, port and settings."""

    name: str
    module: str
    zone: str
    conf: Path
    port: int
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all held open while they are chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def run_tool(args: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run one of the project's commands (``python -m module``) and capture its output."""
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


class Cloud:
    """One test cloud rooted at ``root``."""

    def __init__(self, root: Path, zones: dict[str, Zone] | None = None, **overrides):
        """A cloud at ``root`` of ``zones`` (zone-a first; by default zone-a alone, one node),
        ``overrides`` in every eucalyptus.conf."""
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
        self.zones = zones or {ZONE: Zone()}
        self.hosts = self._plan_hosts()

    def _plan_hosts(self) -> dict[str, Host]:
        """Every daemon of the cloud: the five of the cloud's own conf, then the other zones' and nodes'."""
        hosts = {name: Host(name, module, ZONE, self.conf, 0) for name, module in DAEMONS.items()}
        hosts["cc"].port, hosts["nc"].port = self.ports["CC_PORT"], self.ports["NC_PORT"]
        ports = iter(p for p in free_ports(len(self.zones) + sum(len(z.nodes) for z in self.zones.values()) + 8)
                     if p not in self.ports.values())
        for zone, spec in self.zones.items():
            if zone == ZONE:
                hosts["cc"].settings = dict(spec.settings)
            else:
                hosts[f"cc-{zone}"] = Host(f"cc-{zone}", "cc", zone, self.root / f"cc-{zone}" / "eucalyptus.conf",
                                           next(ports), dict(spec.settings))
            for index, settings in enumerate(spec.nodes, start=1):
                if zone == ZONE and index == 1:
                    hosts["nc"].settings = dict(settings)
                else:
                    name = f"nc-{zone}-{index}"
                    hosts[name] = Host(name, "nc", zone, self.root / name / "eucalyptus.conf", next(ports),
                                       dict(settings))
        if not self.zones.get(ZONE, Zone(nodes=[])).nodes:
            del hosts["nc"]  # no NC daemon: the nodes are the caller's (register_nodes)
        return hosts

    def zone_hosts(self, zone: str, module: str) -> list[Host]:
        """The zone's CC (module "cc") or NCs (module "nc"), in order."""
        return [h for h in self.hosts.values() if h.zone == zone and h.module == module]

    # -- set-up --------------------------------------------------------------

    def write_conf(self) -> None:
        """The cloud's own conf (its CC's and first NC's settings in it too), and every other host's."""
        self.root.mkdir(parents=True, exist_ok=True)
        own = {**self.settings, **self.hosts["cc"].settings, **getattr(self.hosts.get("nc"), "settings", {})}
        self.conf.write_text("".join(f'{k}="{v}"\n' for k, v in own.items()))
        for host in self.hosts.values():
            if host.conf != self.conf:
                host.conf.parent.mkdir(parents=True, exist_ok=True)
                port = {"cc": "CC_PORT", "nc": "NC_PORT"}[host.module]
                values = {**self.settings, "EUCALYPTUS": str(host.conf.parent), port: host.port, **host.settings}
                host.conf.write_text("".join(f'{k}="{v}"\n' for k, v in values.items()))

    def euca_conf(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_tool(["euca2ools.euca_conf", "--config", str(self.conf), *args], check=check)

    def setup(self) -> None:
        """Config, CA, admin credentials and the registration of every component."""
        self.write_conf()
        self.euca_conf("--initialize", "--cred-dir", str(self.cred_dir))
        self.euca_conf("--register-walrus", f"127.0.0.1:{self.ports['WALRUS_PORT']}")
        self.euca_conf("--register-sc", "zone-a", f"127.0.0.1:{self.ports['SC_PORT']}")
        for zone in self.zones:
            self.euca_conf("--register-cluster", zone, self.zone_hosts(zone, "cc")[0].address)
            self.register_nodes(zone)
        self.euca_conf("--get-credentials", str(self.cred_dir))
        self.eucarc = parse_eucarc(self.cred_dir / "eucarc")
        for host in self.hosts.values():
            if host.conf != self.conf:
                shutil.copytree(self.keys_dir(), host.conf.parent / "var/lib/eucalyptus/keys", dirs_exist_ok=True)

    def register_nodes(self, zone: str, addresses: list[str] | None = None) -> None:
        """Register the zone's NCs (or the NCs at ``addresses``: ones the caller runs), and put
        them in NODES of the zone's CC's conf."""
        addresses = [h.address for h in self.zone_hosts(zone, "nc")] if addresses is None else addresses
        if not addresses:
            return
        self.euca_conf("--register-nodes", " ".join(addresses))
        cc = self.zone_hosts(zone, "cc")[0]
        if cc.conf != self.conf:
            set_nodes(self.conf, [n for n in conf_nodes(self.conf) if n not in addresses])
            set_nodes(cc.conf, conf_nodes(cc.conf) + addresses)

    def start(self) -> "Cloud":
        """Set up, start every daemon, and wait until the CLC has every zone's cluster available
        (it polls every second; the CCs start last)."""
        self.setup()
        for name in self.start_order():
            self.start_daemon(name)
        ec2 = self.client("ec2")
        wait_for(lambda: [z["State"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
                 == ["available"] * len(self.zones), timeout=30, what="every zone available")
        return self

    def start_order(self) -> list[str]:
        """ORDER, each zone's other NCs with "nc" and other CCs with "cc"."""
        return [h.name for step in ORDER for h in self.hosts.values() if h.module == step]

    def start_daemon(self, name: str, timeout: float = 60) -> subprocess.Popen:
        """Start one daemon and wait for its READY=1 (as systemd would)."""
        log = self.root / f"{name}.stderr"
        self.logs[name] = log
        host = self.hosts[name]
        try:
            proc = launch(host.module, host.conf, log, timeout=timeout)
        except LaunchError as e:
            raise AssertionError(str(e)) from None
        self.procs[name] = proc
        return proc

    def log_file(self, name: str) -> Path:
        """Daemon ``name``'s log file (which alone holds its access lines; stderr has the rest)."""
        host = self.hosts[name]
        return host.conf.parent / "var/log/eucalyptus" / f"{PROGRAMS[host.module]}.log"

    def wait_for_log(self, name: str, text: str, timeout: float = 10) -> bool:
        """Whether ``text`` shows up in daemon ``name``'s log file within ``timeout`` seconds
        (access lines reach the file within half a second of their request)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError):
                if text in self.log_file(name).read_text():
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

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
        for name in reversed(self.start_order()):
            self.stop_daemon(name)

    def node_states(self) -> dict[str, str]:
        """Each registered node's state as the CLC recorded it (ENABLED, NOTREADY...), by address."""
        path = self.root / "var/lib/eucalyptus/clc.db"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            return dict(db.execute("SELECT name, state FROM components WHERE kind = 'node'").fetchall())

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


def conf_nodes(conf: Path) -> list[str]:
    """NODES of a eucalyptus.conf."""
    for line in conf.read_text().splitlines():
        if line.strip().startswith("NODES"):
            return line.split("=", 1)[1].strip().strip('"').split()
    return []


def set_nodes(conf: Path, nodes: list[str]) -> None:
    """Set NODES of a eucalyptus.conf (the file replaced at once: a CC re-reads it)."""
    lines = [line for line in conf.read_text().splitlines() if not line.strip().startswith("NODES")]
    tmp = conf.with_name(f".{conf.name}.tmp")
    tmp.write_text("\n".join(lines + [f'NODES="{" ".join(nodes)}"']) + "\n")
    os.replace(tmp, conf)


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


class WakeOnLan:
    """A UDP socket on loopback where the CC's wake-on-LAN packets arrive: the test's stand-in for
    the LAN. Each packet is kept; ``on_packet(payload)`` (the "hardware") is called for each."""

    def __init__(self, on_packet):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.packets, self.on_packet, self.closed = [], on_packet, threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while not self.closed.is_set():
            try:
                payload, _ = self.sock.recvfrom(1024)
            except TimeoutError:
                continue
            self.packets.append(payload)
            self.on_packet(payload)

    def close(self):
        self.closed.set()
        self.thread.join()
        self.sock.close()


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
