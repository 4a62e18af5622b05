"""The CC's SOAP face: RunInstances, DescribeInstances, DescribeResources, TerminateInstances,
RebootInstances, StopInstance, StartInstance, GetConsoleOutput, CreateImage, AttachVolume,
DetachVolume, ConfigureNetwork, DescribeNetworks.

RunInstances starts ``minCount`` instances at least (of ``instanceIds``) or none, and answers
the records of those it started; it fails with InsufficientInstanceCapacity when the cluster's
nodes have no room for ``minCount``.

Stop, start, console output and CreateImage go to the node that runs the instance (its faults
come back as the CC's). StopInstance's ``force`` and StartInstance's ``instanceType`` are ours,
as on the NC; so are CreateImage's ``imageId``, ``imageURL`` and ``noReboot`` (the original's
CreateImage made an EBS image: volumeId, remoteDev).

ConfigureNetwork is the original's (rules[], accountId), each rule naming its destination group
(destUserName = account id, destName = group name); ours are ``groupNames`` (the groups whose
whole rule set the message carries: one named without rules has none now; when absent, the
groups the rules name), ``deletedGroupNames`` and ``complete`` (these are all the account's
groups: forget the others). DescribeNetworks answers the original's mode fields and, ours,
``groups``: every stored group with its rules (of the accounts ``accountIds``, when given), for
the networking layer and for tests.

AttachVolume and DetachVolume are the original's (instanceId, volumeId, remoteDev, localDev;
DetachVolume's force) and go to the node that runs the instance.

DescribeInstances answers, besides the original's ``instances``, ours: ``nodes`` (each node's
serviceTag and status: enabled, idle, asleep, down or unknown, as in DescribeResources) and a version
of the view: ``epoch`` (this CC process) and ``version``. A caller that passes back the
``epoch`` and ``sinceVersion`` of its last answer gets the instances changed since then and
``goneInstanceIds`` (the ones no longer reported), with ``complete`` false; otherwise (or when
that version is too old) every instance, with ``complete`` true. This keeps the CLC's poll of a
cluster of 10,000 instances small; and its answers, by cc.fastsoap (``wsgi_app``), fast.
"""

import contextlib

from spyne import Boolean, ComplexModel, Integer, Long, ServiceBase, Unicode

from cc.cluster import ClusterController, NoCapacity, NodeRefused, NodeUnreachable, UnknownInstance
from eucacore.fastsoap import FastAnswers
from cc.netgroups import InvalidRules
from eucacore import soap
from eucacore.messages import (ATTACH_VOLUME_FIELDS, BASE_FIELDS, CREATE_IMAGE_FIELDS, DETACH_VOLUME_FIELDS,
                               RUN_INSTANCE_FIELDS, START_INSTANCE_FIELDS, STOP_INSTANCE_FIELDS, reply, Message, TNS,
                               from_dict, instanceType, many, required, to_dict, virtualMachineType)
from eucacore.soap import EucaFault, make_application, operation


class RunInstancesType(Message):
    _type_info = BASE_FIELDS + RUN_INSTANCE_FIELDS + [("minCount", Integer), ("maxCount", Integer), ("instanceIds", many(Unicode)),
                  ("uuids", many(Unicode)), ("macAddresses", many(Unicode)), ("netNames", many(Unicode))]


class RunInstancesResponseType(Message):
    _type_info = BASE_FIELDS + [("instances", many(instanceType))]


class nodeType(ComplexModel):
    __namespace__ = TNS
    _type_info = [("serviceTag", Unicode), ("iqn", Unicode), ("status", Unicode)]


class DescribeInstancesType(Message):
    _type_info = BASE_FIELDS + [("instanceIds", many(Unicode)), ("epoch", Unicode), ("sinceVersion", Long)]


class DescribeInstancesResponseType(Message):
    _type_info = BASE_FIELDS + [("instances", many(instanceType)), ("nodes", many(nodeType)), ("epoch", Unicode),
                                ("version", Long), ("complete", Boolean), ("goneInstanceIds", many(Unicode))]


class resourceType(ComplexModel):
    __namespace__ = TNS
    _type_info = [("instanceType", virtualMachineType), ("maxInstances", Integer),
                  ("availableInstances", Integer)]


class DescribeResourcesType(Message):
    _type_info = BASE_FIELDS + [("instanceTypes", many(virtualMachineType))]


class DescribeResourcesResponseType(Message):
    _type_info = BASE_FIELDS + [("resources", many(resourceType)), ("serviceTags", many(Unicode)), ("nodes", many(nodeType))]


class TerminateInstancesType(Message):
    _type_info = BASE_FIELDS + [("instanceIds", many(Unicode)), ("force", Boolean)]


class TerminateInstancesResponseType(Message):
    _type_info = BASE_FIELDS + [("isTerminated", many(Boolean))]


class RebootInstancesType(Message):
    _type_info = BASE_FIELDS + [("instanceIds", many(Unicode))]


class RebootInstancesResponseType(Message):
    _type_info = list(BASE_FIELDS)


