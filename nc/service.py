"""The NC's SOAP face: ncRunInstance, ncDescribeInstances, ncDescribeResource, ncTerminateInstance."""

from spyne import Boolean, Integer, Long, ServiceBase, Unicode, rpc

from eucacore.messages import (BASE_FIELDS, reply, RUN_INSTANCE_FIELDS, Message, from_dict, instanceType, many, required,
                               to_dict)
from eucacore.soap import EucaFault, make_application
from nc.node import InstanceNotFound, NodeController


class ncRunInstanceType(Message):
    _type_info = BASE_FIELDS + RUN_INSTANCE_FIELDS + [("expiryTime", Long)]


class ncRunInstanceResponseType(Message):
    _type_info = BASE_FIELDS + [("instance", instanceType)]


class ncDescribeInstancesType(Message):
    _type_info = BASE_FIELDS + [("instanceIds", many(Unicode))]


class ncDescribeInstancesResponseType(Message):
    _type_info = BASE_FIELDS + [("instances", many(instanceType))]


class ncDescribeResourceType(Message):
    _type_info = BASE_FIELDS + [("resourceType", Unicode)]


class ncDescribeResourceResponseType(Message):
    _type_info = BASE_FIELDS + [("nodeStatus", Unicode), ("migrationCapable", Boolean), ("iqn", Unicode),
                  ("memorySizeMax", Integer), ("memorySizeAvailable", Integer),
                  ("diskSizeMax", Integer), ("diskSizeAvailable", Integer),
                  ("numberOfCoresMax", Integer), ("numberOfCoresAvailable", Integer),
                  ("publicSubnets", Unicode), ("hypervisor", Unicode)]


class ncTerminateInstanceType(Message):
    _type_info = BASE_FIELDS + [("instanceId", required(Unicode)), ("force", Boolean)]


class ncTerminateInstanceResponseType(Message):
    _type_info = BASE_FIELDS + [("instanceId", Unicode), ("shutdownState", Unicode), ("previousState", Unicode)]



def _required(value, name):
    if not value:
        raise EucaFault("InvalidParameter", f"{name} is required")
    return value


def application(node: NodeController | None = None):
    """The NC's spyne application, serving ``node``."""

    class NC(ServiceBase):
        @rpc(ncRunInstanceType, _returns=ncRunInstanceResponseType, _body_style="bare",
             _in_message_name="ncRunInstance", _out_message_name="ncRunInstanceResponse")
        def ncRunInstance(ctx, req):
            request = to_dict(req)
            _required(request.get("instanceId"), "instanceId")
            _required(request.get("imageId"), "imageId")
            record = node.run_instance(request)
            return reply(ncRunInstanceResponseType, req, instance=from_dict(instanceType, record))

        @rpc(ncDescribeInstancesType, _returns=ncDescribeInstancesResponseType, _body_style="bare",
             _in_message_name="ncDescribeInstances", _out_message_name="ncDescribeInstancesResponse")
        def ncDescribeInstances(ctx, req):
            records = node.instances(req.instanceIds or None)
            return reply(ncDescribeInstancesResponseType, req,
                          instances=[from_dict(instanceType, r) for r in records])

        @rpc(ncDescribeResourceType, _returns=ncDescribeResourceResponseType, _body_style="bare",
             _in_message_name="ncDescribeResource", _out_message_name="ncDescribeResourceResponse")
        def ncDescribeResource(ctx, req):
            r = node.resources()
            return reply(ncDescribeResourceResponseType, req, nodeStatus="enabled", migrationCapable=False,
                          memorySizeMax=r.memory_max, memorySizeAvailable=r.memory_free,
                          diskSizeMax=r.disk_max, diskSizeAvailable=r.disk_free,
                          numberOfCoresMax=r.cores_max, numberOfCoresAvailable=r.cores_free,
                          hypervisor=node.config["HYPERVISOR"], publicSubnets="", iqn="")

        @rpc(ncTerminateInstanceType, _returns=ncTerminateInstanceResponseType, _body_style="bare",
             _in_message_name="ncTerminateInstance", _out_message_name="ncTerminateInstanceResponse")
        def ncTerminateInstance(ctx, req):
            try:
                previous, now = node.terminate_instance(req.instanceId)
            except InstanceNotFound:
                raise EucaFault("InvalidInstanceID.NotFound", f"instance {req.instanceId} is not on this node")
            return reply(ncTerminateInstanceResponseType, req, instanceId=req.instanceId,
                          shutdownState=now, previousState=previous)

    return make_application([NC], "EucalyptusNC")
