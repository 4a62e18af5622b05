"""cc.cluster and cc.service over real NodeControllers on libvirt's test:///default driver,
each reached by zeep through the NC's WSGI application in-process (no sockets): reboot,
stop, start, console output and CreateImage go to the node that runs the instance, the cache
follows, and the nodes' refusals come back as the CC's faults. ConfigureNetwork stores each
security group's whole rule set durably, and DescribeNetworks reads them back.

The placement tests (test_cc_placement.py) use the same cluster."""

import base64
import threading

import pytest
import zeep

from cc import service as cc_service
from cc.cluster import ClusterController, NoCapacity, UnknownInstance
from eucacore import ids, messages, soap
from eucacore.config import default_config
from nc import service as nc_service
from nc.node import NodeController
from tests.cloudharness import poll_until
from tests.unit.test_ec2_volumes import InProcessTransport
from tests.unit.test_soap import call

SMALL = {"name": "m1.small", "memory": 128, "cores": 1, "disk": 1}


class HookedTransport(InProcessTransport):
    """An in-process transport that runs ``before_reply(operation)`` after the app answered,
    before the caller sees the answer."""

    before_reply = None

    def post(self, address, message, headers):
        response = super().post(address, message, headers)
        if self.before_reply:
            self.before_reply(headers.get("SOAPAction", "").strip('"'))
        return response


def soap_proxy(service: str, app, path: str):
    """(a zeep proxy of ``service`` reaching the spyne ``app`` in-process, its transport)."""
    transport = HookedTransport(soap.wsgi_app(app))
    client = zeep.Client(str(soap.WSDL_DIR / f"{service}.wsdl"), transport=transport)
    return client.create_service(f"{{{soap.TNS}}}{service}", f"https://localhost{path}"), transport


class NodeLink:
    """What ``ClusterController.nc(node)`` returns: zeep calls to the node's SOAP application,
    the operations recorded in ``calls``; ``down`` makes the node unreachable, and
    ``before_reply(operation)`` runs after the node answered, before the caller sees it."""

    def __init__(self, node: NodeController):
        self.node, self.calls = node, []
        self.proxy, self.transport = soap_proxy("EucalyptusNC", nc_service.application(node),
                                                "/axis2/services/EucalyptusNC")

    @property
    def down(self):
        return self.transport.down

    @down.setter
    def down(self, value):
        self.transport.down = value

    @property
    def before_reply(self):
        return self.transport.before_reply

    @before_reply.setter
    def before_reply(self, hook):
        self.transport.before_reply = hook

    def __getattr__(self, operation):
        if operation.startswith("_"):  # zeep's own parts (the polls use them)
            return getattr(self.proxy, operation)

        def invoke(**fields):
            self.calls.append((operation, fields))
            return getattr(self.proxy, operation)(**fields)
        return invoke


def make_cluster(tmp_path, nodes: dict[str, dict], **settings):
    """A ClusterController of ``nodes`` (name -> the NC's settings, e.g. MAX_CORES), each a real
    NodeController reached in-process, polled once; ``cc.ncs`` holds their NodeLinks."""
    cc = ClusterController(default_config(EUCALYPTUS=str(tmp_path / "cc"), NODES=" ".join(nodes), **settings))
    cc.ncs = {name: NodeLink(NodeController(default_config(EUCALYPTUS=str(tmp_path / name), HYPERVISOR="test",
                                                           **caps)))
              for name, caps in nodes.items()}
    cc.nc = lambda name: cc.ncs[name]
    cc.poll_once()
    return cc


def close_cluster(cc):
    cc.stop()
    for link in cc.ncs.values():
        nc = link.node
        nc.workers.shutdown(wait=True)
        nc.power.shutdown(wait=True)
        for record in nc.instances():
            nc.hypervisor.destroy(record["instanceId"])


@pytest.fixture
def cluster(tmp_path):
    """A CC of two nodes, node-a (small: 512 MB, 2 cores) and node-b."""
    cc = make_cluster(tmp_path, {"node-a": {"MAX_MEM": 512, "MAX_CORES": 2}, "node-b": {}}, SCHEDPOLICY="GREEDY")
    yield cc
    close_cluster(cc)


def cached_state(cc, instance_id):
    records = cc.instances([instance_id])
    return records[0]["stateName"] if records else None


def settle(cc, instance_id, state, timeout=10):
    """Poll the nodes until the CC's cache shows ``state`` for the instance."""
    def seen():
        cc.poll_once()
        return cached_state(cc, instance_id) == state
    assert poll_until(seen, timeout, 0.05), cc.instances([instance_id])


