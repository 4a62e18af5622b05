"""What the cloud offers and what an account may use of it: DescribeRegions,
DescribeAvailabilityZones (one zone per registered cluster), DescribeInstanceTypes and
DescribeAccountAttributes."""

import ipaddress
import logging

from eucacore import soap
from eucacore.awsapi.errors import AWSError
from clc.cloud import REGION
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import Page, apply_filters, dry_run
from clc.quotas import UNLIMITED

log = logging.getLogger("eucalyptus.clc.regions")

VM_TYPES_HEADER = "free / max   cpu   ram  disk"
TYPES_PAGE_MIN, TYPES_PAGE_MAX = 5, 100
#: AWS's value of the attributes that are not quotas here.
SECURITY_GROUPS_PER_INTERFACE = 5


def describe_regions(ctx, params):
    regions = [{"RegionName": REGION, "Endpoint": ctx.cloud.ec2_url(), "OptInStatus": "opt-in-not-required"}]
    names = params.get("RegionNames")
    if names:
        regions = [r for r in regions if r["RegionName"] in names]
    regions = apply_filters(regions, params.get("Filters"), {"region-name": lambda r: r["RegionName"],
                                                             "endpoint": lambda r: r["Endpoint"]})
    return {"Regions": regions}


# -- availability zones -------------------------------------------------------------------------

#: Cluster states (see clc.poller) in which the zone is available.
_REACHABLE = ("ENABLED", "REGISTERED")


def _zone(cluster: dict) -> dict:
    state = "available" if cluster["state"] in _REACHABLE else "unavailable"
    return {"ZoneName": cluster["partition"], "State": state, "RegionName": REGION,
            "ZoneId": f"{REGION}-{cluster['partition']}", "ZoneType": "availability-zone",
            "Messages": [{"Message": f"{cluster['host']}:{cluster['port']}"}]}


_ZONE_FILTERS = {"zone-name": lambda z: z["ZoneName"], "state": lambda z: z["State"],
                 "region-name": lambda z: z["RegionName"], "zone-id": lambda z: z["ZoneId"],
                 "zone-type": lambda z: z["ZoneType"]}


def describe_availability_zones(ctx, params):
    """One zone per cluster; the cloud admin's ``verbose`` adds each zone's free/max instances per type."""
    verbose, names = sees_all_accounts(ctx, params.get("ZoneNames"), None)
    zone_ids = params.get("ZoneIds") or []
    zones = [(cluster, _zone(cluster)) for cluster in ctx.cloud.clusters()]
    for wanted, field in ((names, "ZoneName"), (zone_ids, "ZoneId")):
        for value in wanted:
            if not any(zone[field] == value for _, zone in zones):
                raise AWSError("InvalidParameterValue", f"Invalid availability zone: [{value}]")
    if names or zone_ids:
        zones = [(c, z) for c, z in zones if z["ZoneName"] in names or z["ZoneId"] in zone_ids]
    kept = {z["ZoneName"] for z in apply_filters([z for _, z in zones], params.get("Filters"), _ZONE_FILTERS)}
    dry_run(params)
    zones = [(c, z) for c, z in zones if z["ZoneName"] in kept]
    if not verbose:
        return {"AvailabilityZones": [z for _, z in zones]}
    vm_types = list(ctx.cloud.instance_types().values())
    out = []
    for cluster, zone in zones:
        out.append(zone)
        out.extend(vm_type_lines(vm_types, cluster_capacity(ctx, cluster, vm_types)))
    return {"AvailabilityZones": out}


def vm_type_lines(vm_types: list[dict], capacity: dict[str, tuple[int, int]]) -> list[dict]:
    """The original's verbose pseudo-zones: a header, then ``|- <type>`` with
    ``free / max   cpu    ram  disk`` as ``euca-describe-availability-zones verbose`` printed them."""
    lines = [{"ZoneName": "|- vm types", "State": VM_TYPES_HEADER}]
    for vm in vm_types:
        free, most = capacity.get(vm["name"], (0, 0))
        lines.append({"ZoneName": f"|- {vm['name']}",
                      "State": f"{free:04d} / {most:04d} {vm['cores']:3d} {vm['memory']:6d} {vm['disk']:5d}"})
    return lines


