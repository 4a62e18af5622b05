"""Instances' status and attributes: DescribeInstanceStatus, DescribeInstanceAttribute,
ModifyInstanceAttribute (the instances themselves and their changes of state are in
clc.ec2.instances).

DescribeInstanceStatus reports an instance whose node does not answer (its cluster reports the
node down; clc.poller records it) as EC2 reports one whose host failed: its state as it was,
the system status ``impaired`` (reachability failed, since the node went down) and the
instance status ``insufficient-data``."""

import base64

from eucacore import ids
from eucacore.awsapi.errors import AWSError
from clc.ec2.common import apply_filters, dry_run
from clc.ec2.instances import (BEHAVIOR_COLUMN, MAX_USER_DATA, ROOT_DEVICE, STATE_CODES, checked_behavior, group_refs,
                               incorrect_state, own_instances, requested_instances, shutdown_behavior, state_dict)


# -- DescribeInstanceStatus --------------------------------------------------------------------------

def _summary(status: str, reachability: str, since: float | None = None) -> dict:
    """A status check summary: its status and its one detail, reachability."""
    detail = {"Name": "reachability", "Status": reachability}
    if since:
        detail["ImpairedSince"] = ids.isoformat(since)
    return {"Status": status, "Details": [detail] if reachability else []}


def _checks(row: dict, node: dict | None) -> tuple[dict, dict]:
    """(instance status, system status) of the instance: we check no more than that it runs,
    and that its node answers. On a node that does not answer (its cluster reports it down) the
    system check has failed since the node went down, and of the instance itself nothing is known."""
    if row["state"] not in ("running", "pending"):
        return _summary("not-applicable", ""), _summary("not-applicable", "")
    if node is not None and node["state"] == "NOTREADY":
        return (_summary("insufficient-data", "insufficient-data"),
                _summary("impaired", "failed", node["last_seen"]))
    summary = _summary("ok", "passed") if row["state"] == "running" else _summary("initializing", "initializing")
    return summary, summary


def _check_filters(checks: dict[str, tuple[dict, dict]]) -> dict:
    def getter(which: int, part: str):
        def get(r):
            summary = checks[r["instance_id"]][which]
            return summary["Status"] if part == "status" else [d["Status"] for d in summary["Details"]]
        return get
    return {f"{name}.{part}": getter(which, part) for which, name in enumerate(("instance-status", "system-status"))
            for part in ("status", "reachability")}


_STATUS_FILTERS = {
    "availability-zone": lambda r: r["zone"], "instance-state-name": lambda r: r["state"],
    "instance-state-code": lambda r: STATE_CODES[r["state"]], "event.code": lambda r: [],
    "event.description": lambda r: [], "event.instance-event-id": lambda r: [], "event.not-after": lambda r: [],
    "event.not-before": lambda r: [], "event.not-before-deadline": lambda r: [],
}


def describe_instance_status(ctx, params):
    rows, page = requested_instances(ctx, params)
    if not params.get("IncludeAllInstances"):
        rows = [r for r in rows if r["state"] == "running"]
    nodes = {n["name"]: n for n in ctx.cloud.components("node")}
    checks = {r["instance_id"]: _checks(r, nodes.get(r["node"])) for r in rows}
    rows = apply_filters(rows, params.get("Filters"), {**_STATUS_FILTERS, **_check_filters(checks)})
    dry_run(params)
    rows, more = page.of(sorted(rows, key=lambda r: r["instance_id"]), lambda r: r["instance_id"])
    return {"InstanceStatuses": [{"InstanceId": r["instance_id"], "AvailabilityZone": r["zone"],
                                  "InstanceState": state_dict(r["state"]),
                                  "InstanceStatus": checks[r["instance_id"]][0],
                                  "SystemStatus": checks[r["instance_id"]][1], "Events": []} for r in rows], **more}


# -- instance attributes -----------------------------------------------------------------------------

def _block_devices(cloud, instance_id: str) -> list[dict]:
    return [{"DeviceName": v["device"], "Ebs": {"VolumeId": v["volume_id"], "Status": v["attach_state"],
                                                "AttachTime": ids.isoformat(v["attach_time"] or 0),
                                                "DeleteOnTermination": bool(v["delete_on_termination"])}}
            for v in cloud.store.db["volumes"].rows_where("instance_id = ? AND state != 'deleted'", [instance_id])]


def _attribute(ctx, row: dict, name: str) -> dict:
    """One instance attribute, under its member of DescribeInstanceAttribute's output."""
    value = {
        "instanceType": lambda: {"InstanceType": {"Value": row["instance_type"]}},
        "kernel": lambda: {"KernelId": {"Value": row["kernel_id"]} if row["kernel_id"] else {}},
        "ramdisk": lambda: {"RamdiskId": {"Value": row["ramdisk_id"]} if row["ramdisk_id"] else {}},
        "userData": lambda: {"UserData": {"Value": row["user_data"]} if row["user_data"] else {}},
        "disableApiTermination": lambda: {"DisableApiTermination": {"Value": bool(row["disable_api_termination"])}},
        "instanceInitiatedShutdownBehavior": lambda: {
            "InstanceInitiatedShutdownBehavior": {"Value": shutdown_behavior(row)}},
        "rootDeviceName": lambda: {"RootDeviceName": {"Value": ROOT_DEVICE}},
        "blockDeviceMapping": lambda: {"BlockDeviceMappings": _block_devices(ctx.cloud, row["instance_id"])},
        "productCodes": lambda: {"ProductCodes": []},
        "sourceDestCheck": lambda: {"SourceDestCheck": {"Value": True}},
        "groupSet": lambda: {"Groups": group_refs(ctx.cloud, [row])[row["instance_id"]]},
        "ebsOptimized": lambda: {"EbsOptimized": {"Value": False}},
        "sriovNetSupport": lambda: {"SriovNetSupport": {}},
        "enaSupport": lambda: {"EnaSupport": {"Value": False}},
        "enclaveOptions": lambda: {"EnclaveOptions": {"Enabled": False}},
        "disableApiStop": lambda: {"DisableApiStop": {"Value": False}},
    }.get(name)
    if value is None:
        raise AWSError("InvalidParameterValue", f"Value ({name}) for parameter attribute is invalid. "
                                                f"Unknown attribute.")
    return value()


