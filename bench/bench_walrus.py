#!/usr/bin/env python3
"""Walrus against moto[server] and nginx: small objects, large streams, listing, memory.

Usage:
    python bench/bench_walrus.py                      # full run, about 7 minutes on 2 cores
    python bench/bench_walrus.py --quick              # smoke run with small counts
    python bench/bench_walrus.py --only walrus,nginx --big-gib 0.5

One run starts all three servers on free 127.0.0.1 ports, their data in one temp dir
(so on one filesystem):
  walrus  a whole single-host cloud (tests.cloudharness, all five daemons): Walrus asks
          the CLC about the access key of every request, so the CLC's CPU gets a column
  moto    moto_server (it keeps objects in memory)
  nginx   the dav module: PUT writes a file (no fsync), GET sends it
and then measures:
  * 4 KiB PUT and GET at concurrency 1 and 16, boto3 (one client per thread), after 320 of each unmeasured:
    ops/s and server CPU ms per op.  Each phase is cut into 4 turns per server, the servers
    taking turns, so that the host's slow and fast spells (it is a VM) fall on all of them alike
  * a 256 MiB PUT and GET over plain http.client (presigned URLs for the S3 servers),
    so the client does no hashing or signing while the clock runs: MB/s (10^6 bytes), best of
    3 turns per server for the PUT, 3 * GETS_PER_PUT (15) for the GET
  * a paginated ListObjectsV2 of a bucket of 10,000 keys: seconds and server CPU seconds
  * Walrus's VmRSS before, and VmHWM (peak, reset first) after, a 2 GiB PUT and GET
Server CPU is utime+stime of the server's process tree read from /proc, less the CPU
the same processes spent per second while idle (the CLC polls the CC), so the client's
own 2-3 ms per boto3 request is not counted. nginx has no S3 listing. Every process is
stopped and the temp dir removed however the run ends.
"""

import argparse
import contextlib
import dataclasses
import grp
import hashlib
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import botocore.config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.cloudharness import free_port, running_cloud  # noqa: E402

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
CHUNK = MiB
TICK = os.sysconf("SC_CLK_TCK")
SERVERS = ("walrus", "moto", "nginx")
SMALL_BUCKET, LIST_BUCKET, LARGE_BUCKET = "bench-small", "bench-list", "bench-large"


# -- what is compared -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: a metric of one workload."""

    workload: str
    metric: str
    label: str
    fmt: str = "{:.2f}"


@dataclasses.dataclass(frozen=True)
class Target:
    """Walrus's goal for one metric: a fraction of another server's value, or an absolute bound."""

    text: str
    limit: float
    reference: str | None = None
    lower_is_better: bool = True

    def bound(self, results: dict) -> float | None:
        if self.reference is None:
            return self.limit
        ref = results.get(self.reference)
        return ref * self.limit if isinstance(ref, float) else None

    def met(self, value: float, results: dict) -> bool | None:
        bound = self.bound(results)
        if bound is None:
            return None
        return value <= bound if self.lower_is_better else value >= bound


def small_rows() -> list[Row]:
    rows = []
    for op in ("PUT", "GET"):
        for c in (1, 16):
            name = f"{op.lower()}4k_c{c}"
            rows.append(Row("small", f"{name}_ops", f"4 KiB {op} c={c}: ops/s", "{:.0f}"))
            rows.append(Row("small", f"{name}_cpu", f"4 KiB {op} c={c}: server CPU ms/op"))
    return rows


ROWS = small_rows() + [
    Row("large", "put_mbs", "large PUT: MB/s (best)", "{:.0f}"),
    Row("large", "put_cpu", "large PUT: server CPU s"),
    Row("large", "get_mbs", "large GET: MB/s (best)", "{:.0f}"),
    Row("large", "get_cpu", "large GET: server CPU s"),
    Row("listing", "list_s", "list all keys: seconds"),
    Row("listing", "list_cpu", "list all keys: server CPU s"),
    Row("rss", "rss_before", "Walrus VmRSS before big PUT+GET, MiB", "{:.0f}"),
    Row("rss", "rss_peak", "Walrus peak RSS (VmHWM) in big PUT+GET, MiB", "{:.0f}"),
]

