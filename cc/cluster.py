"""The cluster controller's domain: its nodes, the view of their instances, placement.

The CC answers the CLC from its view (cc.view), which a poller refreshes from every node of
NODES each NC_POLLING_FREQUENCY seconds, all nodes at once (a pool of threads, the answers
read by cc.fastsoap: a cycle over 200 nodes takes about as long as the slowest node), and in
between each CHANGING_POLL seconds from the nodes whose instances are changing. A node
that does not answer a poll in time (or an operation) is marked down: its capacity is no
longer offered and its instances stay as they were, reported with the node's status
(DescribeInstances' and DescribeResources' ``nodes``); when it answers again, its report is
the truth again (cc.view: instances it no longer has end as Teardown with a reason). A
restarted CC starts from the view it wrote and polls.

Placement (SCHEDPOLICY, cc.scheduler) offers each enabled node's free resources as it last
reported them, less what placements not yet counted in them hold (cc.scheduler.Reservations),
so concurrent RunInstances never place more on a node than it has. The instances of one
request are started on their nodes in parallel, one node's in turn; an instance whose node
does not answer is placed again on another node.

Reboot, stop, start, console output, CreateImage and volumes go to the node that runs the
instance, and the view takes the new state at once; a poll that read a node before such a
change does not overwrite it with what it read.

Under POWERSAVE a node that has held no instance for POWER_IDLETHRESH seconds is ``idle``,
and is powered down as in the original (ncPowerDown: the NC runs NC_POWERDOWN_COMMAND; a node
without one stays idle). An ``asleep`` node is not polled; its capacity is still offered, after
the awake nodes', and a placement on it wakes it with a wake-on-LAN packet to
POWER_WAKE_ADDRESS (cc.power), then waits up to POWER_WAKETHRESH seconds for it to answer.
"""

import concurrent.futures
import contextvars
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from eucacore import ids, pki, soap
from eucacore.config import Config, load_config
from eucacore.db import Store
from eucacore.periodic import run_periodically
from eucacore import fastsoap
from cc import power
from cc.netgroups import NetworkGroups
from cc.scheduler import NodeCapacity, Reservations, Scheduler
from cc.view import TEARDOWN, InstanceView

log = logging.getLogger("eucalyptus.cc")

#: Node statuses: answering (``idle`` too, under POWERSAVE), powered down by us (POWERSAVE),
#: not answering, not polled yet.
ENABLED, IDLE, ASLEEP, DOWN, UNKNOWN = "enabled", "idle", "asleep", "down", "unknown"
#: Threads that poll nodes, and that start instances on them (one node's in turn).
POLL_THREADS, LAUNCH_THREADS = 32, 16
#: Seconds a poll of a node may take at least before the node counts as down.
POLL_DEADLINE = 10
#: Seconds between polls of the nodes whose instances are changing.
CHANGING_POLL = 1


def _schema_v1(db):
    db["nodes"].create({"name": str, "status": str, "resources": str, "last_seen": float}, pk="name")
    db["instances"].create({"instance_id": str, "node": str, "record": str, "state": str,
                            "last_seen": float}, pk="instance_id")


def _schema_v2(db):
    """Security groups' rules as the CLC pushes them (cc.netgroups)."""
    db["network_groups"].create({"account_id": str, "name": str, "rules": str, "updated": float},
                                pk=("account_id", "name"))


MIGRATIONS = [_schema_v1, _schema_v2]


class NoCapacity(Exception):
    """No node can take the instance."""


class UnknownInstance(Exception):
    """The cluster has no instance of that id."""