def describe_instance_attribute(ctx, params):
    (row,) = own_instances(ctx, [params["InstanceId"]])
    out = _attribute(ctx, row, params["Attribute"])
    dry_run(params)
    return {"InstanceId": row["instance_id"], **out}


#: ModifyInstanceAttribute's members and the attribute each sets.
_MODIFIABLE = {"InstanceType": "instanceType", "UserData": "userData", "DisableApiTermination": "disableApiTermination",
               "InstanceInitiatedShutdownBehavior": "instanceInitiatedShutdownBehavior", "Kernel": "kernel",
               "Ramdisk": "ramdisk", "SourceDestCheck": "sourceDestCheck", "DisableApiStop": "disableApiStop",
               "EbsOptimized": "ebsOptimized", "EnaSupport": "enaSupport", "SriovNetSupport": "sriovNetSupport",
               "Groups": "groupSet", "BlockDeviceMappings": "blockDeviceMapping"}


def _requested_change(params: dict) -> tuple[str, object]:
    """(attribute, new value) of a ModifyInstanceAttribute: one attribute per request, given
    as Attribute and Value or as its own member."""
    given = [(attribute, params[member]) for member, attribute in _MODIFIABLE.items() if member in params]
    if params.get("Attribute"):
        if "Value" not in params:
            raise AWSError("MissingParameter", "The request must contain the parameter Value")
        value = params["Value"]
        if params["Attribute"] == "userData":
            value = value.encode()
        elif params["Attribute"] == "disableApiTermination":
            value = value.strip().lower() == "true"
        given.append((params["Attribute"], value))
    elif "Value" in params:
        raise AWSError("MissingParameter", "The request must contain the parameter Attribute")
    if not given:
        raise AWSError("MissingParameter", "The request must name an attribute to modify")
    if len(given) > 1:
        raise AWSError("InvalidParameterCombination", "Only one attribute may be modified at a time")
    attribute, value = given[0]
    return attribute, value.get("Value") if isinstance(value, dict) else value


def _stopped_only(row: dict) -> None:
    if row["state"] != "stopped":
        raise AWSError("IncorrectInstanceState", f"The instance '{row['instance_id']}' is not in the 'stopped' state.")


def _new_instance_type(ctx, row: dict, type_name) -> dict:
    _stopped_only(row)
    types = ctx.cloud.instance_types()
    if type_name not in types:
        raise AWSError("InvalidParameterValue", f"Invalid value '{type_name}' for InstanceType.")
    old, new = types[row["instance_type"]], types[type_name]
    # Still counted while stopped: a bigger size must fit the quotas (checked in the update's transaction).
    return {"instance_type": type_name, "_quota": {"cores": new["cores"] - old["cores"],
                                                   "memory": new["memory"] - old["memory"]}}


def _new_user_data(row: dict, data) -> dict:
    _stopped_only(row)
    data = data or b""
    if len(data) > MAX_USER_DATA:
        raise AWSError("InvalidParameterValue", f"User data is limited to {MAX_USER_DATA} bytes")
    return {"user_data": base64.b64encode(data).decode() if data else ""}


def _column_changes(ctx, row: dict, attribute: str, value) -> dict:
    """The instance's columns that the change of ``attribute`` to ``value`` sets."""
    if attribute == "instanceType":
        return _new_instance_type(ctx, row, value)
    if attribute == "userData":
        return _new_user_data(row, value)
    if attribute == "disableApiTermination":
        return {"disable_api_termination": int(bool(value))}
    if attribute == "instanceInitiatedShutdownBehavior":
        return {BEHAVIOR_COLUMN: checked_behavior(value)}
    if attribute in ("rootDeviceName", "productCodes", "enclaveOptions") or attribute not in _MODIFIABLE.values():
        raise AWSError("InvalidParameterValue", f"Value ({attribute}) for parameter attribute is invalid. "
                                                f"This attribute cannot be modified.")
    raise AWSError("UnsupportedOperation", f"Modifying the attribute '{attribute}' is not supported by this cloud")


def modify_instance_attribute(ctx, params):
    (row,) = own_instances(ctx, [params["InstanceId"]])
    attribute, value = _requested_change(params)
    if row["state"] in ("shutting-down", "terminated"):
        raise incorrect_state(row["instance_id"], "modified")
    changes = _column_changes(ctx, row, attribute, value)
    dry_run(params)
    quota = changes.pop("_quota", None)
    with ctx.cloud.store.atomic():
        if quota:
            ctx.cloud.quotas.check(row["account_id"], **quota)
        if changes:
            ctx.cloud.store.db["instances"].update(row["instance_id"], changes)
    return {}


HANDLERS = {"DescribeInstanceStatus": describe_instance_status,
            "DescribeInstanceAttribute": describe_instance_attribute,
            "ModifyInstanceAttribute": modify_instance_attribute}