TARGETS = {
    **{f"{op}4k_c{c}_cpu": Target("<= 1/4 of moto", 0.25, "moto")
       for op in ("put", "get") for c in (1, 16)},
    "list_cpu": Target("<= 1/5 of moto", 0.2, "moto"),
    "put_mbs": Target(">= 70% of nginx", 0.7, "nginx", lower_is_better=False),
    "get_mbs": Target(">= 70% of nginx", 0.7, "nginx", lower_is_better=False),
    "rss_peak": Target("< 150 MiB", 150),
}


# -- measuring processes ----------------------------------------------------------


def _stat(pid: int) -> tuple[int, float]:
    """(ppid, CPU seconds of the process and its reaped children) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / TICK


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and all its live descendants."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stats[int(entry)] = _stat(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(p for p, (ppid, _) in stats.items() if ppid == pid)
    return total


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Meter:
    """CPU seconds each metered process tree spent in a ``with`` block, less its idle rate."""

    def __init__(self, pids: dict[str, int], idle: dict[str, float]):
        self.pids, self.idle = pids, idle
        self.cpu: dict[str, float] = {}
        self.wall = 0.0

    def __enter__(self) -> "Meter":
        self._start = {name: tree_cpu(pid) for name, pid in self.pids.items()}
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self._t0
        self.cpu = {name: max(0.0, tree_cpu(pid) - self._start[name] - self.idle[name] * self.wall)
                    for name, pid in self.pids.items()}


def idle_rates(pids: dict[str, int], seconds: float = 3.0) -> dict[str, float]:
    """CPU seconds per second each process tree spends while no request is sent."""
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (tree_cpu(pid) - before[name]) / seconds for name, pid in pids.items()}


# -- the three servers ------------------------------------------------------------


def local_s3_client(port: int):
    """A boto3 S3 client of 127.0.0.1:``port`` (path-style URLs) with keys moto and nginx take."""
    config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                    max_pool_connections=4)
    return boto3.session.Session().client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                                          aws_access_key_id="bench", aws_secret_access_key="bench", config=config)


@dataclasses.dataclass
class Server:
    """A started server: how to reach it and which processes to meter (first = the server)."""

    name: str
    pids: dict[str, int]
    new_client: Callable[[], object]
    s3: bool = True
    plain_root: Path | None = None

    @property
    def pid(self) -> int:
        return self.pids[self.name]

    def url(self, client, method: str, bucket: str, key: str) -> str:
        """A URL for plain HTTP: presigned for S3 servers (signing is done before any clock starts)."""
        if not self.s3:
            return f"{client.meta.endpoint_url}/{bucket}/{key}"
        op = {"PUT": "put_object", "GET": "get_object"}[method]
        return client.generate_presigned_url(op, Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)

    def create_bucket(self, client, bucket: str) -> None:
        if self.s3:
            client.create_bucket(Bucket=bucket)
        else:
            (self.plain_root / bucket).mkdir()


@contextlib.contextmanager
def walrus_server(tmp: Path):
    """A whole cloud; Walrus and the CLC are metered."""
    with running_cloud(tmp / "cloud", LOGLEVEL="INFO") as cloud:
        yield Server("walrus", {"walrus": cloud.procs["walrus"].pid, "clc": cloud.procs["clc"].pid},
                     lambda: cloud.client("s3", max_pool_connections=4))


@contextlib.contextmanager
def group_process(argv: list[str], log: Path, port: int):
    """Run ``argv`` in its own process group until the block ends; wait until ``port`` listens."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_listening(proc, port, log)
        yield proc
    finally:
        stop_group(proc)


def wait_listening(proc: subprocess.Popen, port: int, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.args[0]} did not listen on {port} in {timeout:.0f}s")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there 10 s later."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def moto_server(tmp: Path):
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with group_process(argv, tmp / "moto.log", port) as proc:
        yield Server("moto", {"moto": proc.pid}, lambda: local_s3_client(port))


NGINX_CONF = """\
user {user} {group};
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    sendfile on;
    client_body_buffer_size 1m;
    client_max_body_size 0;
    client_body_temp_path {root}/.upload;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_server(tmp: Path):
    """nginx with the dav module; its files sit beside the cloud's, on the same filesystem."""
    port, prefix, root = free_port(), tmp / "nginx", tmp / "nginx-files"
    prefix.mkdir()
    root.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name,
                                      prefix=prefix, root=root, port=port))
    argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(prefix),
            "-e", str(prefix / "error.log"), "-g", "daemon off;"]
    with group_process(argv, prefix / "stderr.log", port) as proc:
        yield Server("nginx", {"nginx": proc.pid}, lambda: local_s3_client(port), s3=False, plain_root=root)


