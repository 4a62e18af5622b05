"""cc.cluster's placement and its view of the nodes, over real NodeControllers on libvirt's
test:///default driver reached in-process (tests/unit/test_cc_cluster.py): capacity reserved
so that concurrent runs and stale polls never oversubscribe a node, minCount, the policies
over whole requests, POWERSAVE's idle nodes, a node that stops answering (down, its instances
kept; one that answers too late too), one that comes back without an instance (Teardown,
with the reason), the versioned DescribeInstances the CLC polls, a restarted CC, and volumes
forwarded to the instance's node."""

import threading
import time

import pytest

from cc import cluster as cluster_module
from cc import service as cc_service
from cc.cluster import NoCapacity, UnknownInstance
from cc.view import VANISHED
from eucacore import ids, soap
from tests.cloudharness import WakeOnLan, poll_until
from tests.unit.test_cc_cluster import SMALL, close_cluster, make_cluster, settle
from tests.unit.test_soap import call

TWO_CORES = {"MAX_CORES": 2}


@pytest.fixture
def clusters(tmp_path):
    """make_cluster(nodes, **settings): a CC of real nodes, closed after the test."""
    made = []

    def make(nodes, **settings):
        made.append(make_cluster(tmp_path / f"c{len(made)}", nodes, **settings))
        return made[-1]
    yield make
    for cc in made:
        close_cluster(cc)


def run(cc, count=1, min_count=None) -> list[str]:
    instance_ids = [ids.new_id("i") for _ in range(count)]
    request = {"instanceIds": instance_ids, "imageId": "emi-12345678", "reservationId": "r-1",
               "instanceType": dict(SMALL)}
    if min_count is not None:
        request["minCount"] = min_count
    return [r["instanceId"] for r in cc.run_instances(request)]


def on_nodes(cc) -> dict[str, int]:
    """How many live instances each node runs, as the nodes themselves say."""
    return {name: sum(1 for r in link.node.instances() if r["stateName"] != "Teardown")
            for name, link in cc.ncs.items()}


def status(cc, name) -> str:
    return next(n["status"] for n in cc.nodes() if n["name"] == name)


def test_concurrent_runs_never_place_more_than_a_node_has(clusters):
    cc = clusters({"node-a": TWO_CORES, "node-b": TWO_CORES}, SCHEDPOLICY="ROUNDROBIN")
    outcomes = []

    def attempt():
        try:
            outcomes.append(run(cc)[0])
        except NoCapacity:
            outcomes.append("full")
    threads = [threading.Thread(target=attempt) for _ in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o == "full" for o in outcomes) == [False] * 4 + [True] * 3
    assert on_nodes(cc) == {"node-a": 2, "node-b": 2}


def test_a_poll_that_read_resources_before_a_placement_does_not_give_its_capacity_back(clusters):
    cc = clusters({"node-a": TWO_CORES}, SCHEDPOLICY="GREEDY")
    placed = []

    def place_after_the_read(operation):
        if operation == "ncDescribeResource" and not placed:
            placed.extend(run(cc))  # the figures this poll read do not count it
    cc.ncs["node-a"].before_reply = place_after_the_read
    cc.poll_once()
    cc.ncs["node-a"].before_reply = None
    assert placed and cc.capacities()[0].cores_free == 1
    run(cc)
    with pytest.raises(NoCapacity):
        run(cc)
    cc.poll_once()
    assert on_nodes(cc) == {"node-a": 2} and cc.capacities()[0].cores_free == 0


def test_min_count_places_all_it_can_or_nothing(clusters):
    cc = clusters({"node-a": TWO_CORES, "node-b": TWO_CORES}, SCHEDPOLICY="GREEDY")
    with pytest.raises(NoCapacity):
        run(cc, 5)
    assert on_nodes(cc) == {"node-a": 0, "node-b": 0}
    assert len(run(cc, 5, min_count=3)) == 4
    assert on_nodes(cc) == {"node-a": 2, "node-b": 2}