def run(cc, memory=128, cores=1):
    instance_id = ids.new_id("i")
    cc.run_instances({"instanceIds": [instance_id], "imageId": "emi-12345678", "reservationId": "r-1",
                      "instanceType": {**SMALL, "memory": memory, "cores": cores}})
    settle(cc, instance_id, "Extant")
    return instance_id


def node_of(cc, instance_id):
    return cc.instances([instance_id])[0]["serviceTag"]


def test_stop_goes_to_the_instance_node_and_the_cache_says_stopping_at_once(cluster):
    instance_id = run(cluster)
    node = node_of(cluster, instance_id)
    cluster.stop_instance(instance_id)
    assert ("ncStopInstance", {"instanceId": instance_id, "force": False}) in cluster.ncs[node].calls
    other = "node-b" if node == "node-a" else "node-a"
    assert not [c for c in cluster.ncs[other].calls if c[0] == "ncStopInstance"]
    assert cached_state(cluster, instance_id) in ("Stopping", "Stopped")
    settle(cluster, instance_id, "Stopped")


def test_start_on_the_same_node_with_a_new_size(cluster):
    instance_id = run(cluster)
    node = node_of(cluster, instance_id)
    cluster.stop_instance(instance_id, force=True)
    settle(cluster, instance_id, "Stopped")
    cluster.start_instance(instance_id, {"name": "m1.medium", "memory": 256, "cores": 1, "disk": 1})
    assert cached_state(cluster, instance_id) == "Pending"
    settle(cluster, instance_id, "Extant")
    record = cluster.instances([instance_id])[0]
    assert (record["serviceTag"], record["instanceType"]["memory"]) == (node, 256)


def test_start_on_a_node_without_room_is_no_capacity(cluster):
    instance_id = ids.new_id("i")
    cluster.run_instances({"instanceIds": [instance_id], "imageId": "emi-1", "instanceType": SMALL})
    settle(cluster, instance_id, "Extant")
    assert node_of(cluster, instance_id) == "node-a"  # GREEDY: the first node
    cluster.stop_instance(instance_id, force=True)
    settle(cluster, instance_id, "Stopped")
    cluster.poll_once()  # (that poll may have read the resources before the stop was done)
    filler = run(cluster, memory=512, cores=2)  # node-a is full again
    assert node_of(cluster, filler) == "node-a"
    with pytest.raises(NoCapacity):
        cluster.start_instance(instance_id)
    assert cached_state(cluster, instance_id) == "Stopped"
    assert not [c for c in cluster.ncs["node-a"].calls if c[0] == "ncStartInstance"]


def test_reboot_forwards_known_instances_and_skips_unknown_ones(cluster):
    instance_id = run(cluster)
    cluster.reboot_instances(["i-00000000", instance_id])
    calls = [c for nc in cluster.ncs.values() for c in nc.calls if c[0] == "ncRebootInstance"]
    assert calls == [("ncRebootInstance", {"instanceId": instance_id})]
    assert cached_state(cluster, instance_id) == "Extant"


def test_console_output_comes_from_the_node(cluster):
    instance_id = run(cluster)
    nc = cluster.ncs[node_of(cluster, instance_id)].node
    (nc.instance_dir / "work" / instance_id / "console.log").write_bytes(b"Booting...\n")
    assert base64.b64decode(cluster.console_output(instance_id)) == b"Booting...\n"
    with pytest.raises(UnknownInstance):
        cluster.console_output("i-00000000")


def test_a_poll_that_read_before_a_stop_does_not_undo_it(cluster):
    instance_id = run(cluster)
    nc = cluster.ncs[node_of(cluster, instance_id)]
    stopped = threading.Event()

    def stop_after_the_read(operation):
        if operation == "ncDescribeInstances" and not stopped.is_set():
            stopped.set()
            cluster.stop_instance(instance_id)
    nc.before_reply = stop_after_the_read
    cluster.poll_once()  # read Extant, then the stop came in, then this poll writes
    assert stopped.is_set()
    assert cached_state(cluster, instance_id) in ("Stopping", "Stopped")


# -- the CC's SOAP face -------------------------------------------------------------------