class NodeRefused(Exception):
    """A node refused an operation: ``code`` is its fault's code (e.g. IncorrectInstanceState)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class NodeUnreachable(Exception):
    """The node that runs the instance does not answer."""


@dataclass
class Node:
    """A node of NODES as the last poll (or operation) found it."""

    name: str
    status: str = UNKNOWN
    resources: dict = field(default_factory=dict)
    last_seen: float = 0.0
    occupied: int = 0                   # instances it holds (all but Teardown ones)
    idle_since: float | None = None     # since when it holds none
    reported_idle: bool = False         # its idleness has been logged


class ClusterController:
    """Places instances on nodes, forwards operations to them, and keeps the view fresh."""

    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.state_dir() / "cc.db", MIGRATIONS)
        self.keys = pki.component_keys(config.keys_dir(), "cluster")
        self.scheduler = Scheduler(config["SCHEDPOLICY"])
        self.view = InstanceView(self.store)
        self.network = NetworkGroups(self.store)
        self.reservations = Reservations()
        # A node we powered down is still asleep after our restart; any other is polled anew.
        self._nodes: dict[str, Node] = {r["name"]: Node(r["name"], ASLEEP if r["status"] == ASLEEP else UNKNOWN,
                                                        json.loads(r["resources"] or "{}"), r["last_seen"] or 0.0)
                                        for r in self.store.db["nodes"].rows}
        self._nodes_lock = threading.Lock()
        self._place_lock = threading.Lock()
        self._wake_lock = threading.Lock()
        self._poll_pool = concurrent.futures.ThreadPoolExecutor(POLL_THREADS, thread_name_prefix="nc-poll")
        self._launch_pool = concurrent.futures.ThreadPoolExecutor(LAUNCH_THREADS, thread_name_prefix="nc-call")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._polling: set[str] = set()  # nodes whose poll goes on
        self._next_full_poll = 0.0

    # -- nodes ---------------------------------------------------------------

    def node_names(self) -> list[str]:
        """NODES from the configuration file, re-read so that registering a node needs no restart."""
        if not self.config.path or not os.path.isfile(self.config.path):  # a default_config: no file
            return list(self.config["NODES"])
        try:
            return list(load_config(self.config.path)["NODES"])
        except Exception as e:  # keep the last good list if the file is being edited
            log.warning("cannot re-read NODES: %s", e)
            return list(self.config["NODES"])

    def nc(self, node: str):
        """A zeep client of the node's NC."""
        host, port = soap.split_hostport(node, self.config["NC_PORT"])
        proxy = soap.client("EucalyptusNC", host, port, self.keys, timeout=30)
        fastsoap.widen_pool(proxy, 2 * POLL_THREADS + len(self._nodes))
        return proxy

    def _node(self, name: str) -> Node:
        with self._nodes_lock:
            return self._nodes.setdefault(name, Node(name))

    def node_status(self, node: Node) -> str:
        """The node's status as the cluster reports it: IDLE for an enabled node that has held
        no instance for POWER_IDLETHRESH seconds, under POWERSAVE."""
        if (node.status == ENABLED and self.scheduler.policy == "POWERSAVE" and node.idle_since is not None
                and ids.now() - node.idle_since >= self.config["POWER_IDLETHRESH"]):
            return IDLE
        return node.status

    def nodes(self) -> list[dict]:
        """The nodes of NODES: name, status (node_status), last reported resources, last seen."""
        out = []
        for name in self.node_names():
            node = self._node(name)
            out.append({"name": name, "status": self.node_status(node), "resources": dict(node.resources),
                        "last_seen": node.last_seen})
        return out

    def _mark_down(self, name: str, error) -> None:
        """The node does not answer: no capacity is offered on it, and none is held there."""
        node = self._node(name)
        if node.status != DOWN:
            log.warning("node %s does not answer (%s): marked down; its %d instance(s) stay as they were", name,
                        error, len(self.view.on_node(name)))
        node.status = DOWN
        self.reservations.drop_node(name)

    # -- polling -------------------------------------------------------------

    def poll_round(self) -> None:
        """A poll of every node when one is due (each NC_POLLING_FREQUENCY seconds), else a
        poll of the nodes whose instances are changing (Pending, Stopping), as the original
        polled changing instances sooner."""
        if time.monotonic() >= self._next_full_poll:
            self._next_full_poll = time.monotonic() + self.config["NC_POLLING_FREQUENCY"]
            self.poll_once()
            return
        changing = self.view.changing_nodes()
        if changing:
            self.poll_once(changing)

    def poll_once(self, only: set[str] | None = None) -> None:
        """Refresh the view and the nodes' resources from every node (or the nodes ``only``),
        all at once. A node that has not answered within POLL_DEADLINE (at least twice
        NC_POLLING_FREQUENCY) is marked down; its poll goes on, and is not started again while
        it does."""
        if self._stop.is_set():
            return
        started = time.monotonic()
        names = self.node_names()
        context = contextvars.copy_context()
        context.run(ids.current_request_id.set, ids.new_request_id())
        asleep = {n for n in names if self._node(n).status == ASLEEP}
        with self._nodes_lock:
            polled = [n for n in names if n not in self._polling and n not in asleep and (only is None or n in only)]
            self._polling.update(polled)
        polls = {self._poll_pool.submit(context.copy().run, self._poll_node, name): name for name in polled}
        deadline = max(POLL_DEADLINE, 2 * self.config["NC_POLLING_FREQUENCY"])
        _, late = concurrent.futures.wait(polls, timeout=deadline)
        for poll in late:
            self._mark_down(polls[poll], f"no answer within {deadline}s")
        if only is None:
            self.view.forget_nodes_except(names, self.config["INSTANCE_TIMEOUT"])
        self.view.flush()
        self._save_nodes(polled)
        log.debug("polled %d %snode(s) in %.3fs", len(polled), "changing " if only else "",
                  time.monotonic() - started)

    def _poll_node(self, name: str) -> None:
        asked = ids.now()
        try:
            nc = self.nc(name)
            # Instances first: resources read after them count every instance they list.
            reported = fastsoap.call(nc, "ncDescribeInstances").get("instances", [])
            resources = fastsoap.call(nc, "ncDescribeResource", resourceType="instance")
        except (soap.Fault, *soap.TransportError) as e:
            self._mark_down(name, e)
            return
        finally:
            with self._nodes_lock:
                self._polling.discard(name)
        self.view.apply_poll(name, asked, reported, self.config["INSTANCE_TIMEOUT"])
        node = self._node(name)
        self._answered(node, resources, "enabled")
        self.reservations.settle(name, asked)  # after the resources: they count what it held
        self._follow_idleness(node, sum(1 for r in reported if r.get("stateName") != TEARDOWN))

    @staticmethod
    def _answered(node: Node, resources: dict, how: str) -> None:
        """The node answered with its ``resources``: it is enabled (logged ``how`` if it was not)."""
        if node.status != ENABLED:
            log.info("node %s answers: %s", node.name, how)
        node.status, node.resources, node.last_seen = ENABLED, resources, ids.now()

    def _follow_idleness(self, node: Node, occupied: int) -> None:
        node.occupied = occupied + self.reservations.held(node.name)[3]
        if node.occupied:
            if node.reported_idle:
                log.info("node %s holds instances again: no longer idle", node.name)
            node.idle_since, node.reported_idle = None, False
            return
        if node.idle_since is None:
            node.idle_since = ids.now()
        if self.node_status(node) == IDLE and not node.reported_idle:
            node.reported_idle = True
            self._power_down(node)

    def _power_down(self, node: Node) -> None:
        """Power the idle node down (once an idle spell): ncPowerDown, under the placement lock
        so that nothing is placed on it meanwhile. A node that refuses (it got an instance, or
        has no NC_POWERDOWN_COMMAND) or cannot be woken (no MAC known) stays idle."""
        idle_for = ids.now() - node.idle_since
        if not node.resources.get("macAddress"):
            log.info("node %s idle for %ds: not powered down, its MAC address is unknown", node.name, idle_for)
            return
        with self._place_lock:
            if self.reservations.held(node.name)[3]:
                return
            try:
                self._on_node(node.name, "ncPowerDown")
            except (NodeRefused, NodeUnreachable) as e:
                log.info("node %s idle for %ds: not powered down: %s", node.name, idle_for, e)
                return
            node.status = ASLEEP
        log.info("node %s idle for %ds: powered down (POWERSAVE)", node.name, idle_for)
        self._save_nodes([node.name])

    def _wake(self, name: str) -> None:
        """Wake the asleep node (wake-on-LAN) and wait up to POWER_WAKETHRESH seconds until it
        answers; a node that does not is marked down (NodeUnreachable)."""
        with self._wake_lock:  # one wake at a time: concurrent placements on it wait for this one
            node = self._node(name)
            if node.status != ASLEEP:
                return
            power.wake_on_lan(node.resources["macAddress"], self.config["POWER_WAKE_ADDRESS"])
            log.info("node %s: woken (wake-on-LAN to %s)", name, node.resources["macAddress"])
            deadline = time.monotonic() + self.config["POWER_WAKETHRESH"]
            while not self._stop.is_set():
                asked = ids.now()
                try:
                    # A connection to a host that is still asleep waits for it (TCP retries).
                    resources = fastsoap.call(self.nc(name), "ncDescribeResource", resourceType="instance")
                except (soap.Fault, *soap.TransportError) as e:
                    if time.monotonic() >= deadline:
                        self._mark_down(name, f"not awake {self.config['POWER_WAKETHRESH']}s after wake-on-LAN: {e}")
                        raise NodeUnreachable(f"node {name} did not wake up") from None
                    time.sleep(1)
                    continue
                self._answered(node, resources, "awake")
                node.idle_since, node.reported_idle = asked, False
                self._save_nodes([name])
                return

    def _save_nodes(self, names: list[str]) -> None:
        with self.store.atomic() as db:
            db["nodes"].upsert_all([{"name": n.name, "status": n.status, "resources": json.dumps(n.resources),
                                     "last_seen": n.last_seen} for n in map(self._node, names)], pk="name")

    def start_polling(self) -> None:
        self._poller = run_periodically("nc-poller", self.poll_round,
                                        lambda: min(CHANGING_POLL, self.config["NC_POLLING_FREQUENCY"]), self._stop)

    def stop(self) -> None:
        self._stop.set()
        self._poll_pool.shutdown(wait=False, cancel_futures=True)
        self._launch_pool.shutdown(wait=False, cancel_futures=True)

    # -- placement -------------------------------------------------------------

    def capacities(self) -> list[NodeCapacity]:
        """What each enabled node offers: its reported free resources less what is held there."""
        out = []
        for n in self.nodes():
            if n["status"] not in (ENABLED, IDLE, ASLEEP):
                continue
            memory, cores, disk, placements = self.reservations.held(n["name"])
            res = n["resources"]
            out.append(NodeCapacity(n["name"], res.get("memorySizeAvailable", 0) - memory,
                                    res.get("numberOfCoresAvailable", 0) - cores,
                                    res.get("diskSizeAvailable", 0) - disk,
                                    self._node(n["name"]).occupied + placements, asleep=n["status"] == ASLEEP))
        return out

    def _plan(self, instance_ids: list[str], size: tuple[int, int, int], needed: int, name: str) -> dict[str, str]:
        """Node of each instance that fits (in order), capacity reserved for it; NoCapacity
        (and nothing reserved) if fewer than ``needed`` fit."""
        with self._place_lock:
            capacities, plan = self.capacities(), {}
            for instance_id in instance_ids:
                node = self.scheduler.choose(capacities, *size)
                if node is None:
                    break
                plan[instance_id] = node.name
            if len(plan) < needed:
                raise NoCapacity(f"not enough capacity for {needed} {name} instance(s): room for {len(plan)}")
            for instance_id, node in plan.items():
                self.reservations.reserve(node, instance_id, *size)
        return plan

    def run_instances(self, request: dict) -> list[dict]:
        """Start the request's instances (``minCount`` of them at least, else none: NoCapacity,
        or the node's refusal) on the nodes the policy picks; the records of those started."""
        instance_ids = request.pop("instanceIds", None) or [request.get("instanceId")]
        needed = int(request.pop("minCount", None) or len(instance_ids))
        vm = request.get("instanceType") or {}
        size = (int(vm.get("memory") or 0), int(vm.get("cores") or 0), int(vm.get("disk") or 0))
        nc_requests = _nc_requests(request, instance_ids, request.pop("uuids", None) or [],
                                   request.pop("macAddresses", None) or [])
        placed, failures, todo = [], {}, list(instance_ids)
        while todo:
            try:
                plan = self._plan(todo, size, max(0, needed - len(placed)), vm.get("name"))
            except NoCapacity:
                self._take_back(placed)
                raise
            started, failed = self._start_all(plan, nc_requests, size)
            placed += started
            failures.update(failed)
            todo = [i for i, e in failed.items() if isinstance(e, NodeUnreachable)]  # their node is down now
        self.view.flush()
        if len(placed) < needed:
            self._take_back(placed)
            raise next(iter(failures.values()), None) or NoCapacity(f"no node could start {vm.get('name')}")
        order = {instance_id: index for index, instance_id in enumerate(instance_ids)}
        return sorted(placed, key=lambda r: order[r["instanceId"]])

    def _start_all(self, plan: dict[str, str], nc_requests: dict[str, dict],
                   size: tuple[int, int, int]) -> tuple[list[dict], dict[str, Exception]]:
        """Start the planned instances, nodes in parallel: (records started, failure of each other)."""
        by_node: dict[str, list[str]] = {}
        for instance_id, node in plan.items():
            by_node.setdefault(node, []).append(instance_id)
        started, failed = [], {}
        for records, failures in self._on_nodes(by_node, lambda node, batch: self._start_on(
                node, [nc_requests[i] for i in batch])):
            started += records
            failed.update(failures)
        return started, failed

    def _start_on(self, node: str, nc_requests: list[dict]) -> tuple[list[dict], dict[str, Exception]]:
        """ncRunInstance of each request on ``node`` in turn; the node's refusals and silence
        are the failures (after silence the rest are not tried)."""
        started, failed, silent = [], {}, None
        if self._node(node).status == ASLEEP:
            try:
                self._wake(node)
            except NodeUnreachable as e:
                silent = e
        for nc_request in nc_requests:
            instance_id = nc_request["instanceId"]
            try:
                if silent:
                    raise silent
                record = self._on_node(node, "ncRunInstance", **nc_request).instance
            except (NodeRefused, NodeUnreachable) as e:
                self.reservations.release(node, instance_id)
                failed[instance_id] = e
                silent = e if isinstance(e, NodeUnreachable) else None
                log.warning("instance %s on node %s: %s", instance_id, node, e)
                continue
            except Exception as e:  # a worker's exception would vanish with its batch: fail the one instance
                self.reservations.release(node, instance_id)
                failed[instance_id] = NodeRefused("InternalError", f"instance {instance_id}: {e}")
                log.exception("instance %s on node %s", instance_id, node)
                continue
            self.reservations.acknowledge(node, instance_id, ids.now())
            record = soap_to_dict(record)
            record["serviceTag"] = node
            self.view.put(node, record)
            started.append(record)
        return started, failed

    def _take_back(self, placed: list[dict]) -> None:
        """Terminate instances started for a request that fails as a whole."""
        if placed:
            self.terminate_instances([r["instanceId"] for r in placed], force=True)

    def _on_nodes(self, batches: dict[str, list], work) -> list:
        """``work(node, batch)`` for every node at once (the request's id carried along); the results."""
        context = contextvars.copy_context()
        futures = [self._launch_pool.submit(context.copy().run, work, node, batch) for node, batch in batches.items()]
        return [f.result() for f in futures]

    # -- operations ----------------------------------------------------------

    def instances(self, instance_ids: list[str] | None = None) -> list[dict]:
        return self.view.records(instance_ids)

    def _located(self, instance_id: str) -> tuple[str, dict]:
        """(node, record) of the instance, or UnknownInstance."""
        entry = self.view.get(instance_id)
        if entry is None:
            raise UnknownInstance(instance_id)
        return entry.node, dict(entry.record)

    def _on_node(self, node: str, operation: str, **request):
        """``operation`` of the node's NC; its faults as NodeRefused, silence as NodeUnreachable
        (and the node marked down). A node that is down is not asked until a poll finds it back."""
        if self._node(node).status == DOWN:
            raise NodeUnreachable(f"node {node} is down")
        try:
            return getattr(self.nc(node), operation)(**request)
        except soap.Fault as e:
            raise NodeRefused(fault_code(e), e.message or str(e)) from None
        except soap.TransportError as e:
            self._mark_down(node, e)
            raise NodeUnreachable(f"node {node} does not answer: {e}") from None

    def terminate_instances(self, instance_ids: list[str], force: bool = False) -> list[bool]:
        """Ask each instance's node to terminate it (nodes in parallel); True for each one that
        is ending. One on a node that does not answer is not (its node is asked again later)."""
        by_node: dict[str, list[str]] = {}
        for instance_id in dict.fromkeys(instance_ids):
            entry = self.view.get(instance_id)
            if entry is not None:
                by_node.setdefault(entry.node, []).append(instance_id)
        ended = set()
        for done in self._on_nodes(by_node, lambda node, batch: self._terminate_on(node, batch, force)):
            ended.update(done)
        self.view.flush()
        return [i in ended for i in instance_ids]

    def _terminate_on(self, node: str, instance_ids: list[str], force: bool) -> list[str]:
        ended = []
        for instance_id in instance_ids:
            try:
                self._on_node(node, "ncTerminateInstance", instanceId=instance_id, force=force)
            except NodeRefused as e:
                log.warning("terminate %s: %s", instance_id, e.message)  # gone from the node: it ends all the same
            except NodeUnreachable as e:
                log.warning("terminate %s: %s", instance_id, e)
                break
            _, record = self._located(instance_id)
            record["stateName"] = TEARDOWN
            self.view.put(node, record)
            ended.append(instance_id)
        return ended

    def reboot_instances(self, instance_ids: list[str]) -> None:
        """Ask each instance's node to reboot it; unknown and refused ones are logged and skipped,
        as the original did (EC2's RebootInstances answers true regardless)."""
        for instance_id in instance_ids:
            try:
                node, _ = self._located(instance_id)
                self._on_node(node, "ncRebootInstance", instanceId=instance_id)
            except (UnknownInstance, NodeRefused, NodeUnreachable) as e:
                log.warning("reboot %s: %s", instance_id, e)

    def stop_instance(self, instance_id: str, force: bool = False) -> None:
        """Ask the instance's node to stop it; the view says Stopping (unless it was Stopped)."""
        node, record = self._located(instance_id)
        self._on_node(node, "ncStopInstance", instanceId=instance_id, force=force)
        if record.get("stateName") != "Stopped":
            record["stateName"] = "Stopping"
            self._keep(node, record)

    def start_instance(self, instance_id: str, instance_type: dict | None = None) -> None:
        """Start a stopped instance again on its node (its disk is there) if the node has room
        for it, of ``instance_type``'s size when it was resized while stopped; the view says
        Pending. NoCapacity if the node is full."""
        node, record = self._located(instance_id)
        request = {"instanceId": instance_id}
        if instance_type:
            request["instanceType"] = instance_type
        if record.get("stateName") in ("Pending", "Extant"):
            self._on_node(node, "ncStartInstance", **request)  # nothing to do but to ask
            return
        vm = instance_type or record.get("instanceType") or {}
        memory, cores = int(vm.get("memory") or 0), int(vm.get("cores") or 0)
        with self._place_lock:
            free = next((c for c in self.capacities() if c.name == node), None)  # None: node not polled up
            if free is not None and (free.memory_free < memory or free.cores_free < cores):
                raise NoCapacity(f"node {node} has no room to start {instance_id} ({vm.get('name')})")
            self.reservations.reserve(node, instance_id, memory, cores, 0)  # its disk never left the node
        try:
            self._on_node(node, "ncStartInstance", **request)
        except Exception:
            self.reservations.release(node, instance_id)
            raise
        self.reservations.acknowledge(node, instance_id, ids.now())
        record["stateName"] = "Pending"
        record.pop("statusMessage", None)  # why it stopped no longer holds
        if instance_type:
            record["instanceType"] = {**(record.get("instanceType") or {}), **instance_type}
        self._keep(node, record)

    def _keep(self, node: str, record: dict) -> None:
        self.view.put(node, record)
        self.view.flush()

    def console_output(self, instance_id: str) -> str:
        """The instance's console output as its node gives it: base64 of the log's tail."""
        node, _ = self._located(instance_id)
        return self._on_node(node, "ncGetConsoleOutput", instanceId=instance_id).consoleOutput or ""

    def create_image(self, instance_id: str, image_id: str, image_url: str, no_reboot: bool) -> None:
        """Ask the instance's node to copy its root disk to ``image_url`` (a presigned PUT) as
        ``image_id``; the node reports the task's progress in the instance's record."""
        node, _ = self._located(instance_id)
        self._on_node(node, "ncCreateImage", instanceId=instance_id, imageId=image_id, imageURL=image_url,
                      noReboot=no_reboot)

    def attach_volume(self, instance_id: str, volume_id: str, remote_dev: str, local_dev: str) -> None:
        """Ask the instance's node to attach the volume (``remote_dev``: where the node finds it)
        as the guest's ``local_dev``; the node reports it in the instance's record."""
        node, _ = self._located(instance_id)
        self._on_node(node, "ncAttachVolume", instanceId=instance_id, volumeId=volume_id, remoteDev=remote_dev,
                      localDev=local_dev)

    def detach_volume(self, instance_id: str, volume_id: str, remote_dev: str | None = None,
                      local_dev: str | None = None, force: bool = False) -> None:
        """Ask the instance's node to detach the volume (``force``: even if the guest holds it)."""
        node, _ = self._located(instance_id)
        self._on_node(node, "ncDetachVolume", instanceId=instance_id, volumeId=volume_id, remoteDev=remote_dev,
                      localDev=local_dev, force=force)

    # -- security groups' rules ------------------------------------------------

    def configure_network(self, account_id: str, rules: list[dict], group_names: list[str] | None = None,
                          deleted: list[str] = (), complete: bool = False) -> None:
        """See cc.netgroups.NetworkGroups.configure."""
        self.network.configure(account_id, rules, group_names, deleted, complete)

    def network_groups(self, account_ids: list[str] | None = None) -> list[dict]:
        return self.network.groups(account_ids)

    # -- capacity --------------------------------------------------------------

    def resources(self, vm_types: list[dict]) -> list[dict]:
        """For each instance type: how many fit in the cluster's enabled nodes (asleep ones too:
        they are woken for a placement) at most, and how many fit now (what placements hold taken off)."""
        enabled = {n["name"]: n for n in self.nodes() if n["status"] in (ENABLED, IDLE, ASLEEP)}
        free = {c.name: {"memorySizeAvailable": c.memory_free, "numberOfCoresAvailable": c.cores_free,
                         "diskSizeAvailable": c.disk_free} for c in self.capacities()}
        out = []
        for vm in vm_types:
            size = (max(1, int(vm.get("memory") or 1)), max(1, int(vm.get("cores") or 1)), int(vm.get("disk") or 0))
            out.append({"instanceType": vm,
                        "maxInstances": sum(_fit(n["resources"], "Max", *size) for n in enabled.values()),
                        "availableInstances": sum(_fit(res, "Available", *size) for res in free.values())})
        return out


