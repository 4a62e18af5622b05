"""``kill -9`` of the CLC in the middle of a burst of RunInstances, CreateVolume and
AllocateAddress calls loses no acknowledged resource and allocates nothing twice.

Six threads (two per action) call the CLC, the volume and address ones as fast as
it answers, the instance ones paced to what the test node can hold.  After a moment
of that the SC is paused, so the CreateVolume calls in flight stop between recording
their volume and the SC's answer; then the CLC is killed with calls of every kind in
flight, the threads go on a little longer against the dead port, the SC resumes and
the CLC is started again.  A call in flight at the kill may have committed without
answering: it is "possibly committed", and the only slack the counts allow.

The module runs a cloud of its own: the shared one has no public address pool.
"""

import ipaddress
import signal
import threading
import time
from dataclasses import dataclass, field

import botocore.exceptions
import pytest

from tests.cloudharness import register_image, running_cloud, wait_for

pytestmark = pytest.mark.integration

ZONE = "zone-a"
POOL = ("10.98.0.1", "10.98.3.254")  # ~1000 addresses: the burst never exhausts it
BURST_BEFORE_KILL = 1.5  # seconds of burst before the CLC is killed
BURST_AFTER_KILL = 0.5  # seconds the threads go on against the dead CLC
SC_PAUSE = 0.3  # seconds the SC is paused (SIGSTOP) before the kill
#: The test NC (libvirt's test driver: 16 cores, 3 GiB) fits 12 m1.small; leave room for the
#: RunInstances after the restart.
INSTANCE_BUDGET = 10
#: Seconds an instance thread rests between calls, so the budget lasts past the kill.
INSTANCE_PACE = 0.45
THREADS_PER_KIND = 2
KINDS = ("instance", "volume", "address")


@dataclass
class Call:
    """One request of the burst and how it ended."""

    kind: str
    started: float
    ended: float = 0.0
    outcome: str = ""  # 'acked' (200), 'refused' (an error answer), 'cut' (no answer)
    answer: dict = field(default_factory=dict)
    error: str = ""


class Burst:
    """The threads of the burst and every call they made."""

    def __init__(self, tenant, image_id: str):
        self.tenant, self.image_id = tenant, image_id
        self.calls: list[Call] = []
        self.in_flight = {kind: 0 for kind in KINDS}
        self.instance_calls = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.killed_at = float("inf")  # monotonic time the CLC was dead for sure
        self.restart_seconds = 0.0
        # Clients are made before the burst: making one takes longer than the burst's first second.
        self.threads = [threading.Thread(target=self._work, name=f"burst-{kind}-{n}", daemon=True,
                                         args=(kind, tenant.client("ec2", connect_timeout=5, read_timeout=60)))
                        for kind in KINDS for n in range(THREADS_PER_KIND)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)
            assert not thread.is_alive(), f"{thread.name} is stuck"

    def _request(self, ec2, kind: str) -> dict:
        if kind == "instance":
            reply = ec2.run_instances(ImageId=self.image_id, InstanceType="m1.small", MinCount=1, MaxCount=1)
            return {"id": reply["Instances"][0]["InstanceId"]}
        if kind == "volume":
            reply = ec2.create_volume(Size=1, AvailabilityZone=ZONE)
            return {"id": reply["VolumeId"], "state": reply["State"]}
        reply = ec2.allocate_address()
        return {"id": reply["AllocationId"], "ip": reply["PublicIp"]}

    def _claim(self, kind: str) -> bool:
        """Whether this thread may make another call of ``kind`` (the instance budget permitting)."""
        with self.lock:
            if kind == "instance":
                if self.instance_calls >= INSTANCE_BUDGET:
                    return False
                self.instance_calls += 1
            self.in_flight[kind] += 1
            return True

    def _work(self, kind: str, ec2) -> None:
        while not self.stop.is_set():
            if not self._claim(kind):
                time.sleep(0.05)
                continue
            call = Call(kind, time.monotonic())
            try:
                call.answer, call.outcome = self._request(ec2, kind), "acked"
            except botocore.exceptions.ClientError as e:
                call.outcome, call.error = "refused", e.response["Error"]["Code"]
            except botocore.exceptions.BotoCoreError as e:
                call.outcome, call.error = "cut", type(e).__name__
            call.ended = time.monotonic()
            with self.lock:
                self.in_flight[kind] -= 1
                self.calls.append(call)
            if kind == "instance":
                time.sleep(INSTANCE_PACE)
            elif call.outcome == "cut":
                time.sleep(0.05)  # the port is dead: don't spin

    def all_kinds_in_flight(self) -> bool:
        with self.lock:
            return all(self.in_flight.values())

    # -- what happened ---------------------------------------------------------

    def acked(self, kind: str) -> list[dict]:
        return [c.answer for c in self.calls if c.kind == kind and c.outcome == "acked"]

    def possibly_committed(self, kind: str) -> list[Call]:
        """Calls that got no answer but may have reached the CLC before it died."""
        return [c for c in self.calls if c.kind == kind and c.outcome == "cut" and c.started < self.killed_at]

    def refused_before_kill(self) -> list[Call]:
        return [c for c in self.calls if c.outcome == "refused" and c.started < self.killed_at]

    def summary(self) -> str:
        parts = []
        for kind in KINDS:
            mine = [c for c in self.calls if c.kind == kind]
            parts.append(f"{kind}: {len(self.acked(kind))} acked, {len(self.possibly_committed(kind))} in flight "
                         f"at the kill, {sum(c.outcome == 'cut' for c in mine)} cut, "
                         f"{sum(c.outcome == 'refused' for c in mine)} refused")
        return "; ".join(parts)