def test_service_reports_stopped_instances_and_forwards_faults(cluster):
    app = cc_service.application(cluster)
    instance_id = run(cluster)
    call(app, "StopInstance", cc_service.StopInstanceType(correlationId="c-1", instanceId=instance_id))
    settle(cluster, instance_id, "Stopped")
    reply = call(app, "DescribeInstances", cc_service.DescribeInstancesType(instanceIds=[instance_id]))
    assert [(i.instanceId, i.stateName) for i in reply.instances] == [(instance_id, "Stopped")]

    # The node refuses to reboot a stopped instance; RebootInstances answers true regardless.
    reply = call(app, "RebootInstances", cc_service.RebootInstancesType(instanceIds=[instance_id]))
    assert getattr(reply, "return") is True
    assert cached_state(cluster, instance_id) == "Stopped"
    vm = messages.virtualMachineType(name="m1.medium", memory=256, cores=1, disk=1)
    call(app, "StartInstance", cc_service.StartInstanceType(instanceId=instance_id, instanceType=vm))
    settle(cluster, instance_id, "Extant")
    reply = call(app, "GetConsoleOutput", cc_service.GetConsoleOutputType(instanceId=instance_id))
    assert (reply.instanceId, reply.consoleOutput) == (instance_id, "")

    cluster.terminate_instances([instance_id])
    with pytest.raises(soap.EucaFault) as info:
        call(app, "StopInstance", cc_service.StopInstanceType(instanceId=instance_id))
    assert info.value.faultcode == "Client.IncorrectInstanceState"
    with pytest.raises(soap.EucaFault) as info:
        call(app, "StartInstance", cc_service.StartInstanceType(instanceId="i-00000000"))
    assert info.value.faultcode == "Client.InvalidInstanceID.NotFound"


def test_service_no_capacity_and_unreachable_node(cluster):
    app = cc_service.application(cluster)
    instance_id = run(cluster, memory=512, cores=2)
    node = node_of(cluster, instance_id)
    cluster.stop_instance(instance_id, force=True)
    settle(cluster, instance_id, "Stopped")
    vm = messages.virtualMachineType(name="huge", memory=10**9, cores=1, disk=1)
    with pytest.raises(soap.EucaFault) as info:
        call(app, "StartInstance", cc_service.StartInstanceType(instanceId=instance_id, instanceType=vm))
    assert info.value.faultcode == "Client.InsufficientInstanceCapacity"
    cluster.ncs[node].down = True
    with pytest.raises(soap.EucaFault) as info:
        call(app, "GetConsoleOutput", cc_service.GetConsoleOutputType(instanceId=instance_id))
    assert info.value.faultcode == "Server.Unavailable"


# -- CreateImage through the CC -----------------------------------------------------------


def test_create_image_goes_to_the_node_and_its_report_comes_back_through_the_cache(cluster):
    from tests.unit.test_nc_createimage import Walrus
    walrus = Walrus()
    try:
        app = cc_service.application(cluster)
        instance_id = run(cluster)
        node = cluster.ncs[node_of(cluster, instance_id)]
        (node.node.instance_dir / "work" / instance_id / "root").write_bytes(b"disk of " + instance_id.encode())
        call(app, "CreateImage", cc_service.CreateImageType(instanceId=instance_id, imageId="emi-000000c1",
                                                            imageURL=walrus.url("/b/emi-000000c1.img"), noReboot=True))
        assert node.calls[-1] == ("ncCreateImage", {"instanceId": instance_id, "imageId": "emi-000000c1",
                                                    "imageURL": walrus.url("/b/emi-000000c1.img"), "noReboot": True})

        def reported():
            cluster.poll_once()
            (record,) = call(app, "DescribeInstances",
                             cc_service.DescribeInstancesType(instanceIds=[instance_id])).instances
            return record.createImageStateName == "succeeded" and record
        record = poll_until(reported, 10, 0.05)
        assert record, cluster.instances([instance_id])
        assert [(t.imageId, t.bytes) for t in record.createImageTasks] == [("emi-000000c1", 8 + len(instance_id))]
        assert walrus.objects["/b/emi-000000c1.img"] == b"disk of " + instance_id.encode()
        with pytest.raises(soap.EucaFault) as info:
            call(app, "CreateImage", cc_service.CreateImageType(instanceId="i-00000000", imageId="emi-000000c2",
                                                                imageURL=walrus.url("/x")))
        assert info.value.faultcode == "Client.InvalidInstanceID.NotFound"
    finally:
        walrus.httpd.shutdown()
        walrus.httpd.server_close()
        for link in cluster.ncs.values():
            link.node.imaging.shutdown(wait=True)


# -- security groups' rules (ConfigureNetwork, DescribeNetworks) ---------------------------


ACCOUNT, OTHER = "111111111111", "222222222222"


def rule(dest, protocol="tcp", low=22, high=22, nets=(), groups=(), account=ACCOUNT):
    return {"type": "firewall-open", "destUserName": account, "destName": dest, "protocol": protocol,
            "portRangeMin": low, "portRangeMax": high, "sourceNets": list(nets),
            "sourceNames": [g for _, g in groups], "userNames": [a for a, _ in groups]}


def configure(app, account=ACCOUNT, rules=(), **fields):
    return call(app, "ConfigureNetwork", cc_service.ConfigureNetworkType(
        correlationId="c-net", accountId=account,
        rules=[messages.from_dict(cc_service.networkRuleType, r) for r in rules], **fields))