STARTERS = {"walrus": walrus_server, "moto": moto_server, "nginx": nginx_server}


# -- workloads ----------------------------------------------------------------------


def run_threads(work, clients: list, items: list) -> None:
    """``work(client, item)`` for every item, spread over one thread per client."""
    errors = []

    def loop(client, part):
        try:
            for item in part:
                work(client, item)
        except Exception as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(c, items[i::len(clients)])) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


#: Small PUTs and GETs sent (over all 16 clients) before the measured ones.
WARM_UP = 320
#: Turns each server takes in a small-op phase.
ROUNDS = 4


def take_turns(servers: list, rounds: int, workload: str, failures: dict, turn) -> None:
    """``turn(server, r)`` for r in range(rounds), each server once per round, the first of one
    round going last in the next: the host's slow and fast spells (this is a VM) then fall on
    every server alike.  A server whose turn fails is recorded in ``failures`` and sits out the
    rest of ``workload``."""
    for r in range(rounds):
        k = r % len(servers)
        for server in servers[k:] + servers[:k]:
            if (workload, server.name) in failures:
                continue
            try:
                turn(server, r)
            except Exception as e:  # noqa: BLE001 - reported in the table, the others go on
                failures[(workload, server.name)] = f"{type(e).__name__}: {e}"
                traceback.print_exc(file=sys.stderr)


def small_ops(servers: list, idle: dict, opts, failures: dict) -> dict:
    """4 KiB PUT then GET at concurrency 1 and 16, after a warm-up: ops/s and CPU ms per op.

    Each phase's operations are split into ROUNDS turns per server (see :func:`take_turns`).
    ops/s counts a server's own turns; its CPU is metered over the whole phase, less its idle
    rate, so work it does between turns (Walrus's usage reports) is counted too."""
    body = os.urandom(4 * KiB)
    clients: dict[str, list] = {}

    def put(client, key):
        client.put_object(Bucket=SMALL_BUCKET, Key=key, Body=body)

    def get(client, key):
        if len(client.get_object(Bucket=SMALL_BUCKET, Key=key)["Body"].read()) != len(body):
            raise RuntimeError(f"GET {key}: short body")

    def warm_up(server, _):
        # Not measured: each server's first requests (connections, lazy imports and caches, the
        # first key lookup) would be counted against the first phase alone.
        clients[server.name] = [server.new_client() for _ in range(16)]
        server.create_bucket(clients[server.name][0], SMALL_BUCKET)
        warm = [f"warm/obj-{i:03d}" for i in range(WARM_UP)]
        for work in (put, get):
            run_threads(work, clients[server.name], warm)

    take_turns(servers, 1, "small", failures, warm_up)
    pids = {name: pid for server in servers for name, pid in server.pids.items()}
    out = {}
    for c in (1, 16):
        keys = [f"c{c}/obj-{i:06d}" for i in range(opts.ops)]
        for op, work in (("put", put), ("get", get)):
            walls = dict.fromkeys((s.name for s in servers), 0.0)

            def turn(server, r):
                started = time.monotonic()
                run_threads(work, clients[server.name][:c], keys[r::ROUNDS])
                walls[server.name] += time.monotonic() - started

            with Meter(pids, idle) as m:
                take_turns(servers, ROUNDS, "small", failures, turn)
            for server in servers:
                if ("small", server.name) not in failures:
                    out.setdefault(f"{op}4k_c{c}_ops", {})[server.name] = opts.ops / walls[server.name]
                    out.setdefault(f"{op}4k_c{c}_cpu", {}).update(
                        {name: m.cpu[name] * 1000 / opts.ops for name in server.pids})
    return out


def data_chunks(size: int):
    """``size`` bytes in 1 MiB chunks, made on the fly from one random block."""
    block = memoryview(os.urandom(CHUNK))
    while size > 0:
        yield block[:min(size, CHUNK)]
        size -= CHUNK