class StopInstanceType(Message):
    _type_info = BASE_FIELDS + STOP_INSTANCE_FIELDS


class StopInstanceResponseType(Message):
    _type_info = list(BASE_FIELDS)


class StartInstanceType(Message):
    _type_info = BASE_FIELDS + START_INSTANCE_FIELDS


class StartInstanceResponseType(Message):
    _type_info = list(BASE_FIELDS)


class GetConsoleOutputType(Message):
    _type_info = BASE_FIELDS + [("instanceId", required(Unicode))]


class GetConsoleOutputResponseType(Message):
    _type_info = BASE_FIELDS + [("instanceId", Unicode), ("consoleOutput", Unicode)]


class CreateImageType(Message):
    _type_info = BASE_FIELDS + CREATE_IMAGE_FIELDS


class CreateImageResponseType(Message):
    _type_info = list(BASE_FIELDS)


class AttachVolumeType(Message):
    _type_info = BASE_FIELDS + ATTACH_VOLUME_FIELDS


class AttachVolumeResponseType(Message):
    _type_info = list(BASE_FIELDS)


class DetachVolumeType(Message):
    _type_info = BASE_FIELDS + DETACH_VOLUME_FIELDS


class DetachVolumeResponseType(Message):
    _type_info = list(BASE_FIELDS)


class networkRuleType(ComplexModel):
    """One rule of the original's ConfigureNetwork: traffic that ``destUserName``'s group
    ``destName`` lets in: ``protocol`` tcp | udp | icmp | all, ports (ICMP: type and code; -1:
    all) from the CIDRs ``sourceNets`` or the groups ``sourceNames`` of the accounts ``userNames``."""
    __namespace__ = TNS
    _type_info = [("type", Unicode), ("sourceNames", many(Unicode)), ("userNames", many(Unicode)),
                  ("sourceNets", many(Unicode)), ("destUserName", Unicode), ("destName", Unicode),
                  ("protocol", Unicode), ("portRangeMin", Integer), ("portRangeMax", Integer)]


class securityGroupType(ComplexModel):
    """A group as the CC holds it: account id, name and its whole current rule set."""
    __namespace__ = TNS
    _type_info = [("userName", Unicode), ("netName", Unicode), ("rules", many(networkRuleType))]


class ConfigureNetworkType(Message):
    _type_info = BASE_FIELDS + [("rules", many(networkRuleType)), ("accountId", Unicode),
                                ("groupNames", many(Unicode)), ("deletedGroupNames", many(Unicode)),
                                ("complete", Boolean)]


class ConfigureNetworkResponseType(Message):
    _type_info = list(BASE_FIELDS)


class DescribeNetworksType(Message):
    _type_info = BASE_FIELDS + [("vmsubdomain", Unicode), ("nameserver", Unicode),
                                ("clusterControllers", many(Unicode)), ("accountIds", many(Unicode))]


class DescribeNetworksResponseType(Message):
    _type_info = BASE_FIELDS + [("useVlans", Integer), ("mode", Unicode), ("addrsPerNet", Integer),
                                ("vnetSubnet", Unicode), ("vnetNetmask", Unicode),
                                ("groups", many(securityGroupType))]


@contextlib.contextmanager
def _faults(instance_id: str | None = None):
    """The cluster's refusals as faults the CLC reads."""
    try:
        yield
    except UnknownInstance:
        raise EucaFault("InvalidInstanceID.NotFound", f"instance {instance_id} is not in this cluster")
    except NoCapacity as e:
        raise EucaFault("InsufficientInstanceCapacity", str(e))
    except NodeRefused as e:
        raise EucaFault(e.code, e.message)
    except NodeUnreachable as e:
        raise EucaFault("Unavailable", str(e), client=False)


def _on_instance(operation, instance_id: str, *args):
    """``operation(instance_id, ...)`` of the cluster, its refusals as faults."""
    with _faults(instance_id):
        return operation(instance_id, *args)


def _nodes(cluster: ClusterController) -> list[dict]:
    return [{"serviceTag": n["name"], "iqn": "", "status": n["status"]} for n in cluster.nodes()]


def describe_instances(cluster: ClusterController, request: dict) -> dict:
    """DescribeInstances' answer, as a dict: the instances asked for, else what changed since
    the request's ``epoch`` and ``sinceVersion`` (or all); the nodes; the view's version."""
    version, gone, complete = cluster.view.version, [], False
    if request.get("instanceIds"):
        records = cluster.instances(request["instanceIds"])
    else:
        records, gone, complete = cluster.view.changes_since(request.get("epoch"), request.get("sinceVersion"))
    return {"correlationId": request.get("correlationId"), "userId": request.get("userId"), "return": True,
            "instances": records, "nodes": _nodes(cluster), "epoch": cluster.view.epoch, "version": version,
            "complete": complete, "goneInstanceIds": gone}


def wsgi_app(cluster: ClusterController):
    """The CC's WSGI application: spyne's, with DescribeInstances (thousands of records)
    answered by cc.fastsoap."""
    return FastAnswers(soap.wsgi_app(application(cluster)), "EucalyptusCC",
                       {"DescribeInstances": lambda request: describe_instances(cluster, request)})