def cluster_capacity(ctx, cluster: dict, vm_types: list[dict]) -> dict[str, tuple[int, int]]:
    """Instance type -> (free, max) instances in the cluster, by its DescribeResources; none if it
    does not answer, or did not answer the CLC's last poll (no minute-long wait on a dead host)."""
    if cluster["state"] not in _REACHABLE:
        return {}
    try:
        reply = ctx.cloud.cc(cluster).DescribeResources(
            instanceTypes=[{"name": vm["name"], "memory": vm["memory"], "cores": vm["cores"], "disk": vm["disk"]}
                           for vm in vm_types])
    except (soap.Fault, *soap.TransportError) as e:
        log.warning("cluster %s: DescribeResources failed: %s", cluster["name"], e)
        return {}
    return {r.instanceType.name: (r.availableInstances or 0, r.maxInstances or 0)
            for r in (reply.resources or [])}


# -- instance types -----------------------------------------------------------------------------

def _instance_type(vm: dict) -> dict:
    """An instance type in DescribeInstanceTypes' shape, from its run-time sizes."""
    out = {"InstanceType": vm["name"], "CurrentGeneration": True, "FreeTierEligible": False,
           "SupportedUsageClasses": ["on-demand"], "SupportedRootDeviceTypes": ["instance-store"],
           "SupportedVirtualizationTypes": ["hvm", "paravirtual"], "BareMetal": False, "Hypervisor": "kvm",
           "ProcessorInfo": {"SupportedArchitectures": ["x86_64", "i386"]},
           "VCpuInfo": {"DefaultVCpus": vm["cores"], "DefaultCores": vm["cores"], "DefaultThreadsPerCore": 1},
           "MemoryInfo": {"SizeInMiB": vm["memory"]},
           "InstanceStorageSupported": vm["disk"] > 0,
           "EbsInfo": {"EbsOptimizedSupport": "unsupported", "EncryptionSupport": "unsupported",
                       "NvmeSupport": "unsupported"},
           "NetworkInfo": {"NetworkPerformance": "Moderate", "MaximumNetworkInterfaces": 1,
                           "MaximumNetworkCards": 1, "DefaultNetworkCardIndex": 0,
                           "Ipv4AddressesPerInterface": 1, "Ipv6AddressesPerInterface": 0,
                           "Ipv6Supported": False, "EnaSupport": "unsupported", "EfaSupported": False,
                           "EncryptionInTransitSupported": False},
           "PlacementGroupInfo": {"SupportedStrategies": []},
           "HibernationSupported": False, "BurstablePerformanceSupported": False,
           "DedicatedHostsSupported": False, "AutoRecoverySupported": False,
           "SupportedBootModes": ["legacy-bios"]}
    if vm["disk"] > 0:
        out["InstanceStorageInfo"] = {"TotalSizeInGB": vm["disk"], "NvmeSupport": "unsupported",
                                      "Disks": [{"SizeInGB": vm["disk"], "Count": 1, "Type": "hdd"}]}
    return out


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _disks(t: dict) -> list[dict]:
    return (t.get("InstanceStorageInfo") or {}).get("Disks") or []


_TYPE_FILTERS = {
    "instance-type": lambda t: t["InstanceType"],
    "vcpu-info.default-vcpus": lambda t: t["VCpuInfo"]["DefaultVCpus"],
    "vcpu-info.default-cores": lambda t: t["VCpuInfo"]["DefaultCores"],
    "vcpu-info.default-threads-per-core": lambda t: t["VCpuInfo"]["DefaultThreadsPerCore"],
    "memory-info.size-in-mib": lambda t: t["MemoryInfo"]["SizeInMiB"],
    "instance-storage-info.total-size-in-gb": lambda t: (t.get("InstanceStorageInfo") or {}).get("TotalSizeInGB", 0),
    "instance-storage-info.disk.count": lambda t: [d["Count"] for d in _disks(t)],
    "instance-storage-info.disk.size-in-gb": lambda t: [d["SizeInGB"] for d in _disks(t)],
    "instance-storage-info.disk.type": lambda t: [d["Type"] for d in _disks(t)],
    "instance-storage-supported": lambda t: _flag(t["InstanceStorageSupported"]),
    "current-generation": lambda t: _flag(t["CurrentGeneration"]),
    "free-tier-eligible": lambda t: _flag(t["FreeTierEligible"]),
    "bare-metal": lambda t: _flag(t["BareMetal"]),
    "hypervisor": lambda t: t["Hypervisor"],
    "processor-info.supported-architecture": lambda t: t["ProcessorInfo"]["SupportedArchitectures"],
    "supported-root-device-type": lambda t: t["SupportedRootDeviceTypes"],
    "supported-virtualization-type": lambda t: t["SupportedVirtualizationTypes"],
    "supported-usage-class": lambda t: t["SupportedUsageClasses"],
    "supported-boot-mode": lambda t: t["SupportedBootModes"],
}


