"""The host side of SYSTEM-mode networking for a single-host cloud and for tests.

``HostNetwork.up`` makes a Linux bridge (VNET_BRIDGE) with the gateway address of a private
subnet, and starts a dnsmasq that serves DHCP on it (no DNS), so that instances whose NIC is
on the bridge get an address the host can reach. Optionally it NATs the subnet to the
host's network (ip_forward and an iptables MASQUERADE rule), and sends the instances'
169.254.169.254:80 to the metadata service (the CLC's port), as the original's CC did.

Everything it makes is tagged or kept under its state directory (dnsmasq's pid, lease and
log files; a mark in /run when it turned ip_forward on), so ``down`` removes exactly that, and does so whatever state ``up`` left behind:
it is idempotent, and safe after a failed ``up``. Needs root, dnsmasq (dnsmasq-base) and
iptables.
"""

import ipaddress
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

#: The comment every iptables rule of ours carries (with the bridge's name after a colon).
TAG = "eucalyptus-hostnet"
METADATA_IP = "169.254.169.254"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
#: Says that a host network of ours turned ip_forward on (the last one down turns it off).
IP_FORWARD_MARK = Path("/run/eucalyptus-hostnet.ip_forward")
#: Seconds dnsmasq may take to write its pid file, and to exit when told.
DNSMASQ_WAIT = 10
LEASE_TIME = "12h"


class HostNetError(Exception):
    """A step of setting up the host network failed (the message says which and why)."""


