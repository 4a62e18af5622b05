"""Instances: RunInstances, DescribeInstances, TerminateInstances.

The CLC records each instance before it asks a cluster to run it, so an
acknowledged instance is never lost; its state then follows what the cluster
reports (see clc.poller).
"""

import base64
import json
import logging
import uuid

from eucacore import ids, soap
from eucacore.awsapi.errors import AWSError
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import apply_filters, copy_present, dry_run, not_found
from clc.ec2.images import visible_image
from clc.ec2.keypairs import public_key
from clc.ec2.securitygroups import resolve_groups
from clc.ec2.tags import add_tags, requested_tags, tag_getters, tag_sets
from clc.ec2.addresses import disassociate_instance
from clc.ec2.volumes import detach_instance_volumes

log = logging.getLogger("eucalyptus.clc.instances")

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
IMAGE_URL_LIFETIME = 6 * 3600


def _mac(instance_id: str) -> str:
    """The original's MAC: d0:0d and the 4 bytes of the instance id's hex."""
    h = instance_id.split("-", 1)[1][:8].rjust(8, "0")
    return "d0:0d:" + ":".join(h[i:i + 2] for i in range(0, 8, 2))


def _choose_zone(ctx, vm: dict, count: int, zone: str | None) -> tuple[dict, int]:
    """The cluster to run in and how many instances fit there (at least ``count`` or an error)."""
    clusters = ctx.cloud.clusters()
    if zone:
        clusters = [c for c in clusters if c["partition"] == zone]
        if not clusters:
            raise AWSError("InvalidParameterValue", f"Invalid availability zone: [{zone}]")
    best, best_free = None, -1
    for cluster in clusters:
        try:
            res = ctx.cloud.cc(cluster).DescribeResources(
                instanceTypes=[{"name": vm["name"], "memory": vm["memory"], "cores": vm["cores"], "disk": vm["disk"]}])
            free = res.resources[0].availableInstances if res.resources else 0
        except (soap.Fault, *soap.TransportError) as e:
            log.warning("cluster %s: DescribeResources failed: %s", cluster["name"], e)
            continue
        if free > best_free:
            best, best_free = cluster, free
    if best is None or best_free < count:
        raise AWSError("InsufficientInstanceCapacity",
                       f"There is not enough capacity to fulfill your request for {count} {vm['name']} instance(s)")
    return best, best_free


def _image_url(ctx, image: dict) -> str:
    """A presigned GET of the image object, so the NC can fetch it without holding credentials."""
    owner = ctx.cloud.identity.account_credentials(image["account_id"])
    s3 = ctx.cloud.s3(owner) if owner else None
    if s3 is None:
        raise AWSError("InternalError", "the image store is not available", 500)
    bucket, key = image["location"].split("/", 1)
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                     ExpiresIn=IMAGE_URL_LIFETIME)


