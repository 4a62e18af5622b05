"""The cluster controller's domain: its nodes, a cache of their instances, placement.

The CC answers the CLC from its cache, which a poller refreshes from every node
each NC_POLLING_FREQUENCY seconds; instances unseen for INSTANCE_TIMEOUT are dropped.
Instance records carry their node's ``stateName`` as it is (Pending, Extant,
Stopping, Stopped, Teardown: see nc.node), so stopped instances are reported as
such. Reboot, stop, start, console output and CreateImage go to the node that runs the
instance, and the cache takes the new state at once; a poll that read a node before such a
change does not overwrite it with what it read.

The CC also holds the security groups' rules the CLC pushes (ConfigureNetwork): the whole
current rule set of each (account, group), in ``network_groups``, durable like everything
else here, for the networking layer to enforce.
"""

import json
import logging
import threading

from eucacore import ids, pki, soap
from eucacore.config import Config, load_config
from eucacore.db import Store
from eucacore.periodic import run_periodically
from cc.scheduler import NodeCapacity, Scheduler

log = logging.getLogger("eucalyptus.cc")


def _schema_v1(db):
    db["nodes"].create({"name": str, "status": str, "resources": str, "last_seen": float}, pk="name")
    db["instances"].create({"instance_id": str, "node": str, "record": str, "state": str,
                            "last_seen": float}, pk="instance_id")


def _schema_v2(db):
    """Security groups' rules as the CLC pushes them (ConfigureNetwork): the whole current rule
    set of each (account, group), a JSON list of the original's rule form, for the networking
    layer to enforce."""
    db["network_groups"].create({"account_id": str, "name": str, "rules": str, "updated": float},
                                pk=("account_id", "name"))


MIGRATIONS = [_schema_v1, _schema_v2]

#: ConfigureNetwork's rule types and protocols (the original's, "all" for every protocol).
RULE_TYPES = ("firewall-open",)
RULE_PROTOCOLS = ("tcp", "udp", "icmp", "all")


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


class InvalidRules(Exception):
    """A ConfigureNetwork that cannot be stored as it is: nothing of it was stored."""


