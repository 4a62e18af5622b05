"""The CLC learns instance state by polling its clusters, as the original did.

CC state -> EC2 state: Pending -> pending, Extant -> running, Stopping -> stopping,
Stopped -> stopped, Teardown -> terminated. A report that contradicts what the CLC
asked for (still running while stopping, still stopped while starting, alive while
shutting down) keeps the CLC's state and asks the cluster again. A running instance
reported Pending (its node boots it again after the node's restart) stays running. A guest
that shut itself down is stopped, or terminated if its instanceInitiatedShutdownBehavior
says so. Instances a cluster no longer reports end as terminated: at once if they were
shutting down, after INSTANCE_TIMEOUT otherwise. Instances on a node that does not answer
are still reported by their cluster, as they were: they keep their state. Instances a
cluster reports alive that the CLC has ended or does not know are terminated on the
cluster, so that none runs unseen.

Every cluster is polled at once, each in its own thread, so that one that does not answer
holds up no other: each cloud.cluster.polling_frequency seconds, or CHANGING_POLL while an
instance is changing (pending, stopping, shutting-down), as the original did. A poll asks for
what changed since the last one (the cluster's DescribeInstances ``epoch`` and
``sinceVersion``), and the poller keeps each cluster's whole report; the first poll of a
cluster, and any after the cluster restarted, get all of it.

Each poll also records the status of the cluster's nodes in their ``components`` rows
(ENABLED, STOPPED for one powered down under POWERSAVE, or NOTREADY for a node that does not
answer, ``last_seen`` its last change: what DescribeInstanceStatus shows), brings images made by CreateImage to available or failed as
their instances' records report the copies (clc.ec2.images.follow_image_tasks), and pushes
every security group's rules to the cluster when it is due (clc.networks: when the cluster
is ENABLED again, missed a push, or at cloud.network.resync_interval).
"""

import concurrent.futures
import logging
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

from eucacore import ids, soap
from eucacore.messages import GUEST_SHUTDOWN, START_FAILED
from eucacore.periodic import run_periodically
from clc.cloud import Cloud
from clc.ec2.images import follow_image_tasks
from clc.ec2.instances import GUEST_STOP, record_state_change, shutdown_behavior

log = logging.getLogger("eucalyptus.clc.poller")
_STATE = {"Pending": "pending", "Extant": "running", "Stopping": "stopping", "Stopped": "stopped",
          "Teardown": "terminated"}
#: Seconds between polls while an instance is changing (pending, stopping, shutting-down), the original's.
CHANGING_POLL = 3
#: A node's status as its cluster reports it -> the state of its ``components`` row.
NODE_STATES = {"enabled": "ENABLED", "idle": "ENABLED", "asleep": "STOPPED", "down": "NOTREADY"}


#: What _decide and _ask_again read of an instance's row (the poller reads every row of a zone).
_FOLLOWED_COLUMNS = "instance_id, state, reason, updated, node, private_ip, instance_type, shutdown_behavior"


def _follow(row: dict, seen) -> tuple[str, str | None, str | None]:
    """What a cluster's report ``seen`` makes of the instance ``row``: (its state, its new
    reason or None to keep it, the operation to ask the cluster for again or None)."""
    current, reported = row["state"], _STATE.get(seen.stateName, row["state"])
    message = seen.statusMessage or ""
    if current == "shutting-down":
        return ("terminated", None, None) if reported == "terminated" else (current, None, "terminate")
    if reported == "terminated":
        return reported, message or "Server.InternalError: instance failed", None
    if reported == "stopped" and message == GUEST_SHUTDOWN and current in ("pending", "running"):
        if shutdown_behavior(row) == "terminate":
            return "shutting-down", GUEST_STOP, "terminate"
        return "stopped", GUEST_STOP, None
    if current == "stopping" and reported in ("pending", "running"):
        return current, None, "stop"
    if current == "pending" and reported in ("stopping", "stopped"):
        if message.startswith(START_FAILED):
            return "stopped", f"Server.InternalError: {message}", None
        return current, None, "start" if reported == "stopped" else None
    if current == "running" and reported == "pending":
        return current, None, None  # booted again by its node (after the node's restart)
    return reported, None, None


