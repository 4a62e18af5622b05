"""cc.scheduler: GREEDY, ROUNDROBIN and POWERSAVE placement, capacity accounting, reservations."""

import pytest

from cc.scheduler import NodeCapacity, Reservations, Scheduler


def nodes(count=3, memory=1024, cores=4, disk=50, running=None):
    running = running or [0] * count
    return [NodeCapacity(f"node{i}", memory, cores, disk, running[i]) for i in range(count)]


def place(scheduler, pool, times, memory=256, cores=1, disk=5):
    return [getattr(scheduler.choose(pool, memory, cores, disk), "name", None) for _ in range(times)]


def test_greedy_fills_the_first_node_before_the_next():
    pool = nodes()
    assert place(Scheduler("GREEDY"), pool, 6) == ["node0"] * 4 + ["node1"] * 2
    assert (pool[0].memory_free, pool[1].memory_free, pool[2].memory_free) == (0, 512, 1024)


def test_roundrobin_rotates_across_calls():
    assert place(Scheduler("ROUNDROBIN"), nodes(), 7) == ["node0", "node1", "node2"] * 2 + ["node0"]


def test_roundrobin_skips_a_full_node_and_continues_after_the_one_chosen():
    pool = nodes()
    pool[1].memory_free = 0
    assert place(Scheduler("ROUNDROBIN"), pool, 4) == ["node0", "node2", "node0", "node2"]


def test_roundrobin_position_is_per_scheduler():
    pool = nodes()
    first, second = Scheduler("ROUNDROBIN"), Scheduler("ROUNDROBIN")
    assert place(first, pool, 2) == ["node0", "node1"]
    assert place(second, pool, 1) == ["node0"]


def test_powersave_prefers_nodes_already_running():
    pool = nodes(running=[0, 0, 2])
    # node2 (already running two) takes all four it has room for; then node0 wakes up.
    assert place(Scheduler("POWERSAVE"), pool, 6) == ["node2"] * 4 + ["node0", "node0"]
    assert [n.running for n in pool] == [2, 0, 6]


def test_powersave_wakes_an_idle_node_only_when_busy_ones_are_full():
    pool = nodes(running=[0, 1, 0])
    pool[1].cores_free = 0
    assert place(Scheduler("POWERSAVE"), pool, 1) == ["node0"]


@pytest.mark.parametrize("policy", Scheduler.POLICIES)
def test_none_when_nothing_fits(policy):
    pool = nodes(memory=512, cores=2, disk=10)
    scheduler = Scheduler(policy)
    assert scheduler.choose(pool, 1024, 1, 1) is None
    assert scheduler.choose(pool, 128, 4, 1) is None
    assert scheduler.choose(pool, 128, 1, 20) is None
    assert scheduler.choose([], 1, 1, 1) is None
    assert [(n.memory_free, n.cores_free, n.disk_free, n.running) for n in pool] == [(512, 2, 10, 0)] * 3


@pytest.mark.parametrize("policy", Scheduler.POLICIES)
def test_capacity_is_taken_until_exhausted(policy):
    pool = nodes(count=2, memory=512, cores=2, disk=10)
    scheduler = Scheduler(policy)
    chosen = place(scheduler, pool, 5, memory=256, cores=1, disk=5)
    assert sorted(chosen[:4]) == ["node0", "node0", "node1", "node1"]
    assert chosen[4] is None
    assert all((n.memory_free, n.cores_free, n.disk_free, n.running) == (0, 0, 0, 2) for n in pool)


def test_exact_fit_is_a_fit():
    node = NodeCapacity("n", 256, 1, 5)
    assert node.fits(256, 1, 5)
    assert not node.fits(257, 1, 5)


@pytest.mark.parametrize("policy", ["greedy", "RANDOM", ""])
def test_unknown_policy(policy):
    with pytest.raises(ValueError, match="unknown scheduling policy"):
        Scheduler(policy)


# -- reservations ----------------------------------------------------------------------------------


def test_a_reservation_holds_until_a_poll_begun_after_its_acknowledgement():
    held = Reservations()
    held.reserve("node0", "i-1", 256, 1, 5)
    held.reserve("node0", "i-2", 256, 1, 5)
    assert held.held("node0") == (512, 2, 10, 2)
    held.settle("node0", asked=100.0)  # neither acknowledged yet: the node may not have them
    assert held.held("node0")[3] == 2
    held.acknowledge("node0", "i-1", 101.0)
    held.acknowledge("node0", "i-2", 99.0)
    held.settle("node0", asked=100.0)  # read before i-1 was acknowledged, after i-2 was
    assert held.held("node0") == (256, 1, 5, 1)
    held.settle("node0", asked=102.0)
    assert held.held("node0") == (0, 0, 0, 0)


def test_a_refused_placement_and_a_down_node_hold_nothing():
    held = Reservations()
    held.reserve("node0", "i-1", 256, 1, 5)
    held.reserve("node1", "i-2", 256, 1, 5)
    held.release("node0", "i-1")
    held.drop_node("node1")
    assert held.held("node0") == held.held("node1") == (0, 0, 0, 0)
    held.acknowledge("node1", "i-2", 1.0)  # acknowledged after the node went down: nothing to hold
    assert held.held("node1") == (0, 0, 0, 0)
