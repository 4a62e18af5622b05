"""Not a benchmark: what bench_cc_burst.py and bench_cc_scale.py share. A cloud
(tests/cloudharness.py: CLC, Walrus, SC and one CC per zone, real daemons on loopback) whose
nodes are node controllers served by NC host processes (bench_cc_nchost.py), registered with
euca_conf as an administrator would; m1.small made 1 GiB of disk so that 50 fit a node's disk;
the RSS of every process; figures printed as a table.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eucacore.launch import launch  # noqa: E402
from tests.cloudharness import Cloud, Zone, free_ports, register_image, wait_for  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent


def status_kib(pid: int, field: str = "VmRSS") -> int:
    """A ``kB`` field of /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BenchCloud:
    """A cloud of ``zones`` (name -> number of nodes), its nodes served ``per_host`` to a process
    (served as the NC daemon serves them, see bench_cc_nchost.py)."""

    def __init__(self, root: Path, zones: dict[str, int], per_host: int, **settings):
        self.root, self.zone_sizes, self.per_host = Path(root), zones, per_host
        self.cloud = Cloud(self.root, zones={z: Zone(nodes=[]) for z in zones}, **settings)
        taken = {*self.cloud.ports.values(), *(h.port for h in self.cloud.hosts.values())}
        ports = iter(p for p in free_ports(sum(zones.values()) + len(taken)) if p not in taken)
        self.nodes = {zone: [next(ports) for _ in range(count)] for zone, count in zones.items()}
        self.hosts: list[subprocess.Popen] = []

    def start(self) -> "BenchCloud":
        self.cloud.start()
        for zone, ports in self.nodes.items():
            self.cloud.register_nodes(zone, [f"127.0.0.1:{p}" for p in ports])
        ports = [p for zone_ports in self.nodes.values() for p in zone_ports]
        for first in range(0, len(ports), self.per_host):
            self.hosts.append(self._start_host(len(self.hosts), ports[first:first + self.per_host]))
        self.cloud.client("properties").modify_property_value(Name="cloud.vmtypes.m1.small.disk", Value="1")
        wait_for(lambda: list(self.cloud.node_states().values()).count("ENABLED") == len(ports), timeout=120,
                 interval=1, what="every node enabled")
        return self

    def _start_host(self, number: int, ports: list[int]) -> subprocess.Popen:
        host_dir = self.root / f"nchost-{number}"
        host_dir.mkdir(parents=True, exist_ok=True)
        spec = host_dir / "spec.json"
        spec.write_text(json.dumps({"keys": str(self.cloud.keys_dir()),
                                    "nodes": [{"root": str(host_dir / f"nc-{p}"), "port": p} for p in ports]}))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH_DIR), str(ROOT)]))
        return launch("bench_cc_nchost", spec, host_dir / "stderr", timeout=120, env=env)

    def image(self) -> str:
        return register_image(self.cloud.client("ec2"), self.cloud.client("s3"), "bench-images", "bench-image",
                              size=4096)

    def rss_mib(self) -> dict[str, float]:
        """Each daemon's RSS (MiB), and the NC host processes' (each, and their mean per node)."""
        out = {name: status_kib(proc.pid) / 1024 for name, proc in self.cloud.procs.items()}
        hosts = [status_kib(p.pid) / 1024 for p in self.hosts]
        for number, rss in enumerate(hosts):
            out[f"nchost-{number}"] = rss
        out["per node (NC hosts)"] = sum(hosts) / sum(self.zone_sizes.values())
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """Each daemon's CPU seconds so far, and the NC host processes' together."""
        out = {name: cpu_seconds(proc.pid) for name, proc in self.cloud.procs.items()}
        out["NC hosts"] = sum(cpu_seconds(p.pid) for p in self.hosts)
        return out

    def cc_cycles(self, zone: str) -> list[float]:
        """The times (s) of the zone's CC's polls of every node (it logs each at DEBUG)."""
        name = self.cloud.zone_hosts(zone, "cc")[0].name
        lines = self.cloud.logs[name].read_text(errors="replace").splitlines()
        return [float(line.rsplit(" in ", 1)[1].rstrip("s")) for line in lines
                if "node(s) in " in line and "changing" not in line]

    def stop(self) -> None:
        for proc in self.hosts:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.hosts:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.cloud.stop()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