def run_instances(ctx, params):
    image = visible_image(ctx, params["ImageId"])
    if image["image_type"] != "machine":
        raise AWSError("InvalidParameterValue", f"{image['image_id']} is not a machine image")
    min_count, max_count = int(params.get("MinCount", 1)), int(params.get("MaxCount", 1))
    if min_count < 1 or max_count < min_count:
        raise AWSError("InvalidParameterValue", "MinCount must be at least 1 and no more than MaxCount")
    type_name = params.get("InstanceType") or "m1.small"
    vm = ctx.cloud.instance_types().get(type_name)
    if vm is None:
        raise AWSError("InvalidParameterValue", f"Invalid value '{type_name}' for InstanceType.")
    key_name = params.get("KeyName")
    if key_name and public_key(ctx.cloud, ctx.account_id, key_name) is None:
        raise not_found("InvalidKeyPair.NotFound", "key pair", key_name)
    user_data = params.get("UserData") or ""
    if isinstance(user_data, bytes):
        user_data = user_data.decode("latin-1")
    zone = (params.get("Placement") or {}).get("AvailabilityZone")
    tags = requested_tags(params, "instance")
    groups = resolve_groups(ctx, params.get("SecurityGroups"), params.get("SecurityGroupIds"))
    group_names = [g["name"] for g in groups]
    dry_run(params)
    cluster, free = _choose_zone(ctx, vm, min_count, zone)
    count = min(max_count, free)
    reservation_id = ids.new_id("r")
    now = ids.now()
    rows = []
    for index in range(count):
        instance_id = ids.new_id("i")
        rows.append({"instance_id": instance_id, "reservation_id": reservation_id, "account_id": ctx.account_id,
                     "user_id": ctx.credentials.user_id, "image_id": image["image_id"],
                     "kernel_id": image["kernel_id"], "ramdisk_id": image["ramdisk_id"], "instance_type": type_name,
                     "key_name": key_name or "", "zone": cluster["partition"], "state": "pending", "reason": "",
                     "launch_time": now, "launch_index": index, "user_data": user_data, "mac": _mac(instance_id),
                     "private_ip": "", "public_ip": "", "node": "", "groups": ",".join(group_names),
                     "updated": now})
    with ctx.cloud.store.atomic():
        per_instance = {"instances": 1, "cores": vm["cores"], "memory": vm["memory"]}
        fits = ctx.cloud.quotas.room(ctx.account_id, per_instance, len(rows))
        if fits < min_count:
            ctx.cloud.quotas.check(ctx.account_id, **{k: v * min_count for k, v in per_instance.items()})
        del rows[fits:]
        ctx.cloud.store.db["instances"].insert_all(rows)
        add_tags(ctx, [r["instance_id"] for r in rows], tags, "instance")
    request = {
        "correlationId": ctx.request_id, "userId": ctx.credentials.user_id, "reservationId": reservation_id,
        "instanceIds": [r["instance_id"] for r in rows], "uuids": [str(uuid.uuid4()) for _ in rows],
        "macAddresses": [r["mac"] for r in rows], "minCount": min_count, "maxCount": count,
        "instanceType": {"name": type_name, "memory": vm["memory"], "cores": vm["cores"], "disk": vm["disk"]},
        "imageId": image["image_id"], "imageURL": _image_url(ctx, image), "ownerId": ctx.account_id,
        "accountId": ctx.account_id, "keyName": key_name or "", "userData": user_data,
        "launchIndex": 0, "platform": "linux", "groupNames": group_names,
    }
    try:
        reply = ctx.cloud.cc(cluster).RunInstances(**request)
    except (soap.Fault, *soap.TransportError) as e:
        message = getattr(e, "message", None) or str(e)
        _end(ctx, [r["instance_id"] for r in rows], f"Server.InternalError: {message}")
        if isinstance(e, soap.Fault) and "InsufficientInstanceCapacity" in (e.code or ""):
            raise AWSError("InsufficientInstanceCapacity", message)
        raise AWSError("InternalError", f"cluster {cluster['partition']} could not run the instances", 500)
    nodes = {i.instanceId: i.serviceTag for i in (reply.instances or [])}
    with ctx.cloud.store.atomic():
        for r in rows:
            r["node"] = nodes.get(r["instance_id"], "")
            ctx.cloud.store.db["instances"].update(r["instance_id"], {"node": r["node"]})
    refs = [{"GroupName": g["name"], "GroupId": g["group_id"]} for g in groups]
    return {"ReservationId": reservation_id, "OwnerId": ctx.account_id, "Groups": refs,
            "Instances": [_instance(r, tags, refs) for r in rows]}


def _end(ctx, instance_ids: list[str], reason: str) -> None:
    with ctx.cloud.store.atomic():
        for instance_id in instance_ids:
            ctx.cloud.store.db["instances"].update(instance_id, {"state": "terminated", "reason": reason,
                                                                  "updated": ids.now()})
            record_state_change(ctx.cloud, ctx.cloud.store.db["instances"].get(instance_id), "terminated")


def record_state_change(cloud, row: dict, state: str) -> None:
    """What follows an instance's change of state, in the caller's transaction: instance-hours
    count from running until it starts shutting down (or stops); a terminated instance lets go
    of its volumes and its elastic address, as EC2 does."""
    if state == "running":
        cloud.usage.started(row["account_id"], "instance", row["instance_id"], subtype=row["instance_type"])
    elif state in ("shutting-down", "terminated", "stopping", "stopped"):
        cloud.usage.ended("instance", row["instance_id"])
    if state == "terminated":
        detach_instance_volumes(cloud, row["instance_id"])
        disassociate_instance(cloud, row["instance_id"])


def _group_refs(cloud, rows: list[dict]) -> dict[str, list[dict]]:
    """Each instance's security groups as EC2 shows them (name and id), by instance id."""
    ids_by_name = {(g["account_id"], g["name"]): g["group_id"] for g in cloud.store.db.query(
        "SELECT account_id, name, group_id FROM security_groups WHERE account_id IN (SELECT value FROM json_each(?))",
        [json.dumps(sorted({r["account_id"] for r in rows}))])}
    return {r["instance_id"]: [{"GroupName": name, "GroupId": ids_by_name.get((r["account_id"], name), name)}
                               for name in (r["groups"] or "").split(",") if name] for r in rows}


def _instance(row: dict, tags: list[dict] = (), groups: list[dict] = ()) -> dict:
    out = {"InstanceId": row["instance_id"], "ImageId": row["image_id"],
           "State": {"Code": STATE_CODES[row["state"]], "Name": row["state"]},
           "PrivateDnsName": "", "PublicDnsName": "", "StateTransitionReason": row["reason"] or "",
           "AmiLaunchIndex": row["launch_index"], "InstanceType": row["instance_type"],
           "LaunchTime": ids.isoformat(row["launch_time"]), "Placement": {"AvailabilityZone": row["zone"],
                                                                          "Tenancy": "default"},
           "Monitoring": {"State": "disabled"}, "Architecture": "x86_64", "RootDeviceType": "instance-store",
           "VirtualizationType": "hvm", "Hypervisor": "kvm", "ClientToken": "",
           "SecurityGroups": list(groups)}
    copy_present(out, row, {"KeyName": "key_name", "KernelId": "kernel_id", "RamdiskId": "ramdisk_id",
                            "PrivateIpAddress": "private_ip", "PublicIpAddress": "public_ip"})
    if row["state"] == "terminated" and row["reason"]:
        out["StateReason"] = {"Code": row["reason"].split(":", 1)[0], "Message": row["reason"]}
    if tags:
        out["Tags"] = list(tags)
    return out


