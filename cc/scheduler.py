"""Choosing a node for an instance: GREEDY, ROUNDROBIN and POWERSAVE, as the original's SCHEDPOLICY."""

from dataclasses import dataclass


@dataclass
class NodeCapacity:
    """A node as the scheduler sees it: where it is and what it has free."""

    name: str
    memory_free: int
    cores_free: int
    disk_free: int
    running: int = 0

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
            # Fill nodes that already run instances before waking idle ones.
            order = sorted(nodes, key=lambda n: n.running == 0)
        else:
            order = list(nodes)
        for node in order:
            if node.fits(memory, cores, disk):
                if self.policy == "ROUNDROBIN":
                    self._next = (nodes.index(node) + 1) % len(nodes)
                node.take(memory, cores, disk)
                return node
        return None
