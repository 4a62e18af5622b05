"""Scale: 200 NCs (libvirt test driver) in 4 zones holding 10,000 instances: each CC's polling
cycle, the CLC's DescribeInstances latency, and every daemon's memory.

The cloud is the real CLC, Walrus, SC and one CC per zone; the 200 nodes are the NC's own
code, 25 to a process (bench_cc_nchost.py: 8 processes, each node on its own port over mutual
TLS with its own state and its own simulated 64-core test-driver host). The instances are
run through boto3 against the CLC, 250 to a RunInstances (the CLC picks the zone with most
room), and waited for until all are running. Then for --measure seconds the CCs poll with
nothing else to do (their cycle times are read from their logs), and for as long again
DescribeInstances is timed, in turn: all 10,000 instances (one answer), a page of 1000
(MaxResults) and one instance by id, through boto3 (which spends seconds parsing 10,000
instances itself) and, for the first two, as the server answers: the signed request sent and
the whole answer read, nothing parsed. The CCs' cycles meanwhile are shown too. Figures are printed, never
judged; the issue's targets: a polling cycle under 5 s, DescribeInstances p50 under 300 ms.

    python bench/bench_cc_scale.py                                  # about 10 minutes on 2 cores
    python bench/bench_cc_scale.py --zones 2 --nodes 20 --instances 1000 --measure 30   # a smoke run
"""

import argparse
import http.client
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench_cc_common import BenchCloud, percentile, table

EC2_VERSION = "2016-11-15"


def fill(ec2, image: str, count: int, batch: int) -> tuple[list[str], float]:
    """Run ``count`` instances, ``batch`` to a RunInstances; (their ids, seconds until all ran
    or ended)."""
    started, instance_ids = time.monotonic(), []
    while len(instance_ids) < count:
        size = min(batch, count - len(instance_ids))
        reply = ec2.run_instances(ImageId=image, MinCount=size, MaxCount=size, InstanceType="m1.small")
        instance_ids += [i["InstanceId"] for i in reply["Instances"]]
    while True:
        states = [i["State"]["Name"] for page in ec2.get_paginator("describe_instances").paginate(
            PaginationConfig={"PageSize": 1000}) for r in page["Reservations"] for i in r["Instances"]]
        if states.count("running") + states.count("terminated") >= count:  # none still on its way
            if "terminated" in states:
                print(f"{states.count('terminated')} of the instances ended instead of running", flush=True)
            return instance_ids, time.monotonic() - started
        time.sleep(2)