def test_roundrobin_and_greedy_over_one_request(clusters):
    rr = clusters({"node-a": {}, "node-b": {}}, SCHEDPOLICY="ROUNDROBIN")
    placed = run(rr, 3)
    assert [r["serviceTag"] for r in rr.instances(placed)] == ["node-a", "node-b", "node-a"]
    greedy = clusters({"node-a": TWO_CORES, "node-b": TWO_CORES}, SCHEDPOLICY="GREEDY")
    placed = run(greedy, 3)
    assert [r["serviceTag"] for r in greedy.instances(placed)] == ["node-a", "node-a", "node-b"]


def test_powersave_fills_busy_nodes_and_reports_idle_ones(clusters):
    cc = clusters({"node-a": TWO_CORES, "node-b": {"MAX_CORES": 3}}, SCHEDPOLICY="POWERSAVE", POWER_IDLETHRESH=0)
    assert {status(cc, "node-a"), status(cc, "node-b")} == {"idle"}
    (first,) = run(cc)
    busy = cc.instances([first])[0]["serviceTag"]
    idle = "node-b" if busy == "node-a" else "node-a"
    cc.poll_once()
    assert (status(cc, busy), status(cc, idle)) == ("enabled", "idle")
    app = cc_service.application(cc)
    nodes = call(app, "DescribeResources", cc_service.DescribeResourcesType(instanceTypes=[])).nodes
    assert {n.serviceTag: n.status for n in nodes} == {busy: "enabled", idle: "idle"}
    room = 2 if busy == "node-a" else 3
    run(cc, room - 1)  # the busy node takes what it has room for before the idle one wakes
    assert on_nodes(cc)[busy] == room and on_nodes(cc)[idle] == 0
    run(cc)
    cc.poll_once()
    assert on_nodes(cc)[idle] == 1 and status(cc, idle) == "enabled"


def test_powersave_powers_idle_nodes_down_and_wakes_one_for_a_placement(clusters, tmp_path):
    powered = {name: {"NC_POWERDOWN_COMMAND": f"touch {tmp_path / name}.asleep", **TWO_CORES}
               for name in ("node-a", "node-b")}
    links = {}
    lan = WakeOnLan(lambda payload: [setattr(link, "down", False) for link in links.values()])
    try:
        cc = clusters(powered, SCHEDPOLICY="POWERSAVE", POWER_IDLETHRESH=0, POWER_WAKE_ADDRESS=lan.address)
        links.update(cc.ncs)
        assert {status(cc, "node-a"), status(cc, "node-b")} == {"asleep"}  # idle at the first poll
        assert poll_until(lambda: all((tmp_path / f"{n}.asleep").exists() for n in links), 5)
        assert poll_until(lambda: not any(link.node.powering_down for link in links.values()), 5)
        for link in links.values():
            link.down, link.calls[:] = True, []  # asleep: the hosts answer nothing
        cc.poll_once()
        assert all(not link.calls for link in links.values())  # asleep nodes are not polled
        assert [r["maxInstances"] for r in cc.resources([SMALL])] == [4]  # their capacity is offered
        (first,) = run(cc)
        assert lan.packets == [cluster_module.power.magic_packet("00:00:00:00:00:00")]  # lo's MAC
        woken = cc.instances([first])[0]["serviceTag"]
        settle(cc, first, "Extant")
        assert status(cc, woken) == "enabled"
        asleep = "node-b" if woken == "node-a" else "node-a"
        assert status(cc, asleep) == "asleep"
        run(cc)  # the woken node has room for a second one: no other node is woken
        assert len(lan.packets) == 1 and on_nodes(cc)[woken] == 2
    finally:
        lan.close()


def test_a_node_that_does_not_wake_is_down_and_the_instance_goes_elsewhere(clusters, tmp_path):
    powered = {"NC_POWERDOWN_COMMAND": "true", **TWO_CORES}
    lan = WakeOnLan(lambda payload: None)  # the packets wake nothing
    try:
        cc = clusters({"node-a": powered, "node-b": TWO_CORES}, SCHEDPOLICY="POWERSAVE", POWER_IDLETHRESH=0,
                      POWER_WAKE_ADDRESS=lan.address, POWER_WAKETHRESH=1)
        assert (status(cc, "node-a"), status(cc, "node-b")) == ("asleep", "idle")  # node-b has no command
        run(cc, 2)
        cc.ncs["node-a"].down = True
        assert poll_until(lambda: not cc.ncs["node-a"].node.powering_down, 5)
        with pytest.raises(NoCapacity):
            run(cc)  # node-b is full: node-a is woken, stays silent, and is down
        assert len(lan.packets) == 1 and status(cc, "node-a") == "down"
        assert on_nodes(cc) == {"node-a": 0, "node-b": 2}
    finally:
        lan.close()