@dataclass
class HostNetwork:
    """The bridge ``bridge`` on ``subnet`` (the host is its first address), with state files
    under ``state_dir``."""

    bridge: str
    subnet: ipaddress.IPv4Network
    state_dir: Path

    def __post_init__(self):
        self.subnet = ipaddress.IPv4Network(self.subnet)
        self.state_dir = Path(self.state_dir)
        if not 0 < len(self.bridge) <= 15:
            raise ValueError(f"bridge name {self.bridge!r} must have 1 to 15 characters")
        if self.subnet.num_addresses < 16:
            raise ValueError(f"subnet {self.subnet} is too small")

    @property
    def gateway(self) -> str:
        """The host's address on the bridge, the instances' router."""
        return str(self.subnet.network_address + 1)

    @property
    def dhcp_range(self) -> tuple[str, str]:
        """First and last address dnsmasq hands out (the low ones stay for the host)."""
        hosts = self.subnet.num_addresses
        return str(self.subnet.network_address + min(10, hosts // 4)), str(self.subnet.broadcast_address - 1)

    @property
    def tag(self) -> str:
        return f"{TAG}:{self.bridge}"

    def _file(self, name: str) -> Path:
        return self.state_dir / f"dnsmasq.{name}"

    def up(self, nat: bool = True, metadata: tuple[str, int] | None = None) -> None:
        """Make the bridge, start dnsmasq, and (``nat``) NAT the subnet to the host's network;
        ``metadata`` = (address, port) of the metadata service that instances reach at
        169.254.169.254:80. Idempotent: what exists is kept. On failure, the network is taken
        down again: half of one is of no use."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._bridge_up()
            self._dnsmasq_up()
            if metadata:
                self.route_metadata(*metadata)
            if nat:
                self._nat_up()
        except Exception:
            self.down()
            raise

    def down(self) -> None:
        """Remove the iptables rules, dnsmasq, the bridge and the state files; give ip_forward
        back when we turned it on and no other host network of ours needs it. Whatever is
        already gone is skipped."""
        for table, rule in _tagged_rules(self.tag):
            _iptables(table, "-D", *rule)
        self._stop_dnsmasq()
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=self.bridge):
                ipr.link("del", index=index)
        if IP_FORWARD_MARK.exists() and not _tagged_rules(TAG):
            IP_FORWARD.write_text("0\n")
            IP_FORWARD_MARK.unlink()
        for name in ("pid", "leases", "log"):
            self._file(name).unlink(missing_ok=True)

    def leases(self) -> dict[str, str]:
        """The addresses dnsmasq gave out: MAC (lower case) -> IP."""
        try:
            lines = self._file("leases").read_text().splitlines()
        except FileNotFoundError:
            return {}
        # Each line: expiry MAC IP hostname client-id
        return {f[1].lower(): f[2] for f in (line.split() for line in lines) if len(f) >= 3}

    def wait_for_lease(self, mac: str, timeout: float) -> str | None:
        """The address leased to ``mac``, waiting up to ``timeout`` seconds; None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            ip = self.leases().get(mac.lower())
            if ip or time.monotonic() >= deadline:
                return ip
            time.sleep(0.5)

    def dnsmasq_pid(self) -> int | None:
        """The pid of our running dnsmasq, or None."""
        try:
            pid = int(self._file("pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid if _command(pid) == "dnsmasq" else None

    def route_metadata(self, address: str | None, port: int = 80) -> None:
        """Send the instances' 169.254.169.254:80 to ``address``:``port`` instead of any earlier
        target; None: to nowhere (their requests fail at once)."""
        for table, rule in _tagged_rules(self.tag):
            if table == "nat" and rule[0] == "PREROUTING":
                _iptables(table, "-D", *rule)
        if address is None:
            return
        if ipaddress.ip_address(address).is_loopback:  # the kernel routes to 127/8 only when told
            Path(f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet").write_text("1\n")
        _ensure_rule("nat", "PREROUTING", ["-i", self.bridge, "-d", f"{METADATA_IP}/32", "-p", "tcp",
                                           "--dport", "80", "-j", "DNAT", "--to-destination", f"{address}:{port}"],
                     self.tag)

    def _bridge_up(self) -> None:
        prefix = self.subnet.prefixlen
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=self.bridge):
                _host_routes_clash(ipr, self.subnet)
                ipr.link("add", ifname=self.bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
            index = ipr.link_lookup(ifname=self.bridge)[0]
            present = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
            if self.gateway not in present:
                ipr.addr("add", index=index, address=self.gateway, prefixlen=prefix)
            ipr.link("set", index=index, state="up")

    def _dnsmasq_up(self) -> None:
        if self.dnsmasq_pid():
            return
        first, last = self.dhcp_range
        self._file("pid").unlink(missing_ok=True)
        argv = ["dnsmasq", "--conf-file=/dev/null", f"--pid-file={self._file('pid')}",
                f"--dhcp-leasefile={self._file('leases')}", f"--log-facility={self._file('log')}",
                f"--interface={self.bridge}", "--except-interface=lo", "--bind-interfaces",
                "--port=0",  # no DNS
                f"--dhcp-range={first},{last},{self.subnet.netmask},{LEASE_TIME}",
                # no ping of an address before handing it out: the bridge is ours alone, and
                # the ping costs every instance seconds of its boot
                "--dhcp-authoritative", "--no-ping", "--log-dhcp"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=DNSMASQ_WAIT)
        except FileNotFoundError:
            raise HostNetError("dnsmasq is missing (install dnsmasq-base)") from None
        if proc.returncode:
            raise HostNetError(f"dnsmasq did not start: {proc.stderr.strip()}")
        deadline = time.monotonic() + DNSMASQ_WAIT
        while not self.dnsmasq_pid():
            if time.monotonic() > deadline:
                raise HostNetError(f"dnsmasq wrote no pid file {self._file('pid')}")
            time.sleep(0.1)

    def _stop_dnsmasq(self) -> None:
        pid = self.dnsmasq_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DNSMASQ_WAIT
        while _command(pid) == "dnsmasq":
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)

    def _nat_up(self) -> None:
        subnet = str(self.subnet)
        _ensure_rule("nat", "POSTROUTING", ["-s", subnet, "!", "-d", subnet, "-j", "MASQUERADE"], self.tag)
        # Where FORWARD drops by default (as with docker), the instances' traffic still passes;
        # link-local addresses (the metadata address, when no service is set) never leave.
        _ensure_rule("filter", "FORWARD", ["-o", self.bridge, "-m", "conntrack", "--ctstate",
                                           "RELATED,ESTABLISHED", "-j", "ACCEPT"], self.tag)
        _ensure_rule("filter", "FORWARD", ["-i", self.bridge, "-j", "ACCEPT"], self.tag)
        _ensure_rule("filter", "FORWARD", ["-i", self.bridge, "-d", "169.254.0.0/16", "-j", "REJECT"], self.tag)
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD_MARK.touch()
            IP_FORWARD.write_text("1\n")


def free_subnet(candidates=None) -> ipaddress.IPv4Network:
    """The first /24 of ``candidates`` (default: 10.213.0.0/24 to 10.213.255.0/24) that no
    route or address of the host overlaps."""
    pool = candidates or ipaddress.IPv4Network("10.213.0.0/16").subnets(new_prefix=24)
    with IPRoute() as ipr:
        taken = _host_networks(ipr)
    for subnet in pool:
        if not any(subnet.overlaps(t) for t in taken):
            return subnet
    raise HostNetError("no free subnet for the host network")


def _host_networks(ipr) -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes and addresses, the default route left out."""
    nets = [ipaddress.IPv4Network(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", strict=False)
            for r in ipr.get_routes(family=2, table=254) if r["dst_len"]]
    nets += [ipaddress.IPv4Network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False)
             for a in ipr.get_addr(family=2)]
    return nets


def _host_routes_clash(ipr, subnet: ipaddress.IPv4Network) -> None:
    clash = [str(n) for n in _host_networks(ipr) if n.overlaps(subnet)]
    if clash:
        raise HostNetError(f"subnet {subnet} overlaps the host's {', '.join(clash)}")


def _iptables(table: str, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["iptables", "-w", "-t", table, *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise HostNetError("iptables is missing (install iptables)") from None


def _ensure_rule(table: str, chain: str, rule: list[str], tag: str) -> None:
    """Add the rule, with our comment, unless it is there already."""
    full = [chain, "-m", "comment", "--comment", tag, *rule]
    if _iptables(table, "-C", *full).returncode == 0:
        return
    added = _iptables(table, "-A" if chain == "POSTROUTING" else "-I", *full)
    if added.returncode:
        raise HostNetError(f"iptables -t {table} {chain}: {added.stderr.strip()}")


def _tagged_rules(tag: str) -> list[tuple[str, list[str]]]:
    """Our rules whose comment starts with ``tag``, as (table, arguments after -A)."""
    found = []
    for table in ("nat", "filter"):
        listing = _iptables(table, "-S").stdout
        for line in listing.splitlines():
            words = shlex.split(line)
            if words[:1] == ["-A"] and "--comment" in words:
                comment = words[words.index("--comment") + 1]
                if comment == tag or comment.startswith(tag + ":"):
                    found.append((table, words[1:]))
    return found


def _command(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
