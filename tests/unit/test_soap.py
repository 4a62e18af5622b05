"""eucacore.soap and the shipped WSDLs: the WSDLs are what the services generate, zeep
reads them, and the NC's SOAP face works in-process over a real NodeController on
libvirt's test:///default driver."""

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import zeep
from lxml import etree
from spyne import MethodContext
from spyne.server.null import NullServer

from eucacore import ids, messages, soap
from eucacore.config import default_config
from nc import service as nc_service
from nc.node import NodeController
from tests.cloudharness import poll_until

TNS = "{http://eucalyptus.ucsb.edu/}"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
REGENERATE = "run python -c 'from eucacore import soap; soap.generate_wsdls()'"

OPERATIONS = {
    "EucalyptusCC": {"RunInstances", "DescribeInstances", "DescribeResources", "TerminateInstances",
                     "RebootInstances", "StopInstance", "StartInstance", "GetConsoleOutput", "CreateImage",
                     "ConfigureNetwork", "DescribeNetworks", "AttachVolume", "DetachVolume"},
    "EucalyptusNC": {"ncRunInstance", "ncDescribeInstances", "ncDescribeResource", "ncTerminateInstance",
                     "ncRebootInstance", "ncStopInstance", "ncStartInstance", "ncGetConsoleOutput",
                     "ncCreateImage", "ncAttachVolume", "ncDetachVolume", "ncPowerDown"},
    "EucalyptusSC": {"CreateStorageVolume", "DeleteStorageVolume", "DescribeStorageVolumes"},
    "EucalyptusCLC": {"DescribeAccessKey", "ReportUsage"},
}

def test_every_service_has_expected_operations_listed():
    assert set(soap.SERVICES) == set(OPERATIONS)


# spyne puts every loaded subclass of eucalyptusMessage into an application's WSDL, so
# what wsdl_document returns depends on which service modules the process has imported.
# Each comparison therefore runs in a fresh interpreter with a known set of imports.
_GENERATE_ALL = """
import sys
from pathlib import Path
from eucacore import soap
soap.generate_wsdls(Path(sys.argv[1]))
"""

_GENERATE_ONE = """
import importlib, sys
from eucacore import soap
module, path = soap.SERVICES[sys.argv[1]]
app = importlib.import_module(module).application()
sys.stdout.buffer.write(soap.wsdl_document(app, "https://localhost" + path))
"""


def _python(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(soap.__file__).parents[1])


def test_shipped_wsdls_are_what_generate_wsdls_writes(tmp_path):
    proc = _python(_GENERATE_ALL, str(tmp_path))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.wsdl" for n in soap.SERVICES)
    for name in soap.SERVICES:
        generated = (tmp_path / f"{name}.wsdl").read_bytes()
        shipped = (soap.WSDL_DIR / f"{name}.wsdl").read_bytes()
        assert generated == shipped, f"eucacore/wsdl/{name}.wsdl is stale: {REGENERATE}"


def test_each_wsdl_is_the_same_when_its_service_is_generated_alone():
    """A service's WSDL describes that service only, whatever else the process imported."""
    procs = {name: _python(_GENERATE_ONE, name) for name in soap.SERVICES}
    differ = []
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        if out != (soap.WSDL_DIR / f"{name}.wsdl").read_bytes():
            differ.append(name)
    assert differ == [], f"generated alone, these differ from the shipped WSDL: {differ}"


@pytest.mark.parametrize("name", sorted(soap.SERVICES))
def test_shipped_wsdl_has_no_other_services_messages(name):
    types = set(re.findall(rb'complexType name="(\w+)"', (soap.WSDL_DIR / f"{name}.wsdl").read_bytes()))
    foreign = {b"ncRunInstanceType", b"RunInstancesType", b"CreateStorageVolumeType",
               b"DescribeAccessKeyType"} - {f"{op}Type".encode() for op in OPERATIONS[name]}
    assert types & foreign == set()


@pytest.mark.parametrize("name", sorted(soap.SERVICES))
def test_shipped_wsdl_loads_in_zeep_with_its_operations(name):
    client = zeep.Client(str(soap.WSDL_DIR / f"{name}.wsdl"))
    binding = client.wsdl.bindings.get(f"{TNS}{name}")
    assert binding is not None, list(client.wsdl.bindings)
    assert set(binding._operations) == OPERATIONS[name]
    # Clients point the packaged WSDL at any host.
    proxy = client.create_service(f"{TNS}{name}", "https://10.0.0.1:8775/x")
    assert proxy._binding_options["address"] == "https://10.0.0.1:8775/x"