def describe_instance_types(ctx, params):
    """The cloud's instance types at their current sizes (``cloud.vmtypes.*`` properties), in AWS's shape."""
    page = Page(params, TYPES_PAGE_MIN, TYPES_PAGE_MAX)
    types = [_instance_type(vm) for vm in ctx.cloud.instance_types().values()]
    position = {t["InstanceType"]: f"{i:04d}" for i, t in enumerate(types)}  # the page key: list order
    wanted = params.get("InstanceTypes") or []
    unknown = [name for name in wanted if not any(t["InstanceType"] == name for t in types)]
    if unknown:
        raise AWSError("InvalidInstanceType",
                       f"The following supplied instance types do not exist: [{', '.join(unknown)}]")
    if wanted:
        types = [t for t in types if t["InstanceType"] in wanted]
    types = apply_filters(types, params.get("Filters"), _TYPE_FILTERS)
    dry_run(params)
    types, out = page.of(types, lambda t: position[t["InstanceType"]])
    out["InstanceTypes"] = types
    return out


# -- account attributes -----------------------------------------------------------------------------

def _max_instances(ctx) -> int:
    """The account's instances quota, or when it has none the most instances of the smallest type
    the cloud's clusters can hold."""
    quota = ctx.cloud.quotas.limits(ctx.account_id)["instances"]
    if quota != UNLIMITED:
        return quota
    vm_types = list(ctx.cloud.instance_types().values())
    if not vm_types:
        return 0
    smallest = min(vm_types, key=lambda vm: (vm["cores"], vm["memory"], vm["disk"]))
    return sum(cluster_capacity(ctx, c, [smallest]).get(smallest["name"], (0, 0))[1]
               for c in ctx.cloud.clusters())


def _max_addresses(ctx) -> int:
    """The account's elastic IP quota, or when it has none the size of the cloud's public IP pool."""
    quota = ctx.cloud.quotas.limits(ctx.account_id)["addresses"]
    if quota != UNLIMITED:
        return quota
    size = 0
    for word in ctx.cloud.config["VNET_PUBLICIPS"] or []:
        first, _, last = word.partition("-")
        size += int(ipaddress.IPv4Address(last or first)) - int(ipaddress.IPv4Address(first)) + 1
    return size


#: Attribute name -> its values for the request's account (computed only when asked for).
_ATTRIBUTES = {
    "supported-platforms": lambda ctx: ["EC2"],
    "default-vpc": lambda ctx: ["none"],
    "max-instances": lambda ctx: [str(_max_instances(ctx))],
    "vpc-max-security-groups-per-interface": lambda ctx: [str(SECURITY_GROUPS_PER_INTERFACE)],
    "max-elastic-ips": lambda ctx: [str(_max_addresses(ctx))],
    "vpc-max-elastic-ips": lambda ctx: [str(_max_addresses(ctx))],
}


def describe_account_attributes(ctx, params):
    """The account's EC2 attributes: platforms, default VPC and its limits (from its quotas)."""
    names = params.get("AttributeNames") or list(_ATTRIBUTES)
    for name in names:
        if name not in _ATTRIBUTES:
            raise AWSError("InvalidParameterValue", f"Invalid attribute name: {name}")
    dry_run(params)
    return {"AccountAttributes": [
        {"AttributeName": name, "AttributeValues": [{"AttributeValue": v} for v in _ATTRIBUTES[name](ctx)]}
        for name in dict.fromkeys(names)]}


HANDLERS = {"DescribeRegions": describe_regions, "DescribeAvailabilityZones": describe_availability_zones,
            "DescribeInstanceTypes": describe_instance_types,
            "DescribeAccountAttributes": describe_account_attributes}