# -- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def burst_cloud(tmp_path_factory):
    with running_cloud(tmp_path_factory.mktemp("burst-kill9"), VNET_PUBLICIPS=f"{POOL[0]}-{POOL[1]}") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def tenant(burst_cloud):
    return burst_cloud.new_account("burst-tenant")


@pytest.fixture(scope="module")
def image_id(tenant):
    return register_image(tenant.client("ec2"), tenant.client("s3"), "burst-images", "burst-image")


@pytest.fixture(scope="module")
def burst(burst_cloud, tenant, image_id):
    """The burst, the kill in its middle, and the restarted CLC."""
    burst = Burst(tenant, image_id)
    burst.start()
    sc = burst_cloud.procs["sc"]
    try:
        time.sleep(BURST_BEFORE_KILL)
        # A kill most often finds a CreateVolume between recording the volume and the SC's
        # answer, but not surely; with the SC paused, the volume calls in flight wait right there.
        sc.send_signal(signal.SIGSTOP)
        time.sleep(SC_PAUSE)
        # Kill when a call of every kind is in flight (give up waiting after a while).
        wait_until = time.monotonic() + 2
        while not burst.all_kinds_in_flight() and time.monotonic() < wait_until:
            time.sleep(0.002)
        burst_cloud.kill9("clc")
        burst.killed_at = time.monotonic()
        time.sleep(BURST_AFTER_KILL)
    finally:
        sc.send_signal(signal.SIGCONT)
        burst.join()
    started = time.monotonic()
    burst_cloud.start_daemon("clc")
    burst.restart_seconds = time.monotonic() - started
    print(f"\nburst: {burst.summary()}; CLC restarted in {burst.restart_seconds:.1f}s")
    return burst


def _described_instances(ec2) -> list[dict]:
    return [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]


def _all_running(ec2, instance_ids) -> bool:
    states = {i["InstanceId"]: i["State"]["Name"] for i in _described_instances(ec2)}
    return all(states.get(i) == "running" for i in instance_ids)


# -- the checks --------------------------------------------------------------------------------------

def test_every_kind_was_cut_in_flight(burst):
    """The kill met requests of each kind (otherwise the test proves less than it claims)."""
    assert all(burst.possibly_committed(kind) for kind in KINDS), burst.summary()
    assert all(burst.acked(kind) for kind in KINDS), burst.summary()


def test_no_refusals_under_load(burst):
    """Before the kill, every answered call succeeded (the pool and quotas are far from full)."""
    refused = [(c.kind, c.error) for c in burst.refused_before_kill()
               if not (c.kind == "instance" and c.error == "InsufficientInstanceCapacity")]
    assert refused == [], burst.summary()


def test_acknowledged_instances_survive(burst):
    ec2 = burst.tenant.client("ec2")
    described = _described_instances(ec2)
    ids = [i["InstanceId"] for i in described]
    assert len(ids) == len(set(ids)), "an instance id is described twice"
    acked = [a["id"] for a in burst.acked("instance")]
    assert len(acked) == len(set(acked)), "an instance id was acknowledged twice"
    assert set(acked) <= set(ids), f"lost instances: {sorted(set(acked) - set(ids))}"
    assert len(ids) <= len(acked) + len(burst.possibly_committed("instance")), burst.summary()
    for instance in described:
        state = instance["State"]["Name"]
        assert state in ("pending", "running", "terminated"), instance
        if state == "terminated":
            assert instance["StateReason"]["Message"], instance
    # The cluster ran what it acknowledged: those reach running with the restarted CLC.
    wait_for(lambda: _all_running(ec2, acked), timeout=30, interval=1,
             what="the acknowledged instances running")