def _decide(row: dict, seen, now: float, timeout: float) -> tuple[dict, str | None]:
    """(the columns of ``row`` to change, the operation to ask again or None) after a poll
    whose report of the instance is ``seen`` (None: not reported)."""
    if seen is None:
        if row["state"] == "shutting-down" or now - row["updated"] > timeout:
            changes = {"state": "terminated", "updated": now}
            if row["state"] != "shutting-down":
                changes["reason"] = "Server.InternalError: instance not reported by its cluster"
            return changes, None
        return {}, None
    state, reason, retry = _follow(row, seen)
    changes = {"state": state, "updated": now} if state != row["state"] else {}
    if reason is not None and reason != row["reason"]:
        changes["reason"] = reason
    if seen.serviceTag and seen.serviceTag != row["node"]:
        changes["node"] = seen.serviceTag
    if seen.privateIp and seen.privateIp != row["private_ip"]:  # learned by the node (SYSTEM mode)
        changes["private_ip"] = seen.privateIp
    return changes, retry


def _kept(record) -> SimpleNamespace:
    """What the poller uses of an instance's record (zeep's whole record is ten times bigger)."""
    net = getattr(record, "netParams", None)
    return SimpleNamespace(instanceId=record.instanceId, stateName=record.stateName,
                           statusMessage=record.statusMessage, serviceTag=record.serviceTag,
                           privateIp=getattr(net, "privateIp", None) or None,
                           createImageTasks=getattr(record, "createImageTasks", None) or [])


@dataclass
class ClusterReport:
    """The last whole report of one cluster: its epoch and version, and its instances by id."""

    epoch: str | None = None
    version: int | None = None
    instances: dict = field(default_factory=dict)

    def update(self, reply) -> None:
        """Take a DescribeInstances answer: the whole report, or what changed since ours (one
        without our fields, as the original CC's, is a whole report)."""
        if getattr(reply, "complete", None) is not False:
            self.instances = {}
        self.instances.update({i.instanceId: _kept(i) for i in reply.instances or []})
        for instance_id in getattr(reply, "goneInstanceIds", None) or []:
            self.instances.pop(instance_id, None)
        self.epoch, self.version = getattr(reply, "epoch", None), getattr(reply, "version", None)