def timed(call, times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.monotonic()
        call()
        out.append(time.monotonic() - started)
    return out


def answered(cloud, **params) -> None:
    """DescribeInstances as the server answers it: signed as boto3 signs it, sent with
    http.client, the whole answer read and not parsed."""
    body = urlencode({"Action": "DescribeInstances", "Version": EC2_VERSION, **params})
    request = AWSRequest("POST", cloud.ec2_url, data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    keys = Credentials(cloud.eucarc["AWS_ACCESS_KEY_ID"], cloud.eucarc["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(keys, "ec2", "eucalyptus").add_auth(request)
    url = urlsplit(cloud.ec2_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    try:
        conn.request("POST", url.path, body, dict(request.headers))
        response = conn.getresponse()
        if response.status != 200 or b"<instancesSet>" not in response.read():
            raise RuntimeError(f"DescribeInstances answered {response.status}")
    finally:
        conn.close()


def latencies(cloud, ec2, instance_ids: list[str], seconds: float) -> dict[str, list[float]]:
    """DescribeInstances, timed in turn for ``seconds``: all and a page of 1000 (as the server
    answers, then through boto3), one by id."""
    out = {"all, server": [], "page of 1000, server": [], "all, boto3": [], "page of 1000, boto3": [],
           "one by id, boto3": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out["all, server"] += timed(lambda: answered(cloud), 3)
        out["page of 1000, server"] += timed(lambda: answered(cloud, MaxResults=1000), 3)
        out["all, boto3"] += timed(lambda: ec2.describe_instances(), 1)
        out["page of 1000, boto3"] += timed(lambda: ec2.describe_instances(MaxResults=1000), 3)
        out["one by id, boto3"] += timed(lambda: ec2.describe_instances(
            InstanceIds=[instance_ids[len(out["one by id, boto3"]) % len(instance_ids)]]), 5)
    return out


def at_rest(bench, zones: dict[str, int], seconds: float) -> tuple[dict[str, list[float]], dict[str, float]]:
    """The cycles each zone's CC logs in ``seconds`` of no requests, and the share of a core
    each daemon used meanwhile (polling: what requests have to share the machine with)."""
    before, cpu = {zone: len(bench.cc_cycles(zone)) for zone in zones}, bench.cpu_seconds()
    time.sleep(seconds)
    used = {name: (spent - cpu[name]) / seconds for name, spent in bench.cpu_seconds().items()}
    return {zone: bench.cc_cycles(zone)[before[zone]:] for zone in zones}, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zones", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=200, help="in all")
    parser.add_argument("--per-host", type=int, default=25, help="nodes per NC host process")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=250, help="instances per RunInstances")
    parser.add_argument("--nc-poll", type=int, default=5, help="NC_POLLING_FREQUENCY, s")
    parser.add_argument("--clc-poll", type=int, default=5, help="CLC_POLLING_FREQUENCY, s")
    parser.add_argument("--measure", type=float, default=60, help="seconds of each measuring phase")
    args = parser.parse_args()
    zones = {f"zone-{chr(ord('a') + z)}": args.nodes // args.zones for z in range(args.zones)}
    with tempfile.TemporaryDirectory(prefix="bench-cc-scale-") as tmp:
        bench = BenchCloud(Path(tmp), zones, per_host=args.per_host, LOGLEVEL="DEBUG",
                           NC_POLLING_FREQUENCY=str(args.nc_poll), CLC_POLLING_FREQUENCY=str(args.clc_poll))
        try:
            started = time.monotonic()
            bench.start()
            print(f"cloud of {sum(zones.values())} nodes up in {time.monotonic() - started:.0f}s", flush=True)
            ec2 = bench.cloud.client("ec2", read_timeout=300)
            instance_ids, filled = fill(ec2, bench.image(), args.instances, args.batch)
            print(f"{len(instance_ids)} instances running after {filled:.0f}s", flush=True)
            time.sleep(2 * args.nc_poll)  # the polls that the fill's last answers started
            cycles, resting_cpu = at_rest(bench, zones, args.measure)
            before = {zone: len(bench.cc_cycles(zone)) for zone in zones}
            measured = latencies(bench.cloud, ec2, instance_ids, args.measure)
            busy_cycles = {zone: bench.cc_cycles(zone)[before[zone]:] for zone in zones}
            rss = bench.rss_mib()
        finally:
            bench.stop()
    print(f"\n{sum(zones.values())} NCs ({args.per_host} to a process) "
          f"in {args.zones} zones, {len(instance_ids)} instances, NC_POLLING_FREQUENCY={args.nc_poll}s, "
          f"CLC_POLLING_FREQUENCY={args.clc_poll}s, {args.measure:.0f}s measured each:")
    rows = [(f"CC {zone} polling cycle, s (p50 / max of {len(c)}{', under requests' * busy})",
             f"{percentile(c, 0.5):.2f} / {max(c):.2f}" if c else "none logged")
            for busy, phase in enumerate((cycles, busy_cycles)) for zone, c in phase.items()]
    rows += [(f"DescribeInstances {kind}, ms (p50 / p90 of {len(t)})",
              f"{percentile(t, 0.5) * 1000:.0f} / {percentile(t, 0.9) * 1000:.0f}") for kind, t in measured.items()]
    rows += [("targets", "polling cycle < 5 s; DescribeInstances p50 < 300 ms"), ("fill, s", f"{filled:.0f}")]
    rows += [(f"RSS {name}, MiB", f"{value:.0f}") for name, value in rss.items()]
    rows += [(f"CPU at rest {name}, % of a core", f"{share * 100:.0f}") for name, share in resting_cpu.items()]
    print(table(rows))


if __name__ == "__main__":
    main()