class ClusterController:
    """Places instances on nodes, terminates them, and keeps the cached view fresh."""

    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.state_dir() / "cc.db", MIGRATIONS)
        self.keys = pki.component_keys(config.keys_dir(), "cluster")
        self.scheduler = Scheduler(config["SCHEDPOLICY"])
        self._place_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- nodes ---------------------------------------------------------------

    def node_names(self) -> list[str]:
        """NODES from the configuration file, re-read so that registering a node needs no restart."""
        try:
            return list(load_config(self.config.path)["NODES"]) if self.config.path else list(self.config["NODES"])
        except Exception as e:  # keep the last good list if the file is being edited
            log.warning("cannot re-read NODES: %s", e)
            return list(self.config["NODES"])

    def nc(self, node: str):
        host, port = soap.split_hostport(node, self.config["NC_PORT"])
        return soap.client("EucalyptusNC", host, port, self.keys, timeout=30)

    def nodes(self) -> list[dict]:
        """Known nodes with status and last reported resources."""
        names = self.node_names()
        rows = {r["name"]: r for r in self.store.db["nodes"].rows}
        out = []
        for name in names:
            row = rows.get(name) or {"name": name, "status": "unknown", "resources": "{}", "last_seen": 0}
            out.append({**row, "resources": json.loads(row["resources"] or "{}")})
        return out

    # -- polling -------------------------------------------------------------

    def poll_once(self) -> None:
        """Refresh resources and instances from every node."""
        token = ids.current_request_id.set(ids.new_request_id())
        try:
            for name in self.node_names():
                self._poll_node(name)
            horizon = ids.now() - self.config["INSTANCE_TIMEOUT"]
            with self.store.atomic():
                self.store.db.execute("DELETE FROM instances WHERE last_seen < ?", [horizon])
        finally:
            ids.current_request_id.reset(token)

    def _poll_node(self, name: str) -> None:
        asked = ids.now()
        try:
            nc = self.nc(name)
            res = soap_to_dict(nc.ncDescribeResource(resourceType="instance"))
            reported = [soap_to_dict(i) for i in (nc.ncDescribeInstances().instances or [])]
        except Exception as e:
            log.warning("node %s unreachable: %s", name, e)
            with self.store.atomic():
                self.store.db["nodes"].upsert({"name": name, "status": "down"}, pk="name")
            return
        now = ids.now()
        with self.store.atomic():
            self.store.db["nodes"].upsert({"name": name, "status": "enabled", "resources": json.dumps(res),
                                           "last_seen": now}, pk="name")
            changed = {r["instance_id"] for r in self.store.db["instances"].rows_where("last_seen > ?", [asked])}
            for record in reported:
                if record["instanceId"] in changed:
                    continue  # an operation changed it after this poll asked: what we read is older
                record["serviceTag"] = name
                self.store.db["instances"].upsert({"instance_id": record["instanceId"], "node": name,
                                                   "record": json.dumps(record), "state": record["stateName"],
                                                   "last_seen": now}, pk="instance_id")

    def start_polling(self) -> None:
        self._poller = run_periodically("nc-poller", self.poll_once,
                                        lambda: self.config["NC_POLLING_FREQUENCY"], self._stop)

    def stop(self) -> None:
        self._stop.set()

    # -- operations ----------------------------------------------------------

    def capacities(self) -> list[NodeCapacity]:
        return [NodeCapacity(n["name"], n["resources"].get("memorySizeAvailable", 0),
                             n["resources"].get("numberOfCoresAvailable", 0),
                             n["resources"].get("diskSizeAvailable", 0))
                for n in self.nodes() if n["status"] == "enabled"]

    def run_instances(self, request: dict) -> list[dict]:
        """Place each instance of the request on a node and start it there."""
        instance_ids = request.pop("instanceIds", None) or [request.get("instanceId")]
        uuids = request.pop("uuids", None) or []
        macs = request.pop("macAddresses", None) or []
        vm = request.get("instanceType") or {}
        memory, cores, disk = int(vm.get("memory") or 0), int(vm.get("cores") or 0), int(vm.get("disk") or 0)
        placed = []
        with self._place_lock:
            capacities = self.capacities()
            for index, instance_id in enumerate(instance_ids):
                node = self.scheduler.choose(capacities, memory, cores, disk)
                if node is None:
                    raise NoCapacity(f"no node has room for {vm.get('name')} ({len(placed)} of "
                                     f"{len(instance_ids)} placed)")
                nc_request = dict(request, instanceId=instance_id, launchIndex=request.get("launchIndex", 0) + index)
                if index < len(uuids):
                    nc_request["uuid"] = uuids[index]
                if index < len(macs):
                    nc_request.setdefault("netParams", {})["privateMacAddress"] = macs[index]
                record = soap_to_dict(self.nc(node.name).ncRunInstance(**nc_request).instance)
                record["serviceTag"] = node.name
                self._remember(node.name, record)
                placed.append(record)
                self._debit(node.name, memory, cores, disk)
        return placed

    def _remember(self, node: str, record: dict) -> None:
        with self.store.atomic():
            self.store.db["instances"].upsert({"instance_id": record["instanceId"], "node": node,
                                               "record": json.dumps(record), "state": record["stateName"],
                                               "last_seen": ids.now()}, pk="instance_id")

    def _debit(self, node: str, memory: int, cores: int, disk: int) -> None:
        """Take the placed instance's size off the cached free resources until the next poll."""
        rows = list(self.store.db["nodes"].rows_where("name = ?", [node]))
        if rows:
            res = json.loads(rows[0]["resources"] or "{}")
            res["memorySizeAvailable"] = res.get("memorySizeAvailable", 0) - memory
            res["numberOfCoresAvailable"] = res.get("numberOfCoresAvailable", 0) - cores
            res["diskSizeAvailable"] = res.get("diskSizeAvailable", 0) - disk
            with self.store.atomic():
                self.store.db["nodes"].update(node, {"resources": json.dumps(res)})

    def instances(self, instance_ids: list[str] | None = None) -> list[dict]:
        rows = self.store.db["instances"].rows
        return [json.loads(r["record"]) for r in rows if not instance_ids or r["instance_id"] in instance_ids]

    def terminate_instances(self, instance_ids: list[str], force: bool = False) -> list[bool]:
        """Ask each instance's node to terminate it; True for each one that is ending."""
        results = []
        for instance_id in instance_ids:
            rows = list(self.store.db["instances"].rows_where("instance_id = ?", [instance_id]))
            if not rows:
                results.append(False)
                continue
            try:
                self.nc(rows[0]["node"]).ncTerminateInstance(instanceId=instance_id, force=force)
            except soap.Fault as e:
                log.warning("terminate %s: %s", instance_id, e.message)
            record = json.loads(rows[0]["record"])
            record["stateName"] = "Teardown"
            self._remember(rows[0]["node"], record)
            results.append(True)
        return results

    def _located(self, instance_id: str) -> tuple[str, dict]:
        """(node, cached record) of the instance, or UnknownInstance."""
        rows = list(self.store.db["instances"].rows_where("instance_id = ?", [instance_id]))
        if not rows:
            raise UnknownInstance(instance_id)
        return rows[0]["node"], json.loads(rows[0]["record"])

    def _on_node(self, node: str, operation: str, **request):
        """``operation`` of the node's NC; its faults as NodeRefused, silence as NodeUnreachable."""
        try:
            return getattr(self.nc(node), operation)(**request)
        except soap.Fault as e:
            raise NodeRefused(fault_code(e), e.message or str(e)) from None
        except soap.TransportError as e:
            raise NodeUnreachable(f"node {node} does not answer: {e}") from None

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
        """Ask the instance's node to stop it; the cache says Stopping (unless it was Stopped)."""
        node, record = self._located(instance_id)
        self._on_node(node, "ncStopInstance", instanceId=instance_id, force=force)
        if record.get("stateName") != "Stopped":
            record["stateName"] = "Stopping"
            self._remember(node, record)

    def start_instance(self, instance_id: str, instance_type: dict | None = None) -> None:
        """Start a stopped instance again on its node (its disk is there) if the node has room
        for it, of ``instance_type``'s size when it was resized while stopped; the cache says
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
            self._on_node(node, "ncStartInstance", **request)
            self._debit(node, memory, cores, 0)  # its disk never left the node
        record["stateName"] = "Pending"
        record.pop("statusMessage", None)  # why it stopped no longer holds
        if instance_type:
            record["instanceType"] = {**(record.get("instanceType") or {}), **instance_type}
        self._remember(node, record)

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

    # -- security groups' rules -----------------------------------------------------------

    def configure_network(self, account_id: str, rules: list[dict], group_names: list[str] | None = None,
                          deleted: list[str] = (), complete: bool = False) -> None:
        """Store the whole current rule set of the account's groups ``group_names`` (each
        group's rules are those of ``rules`` that name it as their destination; without
        ``group_names``, the groups the rules name), forget the groups ``deleted``, and with
        ``complete`` every other group of the account too. All of it, or InvalidRules and
        none of it."""
        if not account_id:
            raise InvalidRules("accountId is required")
        by_group: dict[str, list[dict]] = {name: [] for name in group_names or []}
        for rule in rules:
            rule = _checked_rule(rule, account_id)
            if group_names and rule["destName"] not in by_group:
                raise InvalidRules(f"rule for group {rule['destName']} which the message does not carry")
            by_group.setdefault(rule["destName"], []).append(rule)
        if set(by_group) & set(deleted):
            both = ", ".join(sorted(set(by_group) & set(deleted)))
            raise InvalidRules(f"a group is both carried and deleted: {both}")
        now = ids.now()
        with self.store.atomic() as db:
            if complete:
                db.execute("DELETE FROM network_groups WHERE account_id = ? AND name NOT IN "
                           "(SELECT value FROM json_each(?))", [account_id, json.dumps(list(by_group))])
            for name in deleted:
                db.execute("DELETE FROM network_groups WHERE account_id = ? AND name = ?", [account_id, name])
            for name, group_rules in by_group.items():
                db["network_groups"].upsert({"account_id": account_id, "name": name,
                                             "rules": json.dumps(group_rules), "updated": now},
                                            pk=("account_id", "name"))
        log.info("network rules of account %s: %d group(s) set, %d deleted%s", account_id, len(by_group),
                 len(deleted), " (complete)" if complete else "")

    def network_groups(self, account_ids: list[str] | None = None) -> list[dict]:
        """The stored groups: {"userName" (account id), "netName" (group name), "rules"}, by
        account and name."""
        rows = self.store.db["network_groups"].rows_where(order_by="account_id, name")
        return [{"userName": r["account_id"], "netName": r["name"], "rules": json.loads(r["rules"])}
                for r in rows if not account_ids or r["account_id"] in account_ids]

    def resources(self, vm_types: list[dict]) -> list[dict]:
        """For each instance type: how many fit in the cluster at most, and how many fit now."""
        nodes = [n for n in self.nodes() if n["status"] == "enabled"]
        out = []
        for vm in vm_types:
            mem, cores, disk = max(1, int(vm.get("memory") or 1)), max(1, int(vm.get("cores") or 1)), int(vm.get("disk") or 0)

            def fit(res, suffix):
                counts = [res.get(f"memorySize{suffix}", 0) // mem, res.get(f"numberOfCores{suffix}", 0) // cores]
                if disk:
                    counts.append(res.get(f"diskSize{suffix}", 0) // disk)
                return max(0, min(counts))
            out.append({"instanceType": vm, "maxInstances": sum(fit(n["resources"], "Max") for n in nodes),
                        "availableInstances": sum(fit(n["resources"], "Available") for n in nodes)})
        return out


def _checked_rule(rule: dict, account_id: str) -> dict:
    """A ConfigureNetwork rule in its stored form (lists present, ports integers), or InvalidRules."""
    rule = dict(rule)
    rule.setdefault("destUserName", account_id)
    if rule["destUserName"] != account_id:
        raise InvalidRules(f"rule for account {rule['destUserName']} in a message of account {account_id}")
    if not rule.get("destName"):
        raise InvalidRules("a rule without destName")
    if rule.get("type") not in RULE_TYPES:
        raise InvalidRules(f"rule type {rule.get('type')!r} is not one of {', '.join(RULE_TYPES)}")
    if rule.get("protocol") not in RULE_PROTOCOLS:
        raise InvalidRules(f"protocol {rule.get('protocol')!r} is not one of {', '.join(RULE_PROTOCOLS)}")
    for key in ("sourceNames", "userNames", "sourceNets"):
        rule[key] = list(rule.get(key) or [])
    if len(rule["sourceNames"]) != len(rule["userNames"]):
        raise InvalidRules("sourceNames and userNames must pair up")
    if not rule["sourceNames"] and not rule["sourceNets"]:
        raise InvalidRules(f"a rule of {rule['destName']} opens to no source")
    for key in ("portRangeMin", "portRangeMax"):
        rule[key] = int(rule[key]) if rule.get(key) is not None else -1
    return {key: rule[key] for key in ("type", "destUserName", "destName", "protocol", "portRangeMin",
                                       "portRangeMax", "sourceNets", "sourceNames", "userNames")}


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