def test_a_node_that_stops_answering_is_down_and_keeps_its_instances(clusters):
    cc = clusters({"node-a": TWO_CORES, "node-b": TWO_CORES}, SCHEDPOLICY="GREEDY", INSTANCE_TIMEOUT=1)
    (kept,) = run(cc)
    settle(cc, kept, "Extant")
    cc.ncs["node-a"].down = True
    cc.poll_once()
    assert status(cc, "node-a") == "down"
    assert [r["maxInstances"] for r in cc.resources([SMALL])] == [2]  # node-b's alone
    (moved,) = run(cc)
    assert cc.instances([moved])[0]["serviceTag"] == "node-b"
    settle(cc, moved, "Extant")
    cc.poll_once()
    assert cc.instances([kept])[0]["stateName"] == "Extant"  # not dropped, however long it is unseen
    reply = call(cc_service.application(cc), "DescribeInstances", cc_service.DescribeInstancesType())
    assert {n.serviceTag: n.status for n in reply.nodes} == {"node-a": "down", "node-b": "enabled"}
    assert kept in {i.instanceId for i in reply.instances}

    cc.ncs["node-a"].down = False
    cc.poll_once()
    assert status(cc, "node-a") == "enabled"
    assert cc.instances([kept])[0]["stateName"] == "Extant"


def test_a_run_on_a_node_that_went_silent_goes_to_another(clusters):
    cc = clusters({"node-a": {}, "node-b": {}}, SCHEDPOLICY="GREEDY")
    cc.ncs["node-a"].down = True  # not polled since: the cluster still thinks it enabled
    placed = run(cc, 2)
    assert {r["serviceTag"] for r in cc.instances(placed)} == {"node-b"}
    assert status(cc, "node-a") == "down"


def test_an_instance_its_node_no_longer_has_ends_and_is_forgotten(clusters):
    cc = clusters({"node-a": {}}, INSTANCE_TIMEOUT=1)
    (lost,) = run(cc)
    settle(cc, lost, "Extant")
    node = cc.ncs["node-a"].node
    node.hypervisor.destroy(lost)
    with node.store.atomic() as db:
        db["instances"].delete(lost)  # as a node that lost its state
    app = cc_service.application(cc)
    before = call(app, "DescribeInstances", cc_service.DescribeInstancesType())
    cc.poll_once()
    (record,) = cc.instances([lost])
    assert record["stateName"] == "Teardown" and record["statusMessage"].startswith(VANISHED)
    settle(cc, lost, None, timeout=5)  # unseen for INSTANCE_TIMEOUT: forgotten
    after = call(app, "DescribeInstances", cc_service.DescribeInstancesType(epoch=before.epoch,
                                                                            sinceVersion=before.version))
    assert (after.complete, after.goneInstanceIds, after.instances or []) == (False, [lost], [])


def test_describe_instances_answers_what_changed_since_a_version(clusters):
    cc = clusters({"node-a": {}})
    app = cc_service.application(cc)
    first, second = run(cc, 2)
    settle(cc, first, "Extant")
    settle(cc, second, "Extant")
    whole = call(app, "DescribeInstances", cc_service.DescribeInstancesType())
    assert whole.complete and {i.instanceId for i in whole.instances} == {first, second}
    cc.stop_instance(first)
    changed = call(app, "DescribeInstances", cc_service.DescribeInstancesType(epoch=whole.epoch,
                                                                              sinceVersion=whole.version))
    assert not changed.complete and [(i.instanceId, i.stateName) for i in changed.instances] == [(first, "Stopping")]
    assert changed.version > whole.version
    again = call(app, "DescribeInstances", cc_service.DescribeInstancesType(epoch="another-cc",
                                                                            sinceVersion=changed.version))
    assert again.complete and len(again.instances) == 2