@pytest.mark.parametrize("text,expected", [
    ("node1", ("node1", 8775)),
    ("node1:9000", ("node1", 9000)),
    ("10.0.0.5", ("10.0.0.5", 8775)),
    ("10.0.0.5:1234", ("10.0.0.5", 1234)),
    ("[::1]:8443", ("::1", 8443)),
    ("[::1]", ("::1", 8775)),
    ("::1", ("::1", 8775)),
    ("fe80::1", ("fe80::1", 8775)),
    ("host:notaport", ("host:notaport", 8775)),
])
def test_split_hostport(text, expected):
    assert soap.split_hostport(text, 8775) == expected


def test_euca_fault_codes():
    assert soap.EucaFault("InvalidParameter", "x").faultcode == "Client.InvalidParameter"
    server = soap.EucaFault("Unavailable", "down", client=False)
    assert server.faultcode == "Server.Unavailable"
    assert server.faultstring == "down"


# -- eucacore.messages -------------------------------------------------------------------


def test_messages_round_trip_nested_instance():
    data = {
        "instanceId": "i-12345678", "reservationId": "r-12345678", "imageId": "emi-abcdef01",
        "instanceType": {"name": "m1.small", "memory": 256, "cores": 1, "disk": 5,
                         "virtualBootRecord": [{"id": "emi-abcdef01", "guestDeviceName": "sda1", "size": 5},
                                               {"id": "none", "type": "ephemeral", "size": 1}]},
        "netParams": {"privateMacAddress": "d0:0d:12:34:56:78", "privateIp": "10.0.0.2", "vlan": 10},
        "groupNames": ["default", "web"],
        "volumes": [{"volumeId": "vol-00000001", "localDev": "/dev/vdb"}],
        "launchIndex": 0,
    }
    obj = messages.from_dict(messages.instanceType, data)
    assert isinstance(obj.instanceType, messages.virtualMachineType)
    assert isinstance(obj.instanceType.virtualBootRecord[1], messages.virtualBootRecordType)
    assert isinstance(obj.netParams, messages.netConfigType)
    assert obj.volumes[0].volumeId == "vol-00000001"
    assert messages.to_dict(obj) == data


def test_from_dict_ignores_unknown_keys_and_none():
    obj = messages.from_dict(messages.volumeType, {"volumeId": "vol-1", "bogus": 1, "state": None})
    assert messages.to_dict(obj) == {"volumeId": "vol-1"}
    assert messages.from_dict(messages.volumeType, None) is None


# -- the NC application in-process --------------------------------------------------------


@pytest.fixture
def node(tmp_path):
    n = NodeController(default_config(EUCALYPTUS=str(tmp_path), HYPERVISOR="test"))
    created = []
    yield n, created
    for instance_id in created:
        n.hypervisor.destroy(instance_id)
    n.workers.shutdown(wait=True)


def _wait(predicate, timeout=10.0):
    return bool(poll_until(predicate, timeout))


def call(app, operation, request):
    """Call ``operation`` of ``app`` in-process, as spyne's NullServer does, with a whole
    request message. (NullServer's own proxy maps keyword arguments by the message's own
    fields but builds the message by its flattened ones, so with messages that extend
    eucalyptusMessage every argument lands in the wrong field.)"""
    ctx = MethodContext(NullServer(app), MethodContext.SERVER)
    ctx.method_request_string = f"{TNS}{operation}"
    (ctx,) = app.in_protocol.generate_method_contexts(ctx)
    ctx.in_object = request
    try:
        app.process_request(ctx)
    finally:
        ctx.close()
    if ctx.out_error:
        raise ctx.out_error
    (reply,) = ctx.out_object
    return reply


def test_in_process_describe_resource(node):
    nc, _ = node
    reply = call(nc_service.application(nc), "ncDescribeResource",
                 nc_service.ncDescribeResourceType(correlationId="c-1", resourceType="instance"))
    host = nc.hypervisor.host_info()
    assert reply.correlationId == "c-1"
    assert getattr(reply, "return") is True
    assert reply.nodeStatus == "enabled"
    assert reply.hypervisor == "test"
    assert (reply.memorySizeMax, reply.numberOfCoresMax) == (host.memory_mb, host.cores)
    assert (reply.memorySizeAvailable, reply.numberOfCoresAvailable) == (host.memory_mb, host.cores)