def _fit(resources: dict, suffix: str, memory: int, cores: int, disk: int) -> int:
    """How many instances of the size fit in the node's resources ``*Max`` or ``*Available``."""
    counts = [resources.get(f"memorySize{suffix}", 0) // memory, resources.get(f"numberOfCores{suffix}", 0) // cores]
    if disk:
        counts.append(resources.get(f"diskSize{suffix}", 0) // disk)
    return max(0, min(counts))


def _nc_requests(request: dict, instance_ids: list[str], uuids: list[str], macs: list[str]) -> dict[str, dict]:
    """The ncRunInstance of each instance of a RunInstances, by instance id."""
    out = {}
    for index, instance_id in enumerate(instance_ids):
        nc_request = dict(request, instanceId=instance_id, launchIndex=request.get("launchIndex", 0) + index)
        if index < len(uuids):
            nc_request["uuid"] = uuids[index]
        if index < len(macs):
            nc_request["netParams"] = {**(request.get("netParams") or {}), "privateMacAddress": macs[index]}
        out[instance_id] = nc_request
    return out


def fault_code(fault) -> str:
    """A SOAP fault's code without its namespace prefix and Client./Server. part."""
    code = (fault.code or "").rsplit(":", 1)[-1]
    for side in ("Client.", "Server."):
        if code.startswith(side):
            return code[len(side):]
    return code or "InternalError"


def soap_to_dict(obj):
    """A zeep result as plain dicts and lists."""
    from zeep.helpers import serialize_object
    return _drop_none(serialize_object(obj, dict))


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