def test_a_restarted_cluster_controller_keeps_the_instances_of_a_down_node(clusters):
    cc = clusters({"node-a": {}, "node-b": {}}, SCHEDPOLICY="GREEDY")
    (kept,) = run(cc)
    settle(cc, kept, "Extant")
    cc.stop()
    cc.store.close()
    restarted = type(cc)(cc.config)  # on the same state
    restarted.ncs, restarted.nc = cc.ncs, cc.nc
    cc.ncs["node-a"].down = True
    restarted.poll_once()
    assert restarted.instances([kept])[0]["stateName"] == "Extant"
    assert status(restarted, "node-a") == "down"
    restarted.stop()


def test_volumes_go_to_the_instance_node(clusters, tmp_path):
    cc = clusters({"node-a": {}, "node-b": {}}, SCHEDPOLICY="ROUNDROBIN")
    _, instance_id = run(cc, 2)
    settle(cc, instance_id, "Extant")
    disk = tmp_path / "vol-1.img"
    disk.write_bytes(b"\0" * 4096)
    app = cc_service.application(cc)
    call(app, "AttachVolume", cc_service.AttachVolumeType(instanceId=instance_id, volumeId="vol-00000001",
                                                          remoteDev=str(disk), localDev="/dev/vdc"))
    assert cc.ncs["node-b"].calls[-1] == ("ncAttachVolume", {"instanceId": instance_id, "volumeId": "vol-00000001",
                                                            "remoteDev": str(disk), "localDev": "/dev/vdc"})
    cc.poll_once()
    assert [v["volumeId"] for v in cc.instances([instance_id])[0]["volumes"]] == ["vol-00000001"]
    call(app, "DetachVolume", cc_service.DetachVolumeType(instanceId=instance_id, volumeId="vol-00000001",
                                                          force=True))
    assert cc.ncs["node-b"].calls[-1][0] == "ncDetachVolume"
    cc.poll_once()
    assert cc.instances([instance_id])[0]["volumes"] == []
    with pytest.raises(soap.EucaFault) as info:
        call(app, "DetachVolume", cc_service.DetachVolumeType(instanceId=instance_id, volumeId="vol-00000001"))
    assert info.value.faultcode == "Client.IncorrectState"
    with pytest.raises(UnknownInstance):
        cc.attach_volume("i-00000000", "vol-00000001", str(disk), "/dev/vdc")


def test_a_node_that_answers_too_late_is_down_until_its_answer_comes(clusters, monkeypatch):
    monkeypatch.setattr(cluster_module, "POLL_DEADLINE", 1)
    cc = clusters({"node-a": {}, "node-b": {}}, NC_POLLING_FREQUENCY=1)  # the deadline: 2 s
    answered, asked = threading.Event(), []

    def hang(operation):
        if operation == "ncDescribeInstances":
            asked.append(operation)
            answered.wait(30)
    cc.ncs["node-a"].before_reply = hang
    started = time.monotonic()
    cc.poll_once()
    assert time.monotonic() - started < 10
    assert (status(cc, "node-a"), status(cc, "node-b")) == ("down", "enabled")
    cc.poll_once()  # its poll goes on: not asked again
    assert len(asked) == 1
    cc.ncs["node-a"].before_reply = None
    answered.set()
    assert poll_until(lambda: status(cc, "node-a") == "enabled", 10, 0.05)


def test_between_full_polls_the_nodes_with_changing_instances_are_polled(clusters):
    cc = clusters({"node-a": {}, "node-b": {}}, SCHEDPOLICY="GREEDY")
    polled = []
    for name, link in cc.ncs.items():
        link.before_reply = lambda operation, name=name: operation == "ncDescribeInstances" and polled.append(name)
    cc._next_full_poll = time.monotonic() + 3600  # the next full poll is far off
    (instance_id,) = run(cc)
    assert cc.instances([instance_id])[0]["stateName"] == "Pending"
    assert poll_until(lambda: cc.poll_round() or cc.instances([instance_id])[0]["stateName"] == "Extant", 10, 0.05)
    assert set(polled) == {"node-a"}
    polled.clear()
    cc.poll_round()  # nothing is changing
    assert polled == []
    cc._next_full_poll = 0  # a full poll is due
    cc.poll_round()
    assert sorted(polled) == ["node-a", "node-b"]