def held(app, *accounts):
    reply = call(app, "DescribeNetworks", cc_service.DescribeNetworksType(accountIds=list(accounts) or None))
    return {(g.userName, g.netName): [dict(type=r.type, destUserName=r.destUserName, destName=r.destName,
                                           protocol=r.protocol, portRangeMin=r.portRangeMin,
                                           portRangeMax=r.portRangeMax, sourceNets=list(r.sourceNets or []),
                                           sourceNames=list(r.sourceNames or []), userNames=list(r.userNames or []))
                                      for r in g.rules or []]
            for g in reply.groups or []}


@pytest.fixture
def cc_app(tmp_path):
    cc = ClusterController(default_config(EUCALYPTUS=str(tmp_path / "net-cc"), NODES=""))
    return cc, cc_service.application(cc)


def test_configure_network_stores_replaces_and_removes_a_groups_rules(cc_app):
    cc, app = cc_app
    ssh, web = rule("web", nets=["10.0.0.0/8"]), rule("web", "tcp", 80, 80, groups=[(OTHER, "lb")])
    assert getattr(configure(app, rules=[ssh, web], groupNames=["web", "db"]), "return") is True
    assert held(app) == {(ACCOUNT, "db"): [], (ACCOUNT, "web"): [ssh, web]}
    configure(app, rules=[web], groupNames=["web"])  # ssh revoked: the whole set replaces the old one
    assert held(app)[(ACCOUNT, "web")] == [web]
    configure(app, rules=[rule("db", "all", -1, -1, groups=[(ACCOUNT, "web")])])  # the original's form: no groupNames
    assert held(app)[(ACCOUNT, "db")][0]["protocol"] == "all"
    configure(app, deletedGroupNames=["db"])
    assert list(held(app)) == [(ACCOUNT, "web")]
    configure(app, OTHER, rules=[rule("lb", "icmp", -1, -1, nets=["0.0.0.0/0"], account=OTHER)])
    assert list(held(app, OTHER)) == [(OTHER, "lb")]
    reply = call(app, "DescribeNetworks", cc_service.DescribeNetworksType())
    assert (reply.mode, reply.addrsPerNet) == ("SYSTEM", 32)


def test_a_complete_configuration_forgets_the_accounts_other_groups(cc_app):
    cc, app = cc_app
    configure(app, rules=[rule("a", nets=["1.0.0.0/8"]), rule("b", nets=["2.0.0.0/8"])])
    configure(app, OTHER, rules=[rule("c", nets=["3.0.0.0/8"], account=OTHER)])
    configure(app, groupNames=["b"], rules=[rule("b", nets=["4.0.0.0/8"])], complete=True)
    assert held(app) == {(ACCOUNT, "b"): [rule("b", nets=["4.0.0.0/8"])],
                         (OTHER, "c"): [rule("c", nets=["3.0.0.0/8"], account=OTHER)]}
    configure(app, OTHER, complete=True)
    assert list(held(app)) == [(ACCOUNT, "b")]


@pytest.mark.parametrize("bad", [
    {"destUserName": OTHER}, {"destName": ""}, {"type": "firewall-close"}, {"protocol": "gre"},
    {"sourceNets": [], "sourceNames": [], "userNames": []}, {"sourceNames": ["x"], "userNames": []},
    {"destName": "not-carried"},
])
def test_a_bad_rule_is_refused_and_nothing_is_stored(cc_app, bad):
    cc, app = cc_app
    configure(app, rules=[rule("web", nets=["10.0.0.0/8"])])
    with pytest.raises(soap.EucaFault) as info:
        configure(app, rules=[rule("web", nets=["11.0.0.0/8"]), {**rule("web", nets=["12.0.0.0/8"]), **bad}],
                  groupNames=["web"])
    assert info.value.faultcode == "Client.InvalidParameter"
    assert held(app) == {(ACCOUNT, "web"): [rule("web", nets=["10.0.0.0/8"])]}
    with pytest.raises(soap.EucaFault):
        configure(app, "", rules=[rule("web", nets=["11.0.0.0/8"])])


def test_rules_survive_a_new_cluster_controller_on_the_same_state(tmp_path, cc_app):
    cc, app = cc_app
    configure(app, rules=[rule("web", nets=["10.0.0.0/8"])])
    cc.store.close()
    again = ClusterController(default_config(EUCALYPTUS=str(tmp_path / "net-cc"), NODES=""))
    assert again.network_groups() == [{"userName": ACCOUNT, "netName": "web",
                                       "rules": [rule("web", nets=["10.0.0.0/8"])]}]