def http_put(url: str, size: int) -> None:
    """One streamed PUT with a Content-Length; raises unless the answer is 2xx."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    try:
        conn.putrequest("PUT", u.path + (f"?{u.query}" if u.query else ""), skip_accept_encoding=True)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        for chunk in data_chunks(size):
            conn.send(chunk)
        resp = conn.getresponse()
        answer = resp.read()
        if resp.status // 100 != 2:
            raise RuntimeError(f"PUT answered {resp.status}: {answer[:300]!r}")
    finally:
        conn.close()


def http_get(url: str, size: int) -> None:
    """One streamed GET read into a reused 1 MiB buffer; raises unless all ``size`` bytes came."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    try:
        conn.request("GET", u.path + (f"?{u.query}" if u.query else ""))
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET answered {resp.status}: {resp.read()[:300]!r}")
        buf, got = bytearray(CHUNK), 0
        while n := resp.readinto(buf):
            got += n
        if got != size:
            raise RuntimeError(f"GET returned {got} of {size} bytes")
    finally:
        conn.close()


#: GETs of the large object per large PUT.  A 256 MiB GET takes 30-120 ms here, and the same
#: server's GETs vary up to fourfold from one to the next (2.1 to 9.1 GB/s for Walrus, 2.3
#: to 9.6 for nginx, in one stop): with 9 samples a server, Walrus's best was 0.65 of
#: nginx's in one run and 1.24 in the next; with 15, 0.76 to 1.46 in four runs.  The extra
#: GETs come in turns of their own after all the PUTs: between PUTs they gave nginx, which
#: does not fsync, more time to write back and raised its PUT by a fifth (780-800 to 940-970
#: MB/s).
GETS_PER_PUT = 5


def large(servers: list, idle: dict, opts, failures: dict) -> dict:
    """A large PUT then GET of the same object, ``--repeat`` times per server, then
    GETS_PER_PUT - 1 more GETs as often, the servers taking turns: the best MB/s (other work on
    the machine only slows a run down) and the mean server CPU seconds per transfer."""
    size, key = opts.large_mib * MiB, "large.bin"
    urls, meters = {}, {}

    def setup(server, _):
        client = server.new_client()
        server.create_bucket(client, LARGE_BUCKET)
        urls[server.name] = {op: server.url(client, op.upper(), LARGE_BUCKET, key) for op in ("put", "get")}

    def transfers(*ops):
        def turn(server, _):
            for op in ops:
                with Meter(server.pids, idle) as m:
                    {"put": http_put, "get": http_get}[op](urls[server.name][op], size)
                meters.setdefault((server.name, op), []).append(m)
        return turn

    take_turns(servers, 1, "large", failures, setup)
    take_turns(servers, opts.repeat, "large", failures, transfers("put", "get"))
    take_turns(servers, opts.repeat * (GETS_PER_PUT - 1), "large", failures, transfers("get"))
    out = {}
    for server in servers:
        if ("large", server.name) in failures:
            continue
        for op in ("put", "get"):
            runs = meters[(server.name, op)]
            out.setdefault(f"{op}_mbs", {})[server.name] = size / 1e6 / min(m.wall for m in runs)
            out.setdefault(f"{op}_cpu", {}).update(
                {name: sum(m.cpu[name] for m in runs) / len(runs) for name in server.pids})
    return out


def listing(servers: list, idle: dict, opts, failures: dict) -> dict:
    """Per S3 server: fill a bucket with ``--list-keys`` keys, then time one paginated ListObjectsV2
    of it.  One server after another: Walrus's listing costs a twentieth of moto's, far from the
    target, so the host's spells do not matter here."""
    return one_by_one([s for s in servers if s.s3], "listing", failures, lambda server: list_keys(server, idle, opts))


def one_by_one(servers: list, workload: str, failures: dict, run) -> dict:
    """``run(server)`` for each server in turn, merging the metrics it returns."""
    out: dict = {}

    def turn(server, _):
        for metric, values in run(server).items():
            out.setdefault(metric, {}).update(values)

    take_turns(servers, 1, workload, failures, turn)
    return out


def list_keys(server: Server, idle: dict, opts) -> dict:
    clients = [server.new_client() for _ in range(16)]
    server.create_bucket(clients[0], LIST_BUCKET)
    keys = [f"dir{i % 10}/key-{i:06d}" for i in range(opts.list_keys)]
    run_threads(lambda c, k: c.put_object(Bucket=LIST_BUCKET, Key=k, Body=b"x"), clients, keys)
    with Meter(server.pids, idle) as m:
        pages = clients[0].get_paginator("list_objects_v2").paginate(Bucket=LIST_BUCKET, MaxKeys=1000)
        listed = sum(page.get("KeyCount", 0) for page in pages)
    if listed != len(keys):
        raise RuntimeError(f"listed {listed} of {len(keys)} keys")
    return {"list_s": {server.name: m.wall}, "list_cpu": m.cpu}


