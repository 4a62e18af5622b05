"""The CLC learns instance state by polling its clusters, as the original did.

CC state -> EC2 state: Pending -> pending, Extant -> running, Stopping -> stopping,
Stopped -> stopped, Teardown -> terminated. A report that contradicts what the CLC
asked for (still running while stopping, still stopped while starting, alive while
shutting down) keeps the CLC's state and asks the cluster again. A guest that shut
itself down is stopped, or terminated if its instanceInitiatedShutdownBehavior says so.
Instances a cluster no longer reports end as terminated: at once if they were
shutting down, after INSTANCE_TIMEOUT otherwise.

Each poll also brings images made by CreateImage to available or failed as their instances'
records report the copies (clc.ec2.images.follow_image_tasks), and pushes every security
group's rules to the cluster when it is due (clc.networks: when the cluster is ENABLED again,
missed a push, or at cloud.network.resync_interval).
"""

import logging
import threading

from eucacore import ids, soap
from eucacore.messages import GUEST_SHUTDOWN, START_FAILED
from eucacore.periodic import run_periodically
from clc.cloud import Cloud
from clc.ec2.images import follow_image_tasks
from clc.ec2.instances import GUEST_STOP, record_state_change, shutdown_behavior

log = logging.getLogger("eucalyptus.clc.poller")
_STATE = {"Pending": "pending", "Extant": "running", "Stopping": "stopping", "Stopped": "stopped",
          "Teardown": "terminated"}


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
    return reported, None, None


class ClusterPoller:
    """A thread that brings the CLC's view of instances and clusters up to date."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> None:
        token = ids.current_request_id.set(ids.new_request_id())
        try:
            for cluster in self.cloud.clusters():
                self._poll_cluster(cluster)
        finally:
            ids.current_request_id.reset(token)

    def _set_cluster_state(self, cluster: dict, state: str) -> None:
        with self.cloud.store.atomic():
            self.cloud.store.db["components"].update((cluster["kind"], cluster["name"]),
                                                     {"state": state, "last_seen": ids.now()})

    def _poll_cluster(self, cluster: dict) -> None:
        try:
            reply = self.cloud.cc(cluster).DescribeInstances()
        except (soap.Fault, *soap.TransportError) as e:
            log.warning("cluster %s unreachable: %s", cluster["name"], e)
            if cluster["state"] != "NOTREADY":
                self._set_cluster_state(cluster, "NOTREADY")
            return
        came_back = cluster["state"] != "ENABLED"
        if came_back:
            self._set_cluster_state(cluster, "ENABLED")
        self.cloud.networks.resync_if_due(cluster, came_back)
        follow_image_tasks(self.cloud, cluster, reply.instances or [])
        reported = {i.instanceId: i for i in (reply.instances or [])}
        now = ids.now()
        db = self.cloud.store.db
        again = {"terminate": [], "stop": [], "start": []}
        timeout = self.cloud.properties.get("cloud.vmstate.instance_timeout")
        with self.cloud.store.atomic():
            for row in db["instances"].rows_where("zone = ? AND state != 'terminated'", [cluster["partition"]]):
                seen = reported.get(row["instance_id"])
                changes = {}
                if seen is not None:
                    state, reason, retry = _follow(row, seen)
                    if retry:
                        again[retry].append(row)
                    if state != row["state"]:
                        changes = {"state": state, "updated": now}
                    if reason is not None:
                        changes["reason"] = reason
                    if seen.serviceTag and seen.serviceTag != row["node"]:
                        changes["node"] = seen.serviceTag
                elif row["state"] == "shutting-down" or now - row["updated"] > timeout:
                    changes = {"state": "terminated", "updated": now}
                    if row["state"] != "shutting-down":
                        changes["reason"] = "Server.InternalError: instance not reported by its cluster"
                if changes:
                    db["instances"].update(row["instance_id"], changes)
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

    def start(self) -> None:
        self._thread = run_periodically("cc-poller", self.poll_once,
                                        lambda: self.cloud.properties.get("cloud.cluster.polling_frequency"), self._stop)

    def stop(self) -> None:
        self._stop.set()