class ClusterPoller:
    """A thread that brings the CLC's view of instances, nodes and clusters up to date."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reports: dict[str, ClusterReport] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="cc-poll")
        self._polling: set[str] = set()
        self._lock = threading.Lock()
        self._unknown_nodes: set[str] = set()

    def poll_once(self) -> None:
        """Poll every cluster at once (not one still being polled), and wait for them for
        twice the polling interval at most."""
        futures = []
        for cluster in self.cloud.clusters():
            with self._lock:
                if cluster["name"] in self._polling:
                    continue
                self._polling.add(cluster["name"])
            futures.append(self._pool.submit(self._poll_in_turn, cluster))
        concurrent.futures.wait(futures, timeout=2 * self.cloud.properties.get("cloud.cluster.polling_frequency"))

    def _poll_in_turn(self, cluster: dict) -> None:
        token = ids.current_request_id.set(ids.new_request_id())
        try:
            self._poll_cluster(cluster)
        except Exception:
            log.exception("cluster %s: poll failed", cluster["name"])
        finally:
            ids.current_request_id.reset(token)
            with self._lock:
                self._polling.discard(cluster["name"])

    def _set_cluster_state(self, cluster: dict, state: str) -> None:
        with self.cloud.store.atomic():
            self.cloud.store.db["components"].update((cluster["kind"], cluster["name"]),
                                                     {"state": state, "last_seen": ids.now()})

    def _poll_cluster(self, cluster: dict) -> None:
        report = self._reports.setdefault(cluster["name"], ClusterReport())
        try:
            reply = self.cloud.cc(cluster).DescribeInstances(epoch=report.epoch, sinceVersion=report.version)
        except (soap.Fault, *soap.TransportError) as e:
            log.warning("cluster %s unreachable: %s", cluster["name"], e)
            if cluster["state"] != "NOTREADY":
                self._set_cluster_state(cluster, "NOTREADY")
            return
        report.update(reply)
        came_back = cluster["state"] != "ENABLED"
        if came_back:
            self._set_cluster_state(cluster, "ENABLED")
        self._follow_nodes(cluster, getattr(reply, "nodes", None) or [])
        self.cloud.networks.resync_if_due(cluster, came_back)
        follow_image_tasks(self.cloud, cluster, list(report.instances.values()))
        self._follow_instances(cluster, report.instances)

    def _follow_nodes(self, cluster: dict, nodes: list) -> None:
        """Record the status of the cluster's registered nodes (ENABLED, STOPPED when powered
        down under POWERSAVE, or NOTREADY)."""
        registered = {r["name"]: r for r in self.cloud.components("node")}
        changed = []
        for node in nodes:
            state, row = NODE_STATES.get(node.status), registered.get(node.serviceTag)
            if row is None and node.serviceTag not in self._unknown_nodes:
                self._unknown_nodes.add(node.serviceTag)
                log.warning("cluster %s reports node %s, which is not registered", cluster["name"], node.serviceTag)
            if state and row is not None and (row["state"], row["partition"]) != (state, cluster["partition"]):
                changed.append((node.serviceTag, state))
        if changed:
            with self.cloud.store.atomic() as db:
                for name, state in changed:
                    db["components"].update(("node", name), {"state": state, "partition": cluster["partition"],
                                                             "last_seen": ids.now()})
                    log.info("node %s of cluster %s: %s", name, cluster["name"], state)

    def _follow_instances(self, cluster: dict, reported: dict) -> None:
        """Bring the zone's instances to what the cluster reports; ask it again what it has
        not done. Decided on what was read, then re-decided for the instances that change on
        their rows as they are in the write's transaction."""
        now, db = ids.now(), self.cloud.store.db
        timeout = self.cloud.properties.get("cloud.vmstate.instance_timeout")
        again: dict[str, list[dict]] = {"terminate": [], "stop": [], "start": []}
        changing, followed = [], set()
        for row in db["instances"].rows_where("zone = ? AND state != 'terminated'", [cluster["partition"]],
                                              select=_FOLLOWED_COLUMNS):
            followed.add(row["instance_id"])
            changes, retry = _decide(row, reported.get(row["instance_id"]), now, timeout)
            if retry:
                again[retry].append(row)
            if changes:
                changing.append(row["instance_id"])
        orphans = sorted(i for i, seen in reported.items() if i not in followed and seen.stateName != "Teardown")
        if orphans:
            log.warning("cluster %s runs instance(s) this cloud has ended or never had: terminating %s",
                        cluster["name"], " ".join(orphans))
            again["terminate"] += [{"instance_id": i} for i in orphans]
        if changing:
            with self.cloud.store.atomic():
                for instance_id in changing:
                    row = db["instances"].get(instance_id)
                    if row["state"] == "terminated":
                        continue
                    changes, _ = _decide(row, reported.get(instance_id), now, timeout)
                    if changes:
                        db["instances"].update(instance_id, changes)
                        if "state" in changes:
                            record_state_change(self.cloud, row, changes["state"])
        self._ask_again(cluster, again)

    def _ask_again(self, cluster: dict, again: dict[str, list[dict]]) -> None:
        """Repeat what the cluster has not done yet: terminations, stops, starts."""
        cc = self.cloud.cc(cluster)
        requests = []
        if again["terminate"]:
            requests.append(("TerminateInstances", {"instanceIds": [r["instance_id"] for r in again["terminate"]]}))
        requests += [("StopInstance", {"instanceId": r["instance_id"]}) for r in again["stop"]]
        types = self.cloud.instance_types() if again["start"] else {}
        for row in again["start"]:
            vm = types.get(row["instance_type"]) or {}
            requests.append(("StartInstance", {"instanceId": row["instance_id"], "instanceType": {
                "name": row["instance_type"], "memory": vm.get("memory"), "cores": vm.get("cores"),
                "disk": vm.get("disk")}}))
        for operation, request in requests:
            try:
                getattr(cc, operation)(**request)
            except (soap.Fault, *soap.TransportError) as e:
                log.warning("cluster %s: %s retry failed: %s", cluster["name"], operation, e)
                if operation == "StartInstance" and "InsufficientInstanceCapacity" in (getattr(e, "code", "") or ""):
                    self._start_refused(request["instanceId"], e.message)

    def _start_refused(self, instance_id: str, message: str) -> None:
        """A start the cluster has no room for: the instance is stopped again."""
        with self.cloud.store.atomic():
            row = self.cloud.store.db["instances"].get(instance_id)
            if row["state"] == "pending":
                self.cloud.store.db["instances"].update(instance_id, {
                    "state": "stopped", "reason": f"Server.InsufficientInstanceCapacity: {message}",
                    "updated": ids.now()})
                record_state_change(self.cloud, row, "stopped")

    def interval(self) -> float:
        """cloud.cluster.polling_frequency, or CHANGING_POLL at most while an instance is changing."""
        interval = self.cloud.properties.get("cloud.cluster.polling_frequency")
        changing = self.cloud.store.db.execute("SELECT 1 FROM instances WHERE state IN "
                                               "('pending', 'stopping', 'shutting-down') LIMIT 1").fetchone()
        return min(interval, CHANGING_POLL) if changing else interval

    def start(self) -> None:
        self._thread = run_periodically("cc-poller", self.poll_once, self.interval, self._stop)

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