def _visible_instances(ctx, every_account: bool = False) -> list[dict]:
    """The caller's account's instances (every account's for the cloud admin's verbose view),
    with the terminated ones of the last ``cloud.vmstate.terminated_time`` minutes."""
    horizon = ids.now() - 60 * ctx.cloud.properties.get("cloud.vmstate.terminated_time")
    where, args = "(state != 'terminated' OR updated >= ?)", [horizon]
    if not every_account:
        where, args = "account_id = ? AND " + where, [ctx.account_id, horizon]
    return list(ctx.cloud.store.db["instances"].rows_where(where, args, order_by="launch_time, launch_index"))


_FILTERS = {
    "instance-id": lambda r: r["instance_id"], "image-id": lambda r: r["image_id"],
    "instance-state-name": lambda r: r["state"], "instance-state-code": lambda r: STATE_CODES[r["state"]],
    "instance-type": lambda r: r["instance_type"], "availability-zone": lambda r: r["zone"],
    "reservation-id": lambda r: r["reservation_id"], "key-name": lambda r: r["key_name"],
    "owner-id": lambda r: r["account_id"], "kernel-id": lambda r: r["kernel_id"],
    "ramdisk-id": lambda r: r["ramdisk_id"], "private-ip-address": lambda r: r["private_ip"],
    "ip-address": lambda r: r["public_ip"], "launch-index": lambda r: r["launch_index"],
}


def describe_instances(ctx, params):
    every_account, wanted = sees_all_accounts(ctx, params.get("InstanceIds"), params.get("Filters"))
    rows = _visible_instances(ctx, every_account)
    if wanted:
        for instance_id in wanted:
            if not any(r["instance_id"] == instance_id for r in rows):
                raise not_found("InvalidInstanceID.NotFound", "instance ID", instance_id)
        rows = [r for r in rows if r["instance_id"] in wanted]
    rows = apply_filters(rows, params.get("Filters"), {
        **_FILTERS, **tag_getters(ctx, [r["instance_id"] for r in rows], lambda r: r["instance_id"])})
    tags = tag_sets(ctx, [r["instance_id"] for r in rows])
    groups = _group_refs(ctx.cloud, rows)
    reservations: dict[str, dict] = {}
    for r in rows:
        res = reservations.setdefault(r["reservation_id"], {
            "ReservationId": r["reservation_id"], "OwnerId": r["account_id"],
            "Groups": groups[r["instance_id"]], "Instances": []})
        res["Instances"].append(_instance(r, tags[r["instance_id"]], groups[r["instance_id"]]))
    return {"Reservations": list(reservations.values())}


def terminate_instances(ctx, params):
    rows = {r["instance_id"]: r for r in _visible_instances(ctx)}
    for instance_id in params["InstanceIds"]:
        if instance_id not in rows:
            raise not_found("InvalidInstanceID.NotFound", "instance ID", instance_id)
    dry_run(params)
    changes, by_zone = [], {}
    with ctx.cloud.store.atomic():
        for instance_id in params["InstanceIds"]:
            row = rows[instance_id]
            previous = row["state"]
            current = previous if previous == "terminated" else "shutting-down"
            if previous != current:
                ctx.cloud.store.db["instances"].update(instance_id, {"state": current, "reason": "User initiated",
                                                                      "updated": ids.now()})
                record_state_change(ctx.cloud, row, current)
                by_zone.setdefault(row["zone"], []).append(instance_id)
            changes.append({"InstanceId": instance_id,
                            "CurrentState": {"Code": STATE_CODES[current], "Name": current},
                            "PreviousState": {"Code": STATE_CODES[previous], "Name": previous}})
    clusters = {c["partition"]: c for c in ctx.cloud.clusters()}
    for zone, instance_ids in by_zone.items():
        cluster = clusters.get(zone)
        if cluster is None:
            _end(ctx, instance_ids, "User initiated")
            continue
        try:
            ctx.cloud.cc(cluster).TerminateInstances(instanceIds=instance_ids, correlationId=ctx.request_id)
        except (soap.Fault, *soap.TransportError) as e:
            # The poller retries the termination until the cluster confirms it.
            log.warning("cluster %s: TerminateInstances failed: %s", zone, e)
    return {"TerminatingInstances": changes}


def user_data_text(row: dict) -> bytes:
    return base64.b64decode(row["user_data"]) if row["user_data"] else b""


HANDLERS = {"RunInstances": run_instances, "DescribeInstances": describe_instances,
            "TerminateInstances": terminate_instances}
