"""The NC's SOAP face: ncRunInstance, ncDescribeInstances, ncDescribeResource, ncTerminateInstance,
ncRebootInstance, ncStopInstance, ncStartInstance, ncGetConsoleOutput, ncCreateImage,
ncAttachVolume, ncDetachVolume, ncPowerDown.

ncDescribeResource's ``hypervisor`` says how guests run here: "kvm", "qemu-tcg" (software
emulation, where /dev/kvm is missing or does not work) or "test" (libvirt's test driver).

ncAttachVolume and ncDetachVolume are the original's (instanceId, volumeId, remoteDev, localDev,
force): ``remoteDev`` is a local block device or file, or iscsi://host:port/iqn/lun that qemu
reaches itself; ``localDev`` the guest's device (vdc...).

ncCreateImage carries ``imageId``, ``imageURL`` (a presigned PUT of the image's object in
Walrus) and ``noReboot``, not the original's volumeId and remoteDev (it made EBS images): it
answers once the task is recorded, and the task's end shows in ncDescribeInstances
(``createImageStateName``, ``createImageTasks``).

ncStopInstance carries ``force`` (a hard power-off at once) and ncStartInstance an optional
``instanceType`` (the new size of an instance resized while stopped): neither is in the
original, whose messages had only instanceId.

ncPowerDown, as the original's, puts the node itself to sleep (the CC's POWERSAVE), with
NC_POWERDOWN_COMMAND; it is refused (IncorrectState) while the node holds instances. So that
the CC can wake the node again, ncDescribeResource reports ``macAddress``, the MAC of the
interface that reaches the caller (not in the original, whose CC read it from its ARP table).
"""

import base64

from spyne import Boolean, Integer, Long, ServiceBase, Unicode

from eucacore import soap
from eucacore.fastsoap import FastAnswers
from eucacore.messages import (ATTACH_VOLUME_FIELDS, BASE_FIELDS, CREATE_IMAGE_FIELDS, DETACH_VOLUME_FIELDS,
                               RUN_INSTANCE_FIELDS, START_INSTANCE_FIELDS, STOP_INSTANCE_FIELDS, reply, Message,
                               from_dict, instanceType, many, required, to_dict)
from eucacore.soap import EucaFault, make_application, operation
from nc.node import IncorrectState, InstanceNotFound, NodeController, VolumeError


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
                  ("publicSubnets", Unicode), ("hypervisor", Unicode), ("macAddress", Unicode)]


class ncTerminateInstanceType(Message):
    _type_info = BASE_FIELDS + STOP_INSTANCE_FIELDS


class ncTerminateInstanceResponseType(Message):
    _type_info = BASE_FIELDS + [("instanceId", Unicode), ("shutdownState", Unicode), ("previousState", Unicode)]


class ncRebootInstanceType(Message):
    _type_info = BASE_FIELDS + [("instanceId", required(Unicode))]


class ncRebootInstanceResponseType(Message):
    _type_info = BASE_FIELDS + [("status", Boolean)]


class ncStopInstanceType(Message):
    _type_info = BASE_FIELDS + STOP_INSTANCE_FIELDS


class ncStopInstanceResponseType(Message):
    _type_info = list(BASE_FIELDS)


class ncStartInstanceType(Message):
    _type_info = BASE_FIELDS + START_INSTANCE_FIELDS


class ncStartInstanceResponseType(Message):
    _type_info = list(BASE_FIELDS)


class ncGetConsoleOutputType(Message):
    _type_info = BASE_FIELDS + [("instanceId", required(Unicode))]


class ncGetConsoleOutputResponseType(Message):
    _type_info = BASE_FIELDS + [("consoleOutput", Unicode)]  # base64 of the log's last 64 KiB



class ncPowerDownType(Message):
    _type_info = list(BASE_FIELDS)


class ncPowerDownResponseType(Message):
    _type_info = list(BASE_FIELDS)


class ncCreateImageType(Message):
    _type_info = BASE_FIELDS + CREATE_IMAGE_FIELDS


class ncCreateImageResponseType(Message):
    _type_info = list(BASE_FIELDS)


class ncAttachVolumeType(Message):
    _type_info = BASE_FIELDS + ATTACH_VOLUME_FIELDS


class ncAttachVolumeResponseType(Message):
    _type_info = list(BASE_FIELDS)


class ncDetachVolumeType(Message):
    _type_info = BASE_FIELDS + DETACH_VOLUME_FIELDS


class ncDetachVolumeResponseType(Message):
    _type_info = list(BASE_FIELDS)


#: How ncDescribeResource names the way guests run.
HYPERVISOR_NAMES = {"kvm": "kvm", "tcg": "qemu-tcg", "test": "test", "xen": "xen"}


def _required(value, name):
    if not value:
        raise EucaFault("InvalidParameter", f"{name} is required")
    return value


def _on_instance(operation, instance_id: str, *args):
    """``operation(instance_id, ...)`` with the node's refusals as client faults."""
    try:
        return operation(instance_id, *args)
    except InstanceNotFound:
        raise EucaFault("InvalidInstanceID.NotFound", f"instance {instance_id} is not on this node")
    except IncorrectState as e:
        raise EucaFault("IncorrectInstanceState", str(e))
    except VolumeError as e:
        raise EucaFault(e.code, str(e))