def test_acknowledged_volumes_survive(burst):
    ec2 = burst.tenant.client("ec2")
    described = ec2.describe_volumes()["Volumes"]
    ids = [v["VolumeId"] for v in described]
    assert len(ids) == len(set(ids)), "a volume id is described twice"
    acked = {a["id"]: a["state"] for a in burst.acked("volume")}
    assert len(acked) == len(burst.acked("volume")), "a volume id was acknowledged twice"
    assert set(acked) <= set(ids), f"lost volumes: {sorted(set(acked) - set(ids))}"
    assert len(ids) <= len(acked) + len(burst.possibly_committed("volume")), burst.summary()
    # The calls that waited on the paused SC had recorded their volumes when the CLC died.
    assert len(ids) > len(acked), burst.summary()
    states = {v["VolumeId"]: v["State"] for v in described}
    for volume_id, state in acked.items():
        assert states[volume_id] == state == "available", (volume_id, state, states[volume_id])
    # The restarted CLC settles what its predecessor was creating: none stays 'creating' for ever.
    for volume_id in set(ids) - set(acked):
        assert states[volume_id] in ("available", "error"), (volume_id, states[volume_id])


def test_addresses_allocated_once(burst_cloud, burst):
    ec2 = burst.tenant.client("ec2")
    described = ec2.describe_addresses()["Addresses"]
    ips = [a["PublicIp"] for a in described]
    assert len(ips) == len(set(ips)), "a public IP is allocated twice"
    allocations = [a["AllocationId"] for a in described]
    assert len(allocations) == len(set(allocations)), "an allocation id is described twice"
    acked = burst.acked("address")
    assert len({a["ip"] for a in acked}) == len(acked), f"a public IP was acknowledged twice: {acked}"
    by_allocation = {a["AllocationId"]: a["PublicIp"] for a in described}
    for address in acked:
        assert by_allocation.get(address["id"]) == address["ip"], f"lost or moved: {address}"
    assert len(described) <= len(acked) + len(burst.possibly_committed("address")), burst.summary()
    low, high = (ipaddress.IPv4Address(a) for a in POOL)
    assert all(low <= ipaddress.IPv4Address(ip) <= high for ip in ips)
    # The cloud admin's view of every account agrees: nobody else holds these addresses.
    every = burst_cloud.client("ec2").describe_addresses(PublicIps=["verbose"])
    every_ips = [a["PublicIp"] for a in every["Addresses"]]
    assert sorted(every_ips) == sorted(ips)


def test_clc_answers_normally_after_restart(burst):
    ec2 = burst.tenant.client("ec2")
    instance_id = ec2.run_instances(ImageId=burst.image_id, InstanceType="m1.small",
                                    MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    volume = ec2.create_volume(Size=1, AvailabilityZone=ZONE)
    assert volume["State"] == "available"
    address = ec2.allocate_address()
    taken = {a["ip"] for a in burst.acked("address")}
    assert address["PublicIp"] not in taken
    wait_for(lambda: _all_running(ec2, [instance_id]), timeout=30, interval=1, what="the new instance running")


def test_cleanup_leaves_nothing(burst_cloud, burst):
    """Everything the burst made can be given back: the module leaves nothing behind."""
    ec2 = burst.tenant.client("ec2")
    live = [i["InstanceId"] for i in _described_instances(ec2) if i["State"]["Name"] != "terminated"]
    if live:
        ec2.terminate_instances(InstanceIds=live)
    for address in ec2.describe_addresses()["Addresses"]:
        ec2.release_address(AllocationId=address["AllocationId"])
    undeletable = []
    for volume in ec2.describe_volumes()["Volumes"]:
        try:
            ec2.delete_volume(VolumeId=volume["VolumeId"])
        except botocore.exceptions.ClientError as e:
            undeletable.append((volume["VolumeId"], volume["State"], e.response["Error"]["Code"]))
    assert undeletable == [], "volumes the CLC cannot delete after the kill"
    assert ec2.describe_volumes()["Volumes"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    wait_for(lambda: all(i["State"]["Name"] == "terminated" for i in _described_instances(ec2)),
             timeout=30, interval=1, what="every instance terminated")
    volumes_dir = burst_cloud.root / "var/lib/eucalyptus/volumes"
    assert sorted(p.name for p in volumes_dir.iterdir()) == [], "the SC still holds volume files"
