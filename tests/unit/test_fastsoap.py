"""cc.fastsoap against spyne and zeep themselves: what it reads of a real NC's answer is what
zeep reads of it, and what it writes for the CC's DescribeInstances is what spyne writes, as
zeep (the CLC's client) reads both; the operations it does not answer reach spyne, and a
fault comes back as spyne's would. (How much faster it is: bench/bench_cc_scale.py.)"""

import pytest
import zeep

from eucacore import fastsoap
from cc import service as cc_service
from cc.cluster import soap_to_dict
from eucacore import ids, soap
from tests.unit.test_cc_cluster import SMALL, close_cluster, make_cluster, settle
from tests.unit.test_ec2_volumes import InProcessTransport


@pytest.fixture
def cluster(tmp_path):
    cc = make_cluster(tmp_path, {"node-a": {}, "node-b": {}}, SCHEDPOLICY="ROUNDROBIN")
    yield cc
    close_cluster(cc)


def cc_proxy(app):
    client = zeep.Client(str(soap.WSDL_DIR / "EucalyptusCC.wsdl"), transport=InProcessTransport(app))
    return client.create_service(f"{{{soap.TNS}}}EucalyptusCC", "https://localhost/axis2/services/EucalyptusCC")


def varied_instances(cc) -> list[str]:
    """Instances whose records have most kinds of field: lists, nested types, a volume, a
    reason, an empty user data, a stopped one."""
    instance_ids = [ids.new_id("i") for _ in range(3)]
    cc.run_instances({"instanceIds": instance_ids, "imageId": "emi-12345678", "reservationId": "r-1",
                      "instanceType": {**SMALL, "virtualBootRecord": [{"id": "emi-12345678", "size": 5}]},
                      "groupNames": ["default", "web"], "userData": "", "keyName": "k",
                      "macAddresses": ["d0:0d:00:00:00:01", "d0:0d:00:00:00:02", "d0:0d:00:00:00:03"]})
    for instance_id in instance_ids:
        settle(cc, instance_id, "Extant")
    link = cc.ncs[cc.instances(instance_ids[:1])[0]["serviceTag"]]
    disk = link.node.instance_dir / "vol.img"
    disk.write_bytes(b"\0" * 4096)
    cc.attach_volume(instance_ids[0], "vol-00000001", str(disk), "vdc")
    cc.stop_instance(instance_ids[1], force=True)
    settle(cc, instance_ids[1], "Stopped")
    return instance_ids


def test_what_it_reads_of_a_node_is_what_zeep_reads(cluster):
    varied_instances(cluster)
    read = []
    for link in cluster.ncs.values():
        by_zeep = [soap_to_dict(i) for i in link.proxy.ncDescribeInstances().instances]
        assert fastsoap.call(link.proxy, "ncDescribeInstances")["instances"] == by_zeep
        read += by_zeep
        by_zeep = soap_to_dict(link.proxy.ncDescribeResource(resourceType="instance"))
        assert fastsoap.call(link.proxy, "ncDescribeResource", resourceType="instance") == by_zeep
    assert [v["volumeId"] for r in read for v in r["volumes"]] == ["vol-00000001"]
    assert sorted(r["stateName"] for r in read) == ["Extant", "Extant", "Stopped"]
    assert {tuple(r["groupNames"]) for r in read} == {("default", "web")}


def test_what_it_writes_for_describe_instances_is_what_spyne_writes(cluster):
    instance_ids = varied_instances(cluster)
    spyne, fast = cc_proxy(soap.wsgi_app(cc_service.application(cluster))), cc_proxy(cc_service.wsgi_app(cluster))
    for request in ({}, {"instanceIds": instance_ids[:2]}, {"epoch": cluster.view.epoch, "sinceVersion": 1}):
        assert soap_to_dict(fast.DescribeInstances(**request)) == soap_to_dict(spyne.DescribeInstances(**request))
    answer = fast.DescribeInstances(correlationId="c-1")
    assert (answer.correlationId, getattr(answer, "return"), answer.complete) == ("c-1", True, True)
    assert {i.instanceId for i in answer.instances} == set(instance_ids)
    assert [v.volumeId for i in answer.instances for v in i.volumes] == ["vol-00000001"]
    assert {n.serviceTag: n.status for n in answer.nodes} == {"node-a": "enabled", "node-b": "enabled"}


def test_other_operations_and_faults_go_as_spyne_would(cluster):
    fast = cc_proxy(cc_service.wsgi_app(cluster))
    assert [r.maxInstances for r in fast.DescribeResources(instanceTypes=[SMALL]).resources] == [32]  # 16 cores each
    with pytest.raises(zeep.exceptions.Fault) as info:
        fast.GetConsoleOutput(instanceId="i-00000000")
    assert info.value.code.endswith("Client.InvalidInstanceID.NotFound")

    def refuse(request):
        raise soap.EucaFault("InvalidParameter", f"no {request.get('epoch')}")
    bad = (b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body>'
           b'<ns0:DescribeInstances xmlns:ns0="http://eucalyptus.ucsb.edu/"><ns0:sinceVersion>seven</ns0:sinceVersion>'
           b'</ns0:DescribeInstances></soap-env:Body></soap-env:Envelope>')
    for app in (soap.wsgi_app(cc_service.application(cluster)), cc_service.wsgi_app(cluster)):
        response = InProcessTransport(app).post("https://localhost/x", bad, {"Content-Type": "text/xml"})
        assert response.status_code == 500 and b"Client.SchemaValidationError" in response.content

    refusing = fastsoap.FastAnswers(soap.wsgi_app(cc_service.application(cluster)), "EucalyptusCC",
                                    {"DescribeInstances": refuse})
    with pytest.raises(zeep.exceptions.Fault) as info:
        cc_proxy(refusing).DescribeInstances(epoch="e-1")
    assert (info.value.code, info.value.message) == ("soap11env:Client.InvalidParameter", "no e-1")
