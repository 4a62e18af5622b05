"""Choosing a node for an instance: GREEDY, ROUNDROBIN and POWERSAVE, as the original's SCHEDPOLICY,
and the capacity that placements hold until their node's reports count it.

GREEDY fills the first node (in NODES order) before the next; ROUNDROBIN takes the nodes in
turn, from where the last placement left off; POWERSAVE fills the nodes that already hold
instances, then the idle ones that are awake, before it picks one the cluster powered down
(which the cluster then wakes).
"""

import threading
from dataclasses import dataclass


@dataclass
class NodeCapacity:
    """A node as the scheduler sees it: where it is, what it has free, how many instances it holds."""

    name: str
    memory_free: int
    cores_free: int
    disk_free: int
    running: int = 0
    asleep: bool = False  # powered down (POWERSAVE): placing on it wakes it

    def fits(self, memory: int, cores: int, disk: int) -> bool:
        return self.memory_free >= memory and self.cores_free >= cores and self.disk_free >= disk

    def take(self, memory: int, cores: int, disk: int) -> None:
        self.memory_free -= memory
        self.cores_free -= cores
        self.disk_free -= disk
        self.running += 1


class Scheduler:
    """Picks nodes by policy; keeps the round-robin position between calls."""

    POLICIES = ("GREEDY", "ROUNDROBIN", "POWERSAVE")

    def __init__(self, policy: str):
        if policy not in self.POLICIES:
            raise ValueError(f"unknown scheduling policy {policy!r}")
        self.policy = policy
        self._next = 0

    def choose(self, nodes: list[NodeCapacity], memory: int, cores: int, disk: int) -> NodeCapacity | None:
        """The node to place one instance on, or None if none fits; takes the capacity from it."""
        if not nodes:
            return None
        if self.policy == "ROUNDROBIN":
            order = [nodes[(self._next + i) % len(nodes)] for i in range(len(nodes))]
        elif self.policy == "POWERSAVE":
            # Fill nodes that already run instances, then idle ones awake, before waking one.
            order = sorted(nodes, key=lambda n: (n.asleep, n.running == 0))
        else:
            order = list(nodes)
        for node in order:
            if node.fits(memory, cores, disk):
                if self.policy == "ROUNDROBIN":
                    self._next = (nodes.index(node) + 1) % len(nodes)
                node.take(memory, cores, disk)
                return node
        return None


@dataclass
class Reservation:
    """One placement's size, and when its node acknowledged it (None: not yet)."""

    memory: int
    cores: int
    disk: int
    acknowledged: float | None = None


class Reservations:
    """Capacity held by placements (new instances, restarts) that a node's reported free
    resources may not count yet.

    A reservation is made before the node is asked, so that concurrent requests never
    place more on a node than it has. It is given back when the node refuses, or once a
    poll of the node that began after the node acknowledged the placement has read the
    node's resources: those count the instance, so holding it longer would count it twice,
    and a poll that began earlier may have read figures without it.
    """

    def __init__(self):
        self._held: dict[str, dict[str, Reservation]] = {}
        self._lock = threading.Lock()

    def reserve(self, node: str, key: str, memory: int, cores: int, disk: int) -> None:
        with self._lock:
            self._held.setdefault(node, {})[key] = Reservation(memory, cores, disk)

    def acknowledge(self, node: str, key: str, when: float) -> None:
        with self._lock:
            held = self._held.get(node, {}).get(key)
            if held is not None:
                held.acknowledged = when

    def release(self, node: str, key: str) -> None:
        with self._lock:
            self._held.get(node, {}).pop(key, None)

    def settle(self, node: str, asked: float) -> None:
        """A poll of ``node`` that began at ``asked`` has read its resources."""
        with self._lock:
            held = self._held.get(node, {})
            for key in [k for k, r in held.items() if r.acknowledged is not None and r.acknowledged < asked]:
                del held[key]

    def drop_node(self, node: str) -> None:
        """The node is down: its capacity is gone, and what was held on it with it."""
        with self._lock:
            self._held.pop(node, None)

    def held(self, node: str) -> tuple[int, int, int, int]:
        """(memory, cores, disk, placements) held on ``node``."""
        with self._lock:
            held = list(self._held.get(node, {}).values())
        return (sum(r.memory for r in held), sum(r.cores for r in held), sum(r.disk for r in held), len(held))
