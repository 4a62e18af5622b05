"""The CC's view of its instances: every record its nodes reported, in memory for answering
at once, written to its database for a restart, and versioned so that the CLC can ask for
what changed since its last poll.

Each change of a record takes the next version of this process's ``epoch`` (a random id of
the process: a CLC that polled another epoch gets the whole view). Records that leave the
view leave a tombstone with their version, kept for TOMBSTONE_KEEP seconds; a CLC whose last
version is older than the tombstones kept gets the whole view too.

The records of a node that answers are what it lists, except where an operation changed a
record after the poll asked (what the poll read is older). One the node no longer lists
ends as Teardown with VANISHED as its ``statusMessage``; Teardown records it no longer lists
are forgotten after INSTANCE_TIMEOUT. The records of a node that does not answer stay as they
were.
"""

import json
import threading
from dataclasses import dataclass

from eucacore import ids
from eucacore.db import Store

#: Seconds a forgotten record's tombstone is kept for the CLC's polls.
TOMBSTONE_KEEP = 3600
#: The start of the ``statusMessage`` of an instance whose node answers but no longer has it.
VANISHED = "Server.InternalError: instance lost"
TEARDOWN = "Teardown"
#: The states of an instance on its way to another.
CHANGING = ("Pending", "Stopping")


@dataclass
class Entry:
    """One instance: its node, its record as the node reported it, its version, when its node
    last listed it, and when an operation last changed it."""

    node: str
    record: dict
    version: int
    seen: float
    changed: float = 0.0


class InstanceView:
    """The instances of one cluster, by id."""

    def __init__(self, store: Store):
        self.store = store
        self.epoch = ids.new_request_id()
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._by_node: dict[str, set[str]] = {}
        self._gone: dict[str, tuple[int, float]] = {}  # instance id -> (version, when)
        self._gone_floor = 0  # versions at or below this may have lost their tombstones
        self._version = 0
        self._dirty: set[str] = set()
        now = ids.now()
        for row in store.db["instances"].rows:
            self._version += 1
            self._index(row["instance_id"], Entry(row["node"], json.loads(row["record"]), self._version, now))

    @property
    def version(self) -> int:
        return self._version

    def _index(self, instance_id: str, entry: Entry) -> None:
        old = self._entries.get(instance_id)
        if old is not None and old.node != entry.node:
            self._by_node.get(old.node, set()).discard(instance_id)
        self._entries[instance_id] = entry
        self._by_node.setdefault(entry.node, set()).add(instance_id)

    def _set(self, instance_id: str, node: str, record: dict, seen: float, changed: float = 0.0) -> None:
        self._version += 1
        self._index(instance_id, Entry(node, record, self._version, seen, changed))
        self._gone.pop(instance_id, None)
        self._dirty.add(instance_id)

    def _forget(self, instance_id: str) -> None:
        entry = self._entries.pop(instance_id)
        self._by_node.get(entry.node, set()).discard(instance_id)
        self._version += 1
        self._gone[instance_id] = (self._version, ids.now())
        self._dirty.add(instance_id)

    # -- reading ---------------------------------------------------------------

    def get(self, instance_id: str) -> Entry | None:
        with self._lock:
            return self._entries.get(instance_id)

    def records(self, instance_ids: list[str] | None = None) -> list[dict]:
        with self._lock:
            if instance_ids:
                return [self._entries[i].record for i in instance_ids if i in self._entries]
            return [e.record for e in self._entries.values()]

    def changing_nodes(self) -> set[str]:
        """The nodes of the instances that are changing (Pending, Stopping)."""
        with self._lock:
            return {e.node for e in self._entries.values() if e.record.get("stateName") in CHANGING}

    def on_node(self, node: str) -> list[Entry]:
        with self._lock:
            return [self._entries[i] for i in self._by_node.get(node, ())]

    def changes_since(self, epoch: str | None, version: int | None) -> tuple[list[dict], list[str], bool]:
        """(records, ids gone, complete): what changed after ``version`` of ``epoch``, or every
        record (complete) when that is not this process's epoch or its tombstones are gone."""
        with self._lock:
            if epoch != self.epoch or version is None or version < self._gone_floor:
                return [e.record for e in self._entries.values()], [], True
            return ([e.record for e in self._entries.values() if e.version > version],
                    [i for i, (v, _) in self._gone.items() if v > version], False)

    # -- changing ----------------------------------------------------------------

    def put(self, node: str, record: dict) -> None:
        """An operation's new record of the instance: newer than any poll that asked before now."""
        now = ids.now()
        with self._lock:
            self._set(record["instanceId"], node, record, now, changed=now)

    def apply_poll(self, node: str, asked: float, reported: list[dict], timeout: float) -> None:
        """What a poll of ``node`` that began at ``asked`` read: its records; the node's other
        records vanished, and vanished ones unseen for ``timeout`` seconds are forgotten."""
        now = ids.now()
        with self._lock:
            listed = set()
            for record in reported:
                instance_id = record["instanceId"]
                listed.add(instance_id)
                entry = self._entries.get(instance_id)
                if entry is not None and entry.changed > asked:
                    continue  # an operation changed it after this poll asked: what we read is older
                record["serviceTag"] = node
                if entry is not None and entry.node == node and entry.record == record:
                    entry.seen = now
                else:
                    self._set(instance_id, node, record, now)
            for instance_id in self._by_node.get(node, set()) - listed:
                entry = self._entries[instance_id]
                if entry.changed > asked:
                    continue  # placed after this poll asked
                if entry.record.get("stateName") != TEARDOWN:
                    self._set(instance_id, node, dict(entry.record, stateName=TEARDOWN,
                                                      statusMessage=f"{VANISHED}: node {node} no longer has it"),
                              entry.seen)
                elif now - entry.seen > timeout:
                    self._forget(instance_id)

    def forget_nodes_except(self, nodes: list[str], timeout: float) -> None:
        """Forget the records of nodes no longer in the cluster once unseen for ``timeout``."""
        now = ids.now()
        with self._lock:
            for node in set(self._by_node) - set(nodes):
                for instance_id in list(self._by_node[node]):
                    if now - self._entries[instance_id].seen > timeout:
                        self._forget(instance_id)

    def flush(self) -> None:
        """Write the records changed since the last flush, in one transaction (flushes in
        turn, so that a later one never writes before an earlier one; readers wait for none)."""
        now = ids.now()
        with self._flush_lock:
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                rows = [{"instance_id": i, "node": e.node, "record": json.dumps(e.record),
                         "state": e.record.get("stateName", ""), "last_seen": e.seen}
                        for i in dirty if (e := self._entries.get(i)) is not None]
                gone = [i for i in dirty if i not in self._entries]
                for instance_id in [i for i, (_, when) in self._gone.items() if now - when > TOMBSTONE_KEEP]:
                    self._gone_floor = max(self._gone_floor, self._gone.pop(instance_id)[0])
            if not rows and not gone:
                return
            with self.store.atomic() as db:
                if rows:
                    db["instances"].upsert_all(rows, pk="instance_id")
                if gone:
                    db.execute("DELETE FROM instances WHERE instance_id IN (SELECT value FROM json_each(?))",
                               [json.dumps(gone)])