def peak_rss(servers: list, idle: dict, opts, failures: dict) -> dict:
    """Walrus's VmRSS, then its peak RSS over a ``--big-gib`` PUT and GET (VmHWM reset first)."""
    return one_by_one([s for s in servers if s.name == "walrus"], "rss", failures,
                      lambda server: walrus_rss(server, opts))


def walrus_rss(server: Server, opts) -> dict:
    size, key = int(opts.big_gib * GiB), "big.bin"
    client = server.new_client()
    put_url = server.url(client, "PUT", LARGE_BUCKET, key)
    get_url = server.url(client, "GET", LARGE_BUCKET, key)
    before = status_kib(server.pid, "VmRSS")
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")
    http_put(put_url, size)
    http_get(get_url, size)
    client.delete_object(Bucket=LARGE_BUCKET, Key=key)
    return {"rss_before": {"walrus": before / KiB}, "rss_peak": {"walrus": status_kib(server.pid, "VmHWM") / KiB}}


WORKLOADS = {"small": small_ops, "large": large, "listing": listing, "rss": peak_rss}


# -- running and printing -------------------------------------------------------


def bench(servers: list, opts, results: dict, failures: dict) -> None:
    """Every workload against all the servers; a failed workload is recorded and the run goes on."""
    idle = idle_rates({name: pid for server in servers for name, pid in server.pids.items()})
    print("idle CPU: " + ", ".join(f"{n} {r * 1000:.1f} ms/s" for n, r in idle.items()), file=sys.stderr)
    for workload, run in WORKLOADS.items():
        t0 = time.monotonic()
        for metric, values in run(servers, idle, opts, failures).items():
            results.setdefault(metric, {}).update(values)
        print(f"{workload} done in {time.monotonic() - t0:.1f} s", file=sys.stderr)


def cell(row: Row, column: str, results: dict, failures: dict) -> str:
    value = results.get(row.metric, {}).get(column)
    if value is not None:
        return row.fmt.format(value)
    server = "walrus" if column == "clc" else column
    return "FAILED" if (row.workload, server) in failures else "-"


def verdict(row: Row, values: dict) -> tuple[str, str]:
    """(Walrus / reference, whether the target is met) for a row with a target."""
    target, walrus = TARGETS.get(row.metric), values.get("walrus")
    if target is None or walrus is None:
        return "", ""
    met = target.met(walrus, values)
    if met is None:
        return "", "-"
    ratio = ""
    if target.reference and values[target.reference] > 0:
        ratio = f"{walrus / values[target.reference]:.3f}"  # 3 places: a missed 0.2554 must not print as 0.25
        if "clc" in values:
            ratio += f" ({(walrus + values['clc']) / values[target.reference]:.3f} w/ CLC)"
    return ratio, "yes" if met else "NO"