def application(cluster: ClusterController | None = None):
    """The CC's spyne application, serving ``cluster``."""

    class CC(ServiceBase):
        @operation("RunInstances", RunInstancesType, RunInstancesResponseType)
        def RunInstances(ctx, req):
            request = to_dict(req)
            for key in ("maxCount", "netNames", "correlationId", "userId", "statusMessage", "return"):
                request.pop(key, None)
            if not request.get("instanceIds"):
                raise EucaFault("InvalidParameter", "instanceIds is required")
            with _faults():
                records = cluster.run_instances(request)
            return reply(RunInstancesResponseType, req, instances=[from_dict(instanceType, r) for r in records])

        @operation("DescribeInstances", DescribeInstancesType, DescribeInstancesResponseType)
        def DescribeInstances(ctx, req):
            return from_dict(DescribeInstancesResponseType, describe_instances(cluster, to_dict(req)))

        @operation("DescribeResources", DescribeResourcesType, DescribeResourcesResponseType)
        def DescribeResources(ctx, req):
            vm_types = [to_dict(v) for v in (req.instanceTypes or [])]
            resources = cluster.resources(vm_types)
            nodes = _nodes(cluster)
            return reply(DescribeResourcesResponseType, req,
                          resources=[resourceType(instanceType=from_dict(virtualMachineType, r["instanceType"]),
                                                  maxInstances=r["maxInstances"],
                                                  availableInstances=r["availableInstances"]) for r in resources],
                          serviceTags=[n["serviceTag"] for n in nodes], nodes=[from_dict(nodeType, n) for n in nodes])

        @operation("TerminateInstances", TerminateInstancesType, TerminateInstancesResponseType)
        def TerminateInstances(ctx, req):
            return reply(TerminateInstancesResponseType, req,
                          isTerminated=cluster.terminate_instances(req.instanceIds or [], bool(req.force)))

        @operation("RebootInstances", RebootInstancesType, RebootInstancesResponseType)
        def RebootInstances(ctx, req):
            cluster.reboot_instances(req.instanceIds or [])
            return reply(RebootInstancesResponseType, req)

        @operation("StopInstance", StopInstanceType, StopInstanceResponseType)
        def StopInstance(ctx, req):
            _on_instance(cluster.stop_instance, req.instanceId, bool(req.force))
            return reply(StopInstanceResponseType, req)

        @operation("StartInstance", StartInstanceType, StartInstanceResponseType)
        def StartInstance(ctx, req):
            _on_instance(cluster.start_instance, req.instanceId, to_dict(req.instanceType) or None)
            return reply(StartInstanceResponseType, req)

        @operation("GetConsoleOutput", GetConsoleOutputType, GetConsoleOutputResponseType)
        def GetConsoleOutput(ctx, req):
            output = _on_instance(cluster.console_output, req.instanceId)
            return reply(GetConsoleOutputResponseType, req, instanceId=req.instanceId, consoleOutput=output)

        @operation("CreateImage", CreateImageType, CreateImageResponseType)
        def CreateImage(ctx, req):
            _on_instance(cluster.create_image, req.instanceId, req.imageId, req.imageURL, bool(req.noReboot))
            return reply(CreateImageResponseType, req)

        @operation("AttachVolume", AttachVolumeType, AttachVolumeResponseType)
        def AttachVolume(ctx, req):
            _on_instance(cluster.attach_volume, req.instanceId, req.volumeId, req.remoteDev, req.localDev)
            return reply(AttachVolumeResponseType, req)

        @operation("DetachVolume", DetachVolumeType, DetachVolumeResponseType)
        def DetachVolume(ctx, req):
            _on_instance(cluster.detach_volume, req.instanceId, req.volumeId, req.remoteDev, req.localDev,
                         bool(req.force))
            return reply(DetachVolumeResponseType, req)

        @operation("ConfigureNetwork", ConfigureNetworkType, ConfigureNetworkResponseType)
        def ConfigureNetwork(ctx, req):
            try:
                cluster.configure_network(req.accountId, [to_dict(r) for r in req.rules or []],
                                          list(req.groupNames or []) or None, list(req.deletedGroupNames or []),
                                          bool(req.complete))
            except InvalidRules as e:
                raise EucaFault("InvalidParameter", str(e))
            return reply(ConfigureNetworkResponseType, req)

        @operation("DescribeNetworks", DescribeNetworksType, DescribeNetworksResponseType)
        def DescribeNetworks(ctx, req):
            config = cluster.config
            return reply(DescribeNetworksResponseType, req, mode=config["VNET_MODE"],
                         useVlans=int(config["VNET_MODE"] == "MANAGED"), addrsPerNet=config["VNET_ADDRSPERNET"],
                         vnetSubnet=config["VNET_SUBNET"], vnetNetmask=config["VNET_NETMASK"],
                         groups=[from_dict(securityGroupType, g)
                                 for g in cluster.network_groups(list(req.accountIds or []) or None)])

    return make_application([CC], "EucalyptusCC")