def _caller(ctx) -> str:
    """The address the request came from (loopback when called in process)."""
    return (getattr(ctx.transport, "req_env", None) or {}).get("REMOTE_ADDR") or "127.0.0.1"


def application(node: NodeController | None = None):
    """The NC's spyne application, serving ``node``."""

    class NC(ServiceBase):
        @operation("ncRunInstance", ncRunInstanceType, ncRunInstanceResponseType)
        def ncRunInstance(ctx, req):
            request = to_dict(req)
            _required(request.get("instanceId"), "instanceId")
            _required(request.get("imageId"), "imageId")
            try:
                record = node.run_instance(request)
            except IncorrectState as e:
                raise EucaFault("IncorrectState", str(e))
            return reply(ncRunInstanceResponseType, req, instance=from_dict(instanceType, record))

        @operation("ncDescribeInstances", ncDescribeInstancesType, ncDescribeInstancesResponseType)
        def ncDescribeInstances(ctx, req):
            records = node.instances(req.instanceIds or None)
            return reply(ncDescribeInstancesResponseType, req,
                          instances=[from_dict(instanceType, r) for r in records])

        @operation("ncDescribeResource", ncDescribeResourceType, ncDescribeResourceResponseType)
        def ncDescribeResource(ctx, req):
            r = node.resources()
            return reply(ncDescribeResourceResponseType, req, nodeStatus="enabled", migrationCapable=False,
                          memorySizeMax=r.memory_max, memorySizeAvailable=r.memory_free,
                          diskSizeMax=r.disk_max, diskSizeAvailable=r.disk_free,
                          numberOfCoresMax=r.cores_max, numberOfCoresAvailable=r.cores_free,
                          hypervisor=HYPERVISOR_NAMES[node.hypervisor.accelerator], publicSubnets="", iqn="",
                          macAddress=node.mac_toward(_caller(ctx)))

        @operation("ncTerminateInstance", ncTerminateInstanceType, ncTerminateInstanceResponseType)
        def ncTerminateInstance(ctx, req):
            previous, now = _on_instance(node.terminate_instance, req.instanceId)
            return reply(ncTerminateInstanceResponseType, req, instanceId=req.instanceId,
                          shutdownState=now, previousState=previous)

        @operation("ncRebootInstance", ncRebootInstanceType, ncRebootInstanceResponseType)
        def ncRebootInstance(ctx, req):
            _on_instance(node.reboot_instance, req.instanceId)
            return reply(ncRebootInstanceResponseType, req, status=True)

        @operation("ncStopInstance", ncStopInstanceType, ncStopInstanceResponseType)
        def ncStopInstance(ctx, req):
            _on_instance(node.stop_instance, req.instanceId, bool(req.force))
            return reply(ncStopInstanceResponseType, req)

        @operation("ncStartInstance", ncStartInstanceType, ncStartInstanceResponseType)
        def ncStartInstance(ctx, req):
            _on_instance(node.start_instance, req.instanceId, to_dict(req.instanceType) or None)
            return reply(ncStartInstanceResponseType, req)

        @operation("ncGetConsoleOutput", ncGetConsoleOutputType, ncGetConsoleOutputResponseType)
        def ncGetConsoleOutput(ctx, req):
            output = _on_instance(node.console_output, req.instanceId)
            return reply(ncGetConsoleOutputResponseType, req, consoleOutput=base64.b64encode(output).decode())

        @operation("ncCreateImage", ncCreateImageType, ncCreateImageResponseType)
        def ncCreateImage(ctx, req):
            _on_instance(node.create_image, req.instanceId, req.imageId, req.imageURL, bool(req.noReboot))
            return reply(ncCreateImageResponseType, req)

        @operation("ncAttachVolume", ncAttachVolumeType, ncAttachVolumeResponseType)
        def ncAttachVolume(ctx, req):
            _on_instance(node.attach_volume, req.instanceId, req.volumeId, req.remoteDev, req.localDev)
            return reply(ncAttachVolumeResponseType, req)

        @operation("ncDetachVolume", ncDetachVolumeType, ncDetachVolumeResponseType)
        def ncDetachVolume(ctx, req):
            _on_instance(node.detach_volume, req.instanceId, req.volumeId, bool(req.force))
            return reply(ncDetachVolumeResponseType, req)

        @operation("ncPowerDown", ncPowerDownType, ncPowerDownResponseType)
        def ncPowerDown(ctx, req):
            try:
                node.power_down()
            except IncorrectState as e:
                raise EucaFault("IncorrectState", str(e))
            return reply(ncPowerDownResponseType, req)

    return make_application([NC], "EucalyptusNC")


def wsgi_app(node: NodeController):
    """The NC's WSGI application: spyne's, with ncDescribeInstances (the CC's poll, dozens of
    records an answer) written straight from the records by eucacore.fastsoap."""
    return FastAnswers(soap.wsgi_app(application(node)), "EucalyptusNC", {"ncDescribeInstances": lambda request: {
        "return": True, "instances": node.instances(request.get("instanceIds") or None)}})