def test_in_process_run_describe_terminate(node):
    nc, created = node
    app = nc_service.application(nc)
    instance_id = ids.new_id("i")
    created.append(instance_id)
    vm = messages.virtualMachineType(name="m1.small", memory=128, cores=1, disk=1)
    reply = call(app, "ncRunInstance", nc_service.ncRunInstanceType(
        correlationId="c-2", instanceId=instance_id, imageId="emi-12345678", instanceType=vm))
    assert reply.correlationId == "c-2"
    assert reply.instance.instanceId == instance_id
    assert reply.instance.stateName in ("Pending", "Extant")
    assert _wait(lambda: nc.instances([instance_id])[0]["stateName"] == "Extant")
    assert nc.hypervisor.state(instance_id) == "RUNNING"

    other = ids.new_id("i")  # a second, unknown id is not reported
    reply = call(app, "ncDescribeInstances", nc_service.ncDescribeInstancesType(instanceIds=[instance_id, other]))
    assert [i.instanceId for i in reply.instances] == [instance_id]
    assert reply.instances[0].stateName == "Extant"
    assert reply.instances[0].instanceType.memory == 128

    reply = call(app, "ncTerminateInstance", nc_service.ncTerminateInstanceType(instanceId=instance_id))
    assert (reply.instanceId, reply.previousState, reply.shutdownState) == (instance_id, "Extant", "Teardown")
    assert nc.hypervisor.state(instance_id) is None


def test_in_process_terminate_unknown_is_a_client_fault(node):
    nc, _ = node
    with pytest.raises(soap.EucaFault) as info:
        call(nc_service.application(nc), "ncTerminateInstance",
             nc_service.ncTerminateInstanceType(instanceId="i-00000000"))
    assert info.value.faultcode == "Client.InvalidInstanceID.NotFound"


def test_in_process_run_without_image_id_is_refused(node):
    nc, _ = node
    with pytest.raises(soap.EucaFault) as info:
        call(nc_service.application(nc), "ncRunInstance",
             nc_service.ncRunInstanceType(instanceId=ids.new_id("i")))
    assert info.value.faultcode == "Client.InvalidParameter"
    assert nc.instances() == []


def _call_wsgi(app, body: bytes):
    """One POST through the spyne WSGI app, in-process: (status, body)."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/axis2/services/EucalyptusNC", "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "8775", "SERVER_PROTOCOL": "HTTP/1.1",
               "CONTENT_TYPE": "text/xml; charset=utf-8", "CONTENT_LENGTH": str(len(body)),
               "HTTP_SOAPACTION": '"ncRunInstance"', "wsgi.input": io.BytesIO(body),
               "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "https", "wsgi.version": (1, 0),
               "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False}
    status = []
    chunks = app(environ, lambda s, h, e=None: status.append(s))
    return status[0], b"".join(chunks)


def test_zeep_request_through_nc_wsgi_app(node):
    """What a zeep client sends goes through the NC's WSGI app (lxml-validated) and back."""
    nc, created = node
    instance_id = ids.new_id("i")
    created.append(instance_id)
    client = zeep.Client(str(soap.WSDL_DIR / "EucalyptusNC.wsdl"))
    proxy = client.create_service(f"{TNS}EucalyptusNC", "https://localhost/axis2/services/EucalyptusNC")
    envelope = client.create_message(proxy, "ncRunInstance", correlationId="corr-1", instanceId=instance_id,
                                     imageId="emi-12345678",
                                     instanceType={"name": "m1.small", "memory": 128, "cores": 1, "disk": 1})
    status, body = _call_wsgi(soap.wsgi_app(nc_service.application(nc)), etree.tostring(envelope))
    assert status.startswith("200"), body
    reply = client.wsdl.bindings[f"{TNS}EucalyptusNC"].get("ncRunInstance").process_reply(etree.fromstring(body))
    assert reply.correlationId == "corr-1"
    assert reply["return"] is True
    assert reply.instance.instanceId == instance_id
    assert reply.instance.instanceType.memory == 128
    assert _wait(lambda: nc.hypervisor.state(instance_id) == "RUNNING")


def test_wsgi_app_rejects_missing_image_id_with_fault(node):
    nc, _ = node
    client = zeep.Client(str(soap.WSDL_DIR / "EucalyptusNC.wsdl"))
    proxy = client.create_service(f"{TNS}EucalyptusNC", "https://localhost/axis2/services/EucalyptusNC")
    envelope = client.create_message(proxy, "ncRunInstance", instanceId=ids.new_id("i"))
    status, body = _call_wsgi(soap.wsgi_app(nc_service.application(nc)), etree.tostring(envelope))
    assert status.startswith("500")
    fault = etree.fromstring(body).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault.findtext("faultcode").endswith("Client.InvalidParameter")
    assert "imageId is required" in fault.findtext("faultstring")
    assert nc.instances() == []
