"""cc.fastsoap against spyne and zeep themselves: what it reads of a real NC's answer is what
zeep reads of it, and what it writes for the CC's DescribeInstances is what spyne writes, as
zeep (the CLC's client) reads both; the operations it does not answer reach spyne, and a
fault comes back as spyne's would. A request it writes itself (Walrus' ReportUsage) holds
what zeep's holds and goes with zeep's headers. (How much faster it is: bench/bench_cc_scale.py.)"""

import pytest
import zeep
from lxml import etree

from eucacore import fastsoap
from cc import service as cc_service
from clc import internal as clc_internal
from clc.cloud import Cloud
from eucacore.config import default_config
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


def clc_proxy(transport):
    """A zeep proxy of the CLC's internal service over the zeep ``transport``."""
    client = zeep.Client(str(soap.WSDL_DIR / "EucalyptusCLC.wsdl"), transport=transport)
    return client.create_service(f"{{{soap.TNS}}}EucalyptusCLC", "https://localhost/services/Eucalyptus")


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


def assert_refused_as_invalid(apps, request: bytes) -> None:
    """Each of ``apps`` answers a SOAP envelope of the body ``request`` with spyne's fault for
    a request its schema does not allow."""
    envelope = (b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body>'
                + request + b'</soap-env:Body></soap-env:Envelope>')
    for app in apps:
        response = InProcessTransport(app).post("https://localhost/x", envelope, {"Content-Type": "text/xml"})
        assert response.status_code == 500 and b"Client.SchemaValidationError" in response.content


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
    assert_refused_as_invalid([soap.wsgi_app(cc_service.application(cluster)), cc_service.wsgi_app(cluster)],
                              b'<ns0:DescribeInstances xmlns:ns0="http://eucalyptus.ucsb.edu/">'
                              b'<ns0:sinceVersion>seven</ns0:sinceVersion></ns0:DescribeInstances>')

    refusing = fastsoap.FastAnswers(soap.wsgi_app(cc_service.application(cluster)), "EucalyptusCC",
                                    {"DescribeInstances": refuse})
    with pytest.raises(zeep.exceptions.Fault) as info:
        cc_proxy(refusing).DescribeInstances(epoch="e-1")
    assert (info.value.code, info.value.message) == ("soap11env:Client.InvalidParameter", "no e-1")


class RecordingTransport(InProcessTransport):
    """InProcessTransport that keeps each request's headers and body."""

    def __init__(self, app):
        super().__init__(app)
        self.sent = []

    def post(self, address, message, headers):
        self.sent.append((headers, message))
        return super().post(address, message, headers)


def content(message: bytes):
    """An XML document as (tag, attributes, text, children), whatever its prefixes."""
    def walk(element):
        return element.tag, dict(element.attrib), element.text, [walk(child) for child in element]
    return walk(etree.fromstring(message))


def test_a_written_request_is_what_zeep_writes(tmp_path):
    """The same request made by zeep and written by send: the same headers, the same XML but
    for its prefixes, the same answer from the CLC."""
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path)))
    transport = RecordingTransport(clc_internal.wsgi_app(cloud))
    proxy = clc_proxy(transport)
    events = [{"seq": 1, "accountId": "123456789012", "time": 1700000000.1234567, "storedDelta": -4096,
               "bucketsDelta": 1, "bytesIn": 2**40, "bytesOut": 0},
              {"seq": 2, "accountId": "a<&>\r'\"ü", "time": 1e-07, "storedDelta": None, "bytesOut": 7},
              {"seq": 3, "accountId": "0", "time": 0.0}]
    fields = {"source": "walrus-ü & <co>", "correlationId": "c-1", "events": events}
    try:
        by_zeep = getattr(proxy.ReportUsage(**fields), "acknowledged")
        assert fastsoap.send(proxy, "ReportUsage", fields) == {
            "correlationId": "c-1", "return": True, "acknowledged": by_zeep}
    finally:
        cloud.store.close()
    (zeep_headers, zeep_body), (headers, body) = transport.sent
    assert headers == zeep_headers == {"SOAPAction": '"ReportUsage"', "Content-Type": "text/xml; charset=utf-8"}
    assert content(body) == content(zeep_body)
    assert by_zeep == 3


def test_a_string_xml_cannot_hold_is_refused_as_by_zeep():
    proxy = clc_proxy(InProcessTransport(None))  # never reached
    for send in (lambda fields: proxy.ReportUsage(**fields),
                 lambda fields: fastsoap.send(proxy, "ReportUsage", fields)):
        with pytest.raises(ValueError):
            send({"source": "walrus\x01"})
