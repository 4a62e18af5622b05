"""The CC's SOAP face: RunInstances, DescribeInstances, DescribeResources, TerminateInstances."""

from spyne import Boolean, ComplexModel, Integer, ServiceBase, Unicode, rpc

from cc.cluster import ClusterController, NoCapacity
from eucacore.messages import (BASE_FIELDS, reply, RUN_INSTANCE_FIELDS, Message, TNS, from_dict, instanceType, many,
                               to_dict, virtualMachineType)
from eucacore.soap import EucaFault, make_application


class RunInstancesType(Message):
    _type_info = BASE_FIELDS + RUN_INSTANCE_FIELDS + [("minCount", Integer), ("maxCount", Integer), ("instanceIds", many(Unicode)),
                  ("uuids", many(Unicode)), ("macAddresses", many(Unicode)), ("netNames", many(Unicode))]


class RunInstancesResponseType(Message):
    _type_info = BASE_FIELDS + [("instances", many(instanceType))]


class DescribeInstancesType(Message):
    _type_info = BASE_FIELDS + [("instanceIds", many(Unicode))]


class DescribeInstancesResponseType(Message):
    _type_info = BASE_FIELDS + [("instances", many(instanceType))]


class resourceType(ComplexModel):
    __namespace__ = TNS
    _type_info = [("instanceType", virtualMachineType), ("maxInstances", Integer),
                  ("availableInstances", Integer)]


class nodeType(ComplexModel):
    __namespace__ = TNS
    _type_info = [("serviceTag", Unicode), ("iqn", Unicode), ("status", Unicode)]


class DescribeResourcesType(Message):
    _type_info = BASE_FIELDS + [("instanceTypes", many(virtualMachineType))]


class DescribeResourcesResponseType(Message):
    _type_info = BASE_FIELDS + [("resources", many(resourceType)), ("serviceTags", many(Unicode)), ("nodes", many(nodeType))]


class TerminateInstancesType(Message):
    _type_info = BASE_FIELDS + [("instanceIds", many(Unicode)), ("force", Boolean)]


class TerminateInstancesResponseType(Message):
    _type_info = BASE_FIELDS + [("isTerminated", many(Boolean))]



def application(cluster: ClusterController | None = None):
    """The CC's spyne application, serving ``cluster``."""

    class CC(ServiceBase):
        @rpc(RunInstancesType, _returns=RunInstancesResponseType, _body_style="bare",
             _in_message_name="RunInstances", _out_message_name="RunInstancesResponse")
        def RunInstances(ctx, req):
            request = to_dict(req)
            for key in ("minCount", "maxCount", "netNames", "correlationId", "userId", "statusMessage", "return"):
                request.pop(key, None)
            if not request.get("instanceIds"):
                raise EucaFault("InvalidParameter", "instanceIds is required")
            try:
                records = cluster.run_instances(request)
            except NoCapacity as e:
                raise EucaFault("InsufficientInstanceCapacity", str(e))
            return reply(RunInstancesResponseType, req, instances=[from_dict(instanceType, r) for r in records])

        @rpc(DescribeInstancesType, _returns=DescribeInstancesResponseType, _body_style="bare",
             _in_message_name="DescribeInstances", _out_message_name="DescribeInstancesResponse")
        def DescribeInstances(ctx, req):
            records = cluster.instances(req.instanceIds or None)
            return reply(DescribeInstancesResponseType, req, instances=[from_dict(instanceType, r) for r in records])

        @rpc(DescribeResourcesType, _returns=DescribeResourcesResponseType, _body_style="bare",
             _in_message_name="DescribeResources", _out_message_name="DescribeResourcesResponse")
        def DescribeResources(ctx, req):
            vm_types = [to_dict(v) for v in (req.instanceTypes or [])]
            resources = cluster.resources(vm_types)
            nodes = cluster.nodes()
            return reply(DescribeResourcesResponseType, req,
                          resources=[resourceType(instanceType=from_dict(virtualMachineType, r["instanceType"]),
                                                  maxInstances=r["maxInstances"],
                                                  availableInstances=r["availableInstances"]) for r in resources],
                          serviceTags=[n["name"] for n in nodes],
                          nodes=[nodeType(serviceTag=n["name"], iqn="", status=n["status"]) for n in nodes])

        @rpc(TerminateInstancesType, _returns=TerminateInstancesResponseType, _body_style="bare",
             _in_message_name="TerminateInstances", _out_message_name="TerminateInstancesResponse")
        def TerminateInstances(ctx, req):
            return reply(TerminateInstancesResponseType, req,
                          isTerminated=cluster.terminate_instances(req.instanceIds or [], bool(req.force)))

    return make_application([CC], "EucalyptusCC")