def table(results: dict, failures: dict, servers: list[str]) -> str:
    columns = (["walrus", "clc"] if "walrus" in servers else []) + [s for s in ("moto", "nginx") if s in servers]
    heads = {"clc": "CLC (for Walrus)"}
    header = ["workload", *(heads.get(c, c) for c in columns), "target", "walrus/ref", "met"]
    lines = [header]
    for row in ROWS:
        values = results.get(row.metric, {})
        target = TARGETS.get(row.metric)
        lines.append([row.label, *(cell(row, c, results, failures) for c in columns),
                      target.text if target else "", *verdict(row, values)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def md5_mbs(size: int = 256 * MiB) -> float:
    """hashlib's MD5 on one core, in MB/s: a large PUT's ceiling, since every byte is hashed for
    the ETag (S3's MD5) in the order it arrives."""
    block, digest = memoryview(os.urandom(CHUNK)), hashlib.md5()
    started = time.perf_counter()
    for _ in range(size // CHUNK):
        digest.update(block)
    return size / 1e6 / (time.perf_counter() - started)


def wait_costs(directory: Path, rounds: int = 200, idle: float = 0.005) -> tuple[float, float, float]:
    """Thread CPU microseconds, on this machine, of (one sleep and wake-up; a 24 KiB write and
    fdatasync in ``directory`` back to back; the same write and fdatasync after ``idle`` seconds
    asleep, its wake-up not counted).  A small PUT's fsync and each wait for a request pay these."""
    block = os.urandom(6 * 4096)
    fd, path = tempfile.mkstemp(dir=directory)
    try:
        os.pwrite(fd, bytes(len(block) * rounds), 0)
        os.fsync(fd)

        def per_round(sleep: float, write: bool) -> float:
            started = time.thread_time()
            for i in range(rounds):
                if sleep:
                    time.sleep(sleep)
                if write:
                    os.pwrite(fd, block, i * len(block))
                    os.fdatasync(fd)
            return (time.thread_time() - started) / rounds * 1e6

        wake = per_round(idle, False)
        return wake, per_round(0, True), per_round(idle, True) - wake
    finally:
        os.close(fd)
        os.unlink(path)


def md5_ceiling(results: dict) -> str:
    """MD5's pace here, and what it leaves of the large PUT's target: met only while nginx's
    PUT is at most MD5's pace / 0.7 (the target's fraction), whatever Walrus does."""
    md5 = md5_mbs()
    line = f"MD5 (hashlib, one core) runs at {md5:.0f} MB/s here: the ceiling of Walrus's large PUT"
    nginx = results.get("put_mbs", {}).get("nginx")
    if nginx:
        line += f", {md5 / nginx:.3f} of nginx's best PUT (the target needs {TARGETS['put_mbs'].limit})"
    return line + "."


def notes(opts, failures: dict, load: tuple, waits: tuple, results: dict) -> str:
    lines = [f"small ops: {opts.ops} per phase, boto3 with one client per thread; large object {opts.large_mib} MiB "
             f"over http.client, best of {opts.repeat} PUTs and {opts.repeat * GETS_PER_PUT} GETs; "
             f"listing of {opts.list_keys} keys in pages of 1000; "
             f"big object {opts.big_gib} GiB.",
             "server CPU = utime+stime of the process tree from /proc minus its idle rate, over each whole "
             "small-op phase (all servers' turns); CLC (for Walrus) = the CLC's CPU likewise, answering "
             "Walrus's key lookups (DescribeAccessKey) and usage reports; 'w/ CLC' = ratio counting it too.",
             "Walrus fsyncs every object before answering; nginx's dav PUT does not fsync; "
             "moto keeps objects in memory.",
             md5_ceiling(results),
             "thread CPU here: a sleep and wake-up {:.0f} us; a 24 KiB write + fdatasync {:.0f} us back to back, "
             "{:.0f} us after 5 ms asleep. A small Walrus PUT waits for its request and for its fdatasync's device "
             "requests.".format(*waits),
             "load average (1 min) at start and end: {:.2f}, {:.2f}; other work on the machine lowers ops/s and MB/s, "
             "much less CPU per op.".format(load[0], os.getloadavg()[0])]
    lines += [f"FAILED {server} {workload}: {message}" for (workload, server), message in failures.items()]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(SERVERS), help="servers to run, comma separated: walrus,moto,nginx")
    p.add_argument("--ops", type=int, default=2000, help="operations per small-op phase")
    p.add_argument("--list-keys", type=int, default=10000, help="keys in the listed bucket")
    p.add_argument("--large-mib", type=int, default=256, help="size of the large PUT/GET object")
    p.add_argument("--repeat", type=int, default=3, help="large PUT+GET runs; the best counts")
    p.add_argument("--big-gib", type=float, default=2.0, help="size of the object for Walrus's peak RSS")
    p.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    p.add_argument("--tmpdir", default=None, help="where the servers keep their data (default: system temp)")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.ops, opts.list_keys, opts.large_mib, opts.big_gib = 100, 500, 16, 0.125
    opts.servers = [s for s in opts.only.split(",") if s]
    unknown = set(opts.servers) - set(SERVERS)
    if unknown:
        p.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    return opts


def main(argv=None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results, failures, load = {}, {}, os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-walrus-", dir=opts.tmpdir) as tmp, \
            contextlib.ExitStack() as servers:
        started = [servers.enter_context(STARTERS[name](Path(tmp))) for name in opts.servers]
        bench(started, opts, results, failures)
        waits = wait_costs(Path(tmp))
    print(table(results, failures, opts.servers))
    print(notes(opts, failures, load, waits, results))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
