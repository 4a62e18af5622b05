"""The CLC learns instance state by polling its clusters, as the original did.

CC state -> EC2 state: Pending -> pending, Extant -> running, Teardown -> terminated.
Instances a cluster no longer reports end as terminated: at once if they were
shutting down, after INSTANCE_TIMEOUT if they were pending or running.
"""

import logging
import threading

from eucacore import ids, soap
from eucacore.periodic import run_periodically
from clc.cloud import Cloud
from clc.ec2.instances import record_state_change

log = logging.getLogger("eucalyptus.clc.poller")
_STATE = {"Pending": "pending", "Extant": "running", "Teardown": "terminated"}


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
        if cluster["state"] != "ENABLED":
            self._set_cluster_state(cluster, "ENABLED")
        reported = {i.instanceId: i for i in (reply.instances or [])}
        now = ids.now()
        db = self.cloud.store.db
        retry_terminate = []
        timeout = self.cloud.properties.get("cloud.vmstate.instance_timeout")
        with self.cloud.store.atomic():
            for row in db["instances"].rows_where("zone = ? AND state != 'terminated'", [cluster["partition"]]):
                seen = reported.get(row["instance_id"])
                changes = {}
                if seen is not None:
                    state = _STATE.get(seen.stateName, row["state"])
                    if row["state"] == "shutting-down" and state in ("pending", "running"):
                        retry_terminate.append(row["instance_id"])
                        state = "shutting-down"
                    if state != row["state"]:
                        changes = {"state": state, "updated": now}
                        if state == "terminated" and row["state"] != "shutting-down":
                            changes["reason"] = seen.statusMessage or "Server.InternalError: instance failed"
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
        if retry_terminate:
            try:
                self.cloud.cc(cluster).TerminateInstances(instanceIds=retry_terminate)
            except (soap.Fault, *soap.TransportError) as e:
                log.warning("cluster %s: TerminateInstances retry failed: %s", cluster["name"], e)

    def start(self) -> None:
        self._thread = run_periodically("cc-poller", self.poll_once,
                                        lambda: self.cloud.properties.get("cloud.cluster.polling_frequency"), self._stop)

    def stop(self) -> None:
        self._stop.set()
