"""Instances: Run/Describe/Terminate, Stop/Start/Reboot, GetConsoleOutput, DescribeInstanceStatus,
Describe/ModifyInstanceAttribute.

The CLC records each instance before it asks a cluster to run it, so an
acknowledged instance is never lost; its state then follows what the cluster
reports (see clc.poller). Stop, start and reboot change the record first and then
ask the instance's cluster, which forwards to the node that runs it; if the cluster
does not answer, the poller asks again.

Stopping is allowed for our instance-store instances (AWS allows it only for EBS-backed
ones): the root disk stays on its node, and the instance starts again there. A stopped
instance keeps counting against the instances/cores/memory quotas (clc.quotas counts
every state but shutting-down and terminated), so StartInstances checks no quota;
resizing a stopped instance checks the difference.

A node fetches each image from Walrus itself, signed with the node certificate: the run
request names the image object's plain URL and, for a bundle, the parts, their digests and
the image's key sealed for the node (clc.ec2.manifests, eucacore.bundle).
"""

import base64
import functools
import json
import logging
import operator
import posixpath
import uuid
from urllib.parse import quote

import botocore.exceptions

from eucacore import bundle, ids, pki, soap
from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.shapes import Keyed
from clc.ec2 import manifests
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import Page, apply_filters, copy_present, dry_run, not_found, only_ids
from clc.ec2.images import visible_image
from clc.ec2.keypairs import public_key
from clc.ec2.securitygroups import resolve_groups
from clc.ec2.tags import add_tags, delete_resource_tags, requested_tags, tag_getters, tag_sets
from clc.ec2.addresses import disassociate_instance
from clc.ec2.volumes import detach_instance_volumes

log = logging.getLogger("eucalyptus.clc.instances")

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
MAX_MANIFEST_BYTES = 1 << 20
CONSOLE_TAIL = 64 * 1024
MAX_USER_DATA = 16 * 1024
MAX_CLIENT_TOKEN = 64
ROOT_DEVICE = "/dev/sda1"
#: StateReason of an instance stopped by its owner, and of one whose guest shut itself down.
USER_STOP = "Client.UserInitiatedShutdown: User initiated shutdown"
GUEST_STOP = "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
SHUTDOWN_BEHAVIORS = ("stop", "terminate")
#: The instances column of instanceInitiatedShutdownBehavior ('stop' | 'terminate').
BEHAVIOR_COLUMN = "shutdown_behavior"


def _mac(instance_id: str) -> str:
    """The original's MAC: d0:0d and the 4 bytes of the instance id's hex."""
    h = instance_id.split("-", 1)[1][:8].rjust(8, "0")
    return "d0:0d:" + ":".join(h[i:i + 2] for i in range(0, 8, 2))


def state_dict(name: str) -> dict:
    return {"Code": STATE_CODES[name], "Name": name}


def incorrect_state(instance_id: str, what: str) -> AWSError:
    return AWSError("IncorrectInstanceState", f"The instance '{instance_id}' is not in a state from which it can "
                                              f"be {what}.")


def shutdown_behavior(row: dict) -> str:
    return row.get(BEHAVIOR_COLUMN) or "stop"


def checked_behavior(value: str) -> str:
    if value not in SHUTDOWN_BEHAVIORS:
        raise AWSError("InvalidParameterValue", f"Value ({value}) for parameter instanceInitiatedShutdownBehavior "
                                                f"is invalid. Expected: 'stop' or 'terminate'.")
    return value


# -- RunInstances ------------------------------------------------------------------------------------

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


def _object_url(ctx, location: str) -> str:
    """The plain URL of the Walrus object ``bucket/key``. Nodes fetch it signed with the node
    certificate (walrus.nodeauth), so it needs no presigned signature and never expires."""
    base = ctx.cloud.walrus_url()
    if base is None:
        raise AWSError("InternalError", "the image store is not available", 500)
    return f"{base}/{quote(location, safe='/~')}"


def _image_url(ctx, image: dict) -> str:
    """Where a node fetches the image's object (for a bundle, its manifest)."""
    return _object_url(ctx, image["location"])


def _unavailable(image: dict, why: str) -> AWSError:
    return AWSError("InvalidAMIID.Unavailable", f"The image id '[{image['image_id']}]' is not available: {why}")


def _manifest_data(ctx, image: dict) -> bytes:
    """The bundle's manifest, read from Walrus with its owner's credentials (whoever launches it)."""
    owner = ctx.cloud.identity.account_credentials(image["account_id"])
    s3 = ctx.cloud.s3(owner) if owner else None
    if s3 is None:
        raise AWSError("InternalError", "the image store is not available", 500)
    bucket, key = image["location"].split("/", 1)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            data = body.read(MAX_MANIFEST_BYTES + 1)
        finally:
            body.close()
    except botocore.exceptions.ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise _unavailable(image, f"its manifest {image['location']} cannot be read (HTTP {status})") from None
    except botocore.exceptions.BotoCoreError as e:
        log.error("Walrus unreachable: %s", e)
        raise AWSError("InternalError", "the image store is unreachable", 500) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise _unavailable(image, f"its manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    return data


def _bundle(ctx, image: dict) -> dict:
    """How a node unpacks the bundled ``image`` (messages.bundleType): the manifest's key and IV
    passed from the cloud's key to the node certificate, its digests, the parts' URLs."""
    try:
        download = manifests.parse_download(_manifest_data(ctx, image))
    except AWSError as e:
        if e.code != "InvalidManifest":
            raise
        raise _unavailable(image, e.message) from None
    keys_dir = ctx.cloud.config.keys_dir()
    try:
        cloud_key = (keys_dir / pki.CA_KEY).read_bytes()
        node_cert = pki.component_keys(keys_dir, "node").cert.read_bytes()
    except OSError as e:
        log.error("cannot pass the key of %s to its node: %s", image["image_id"], e)
        raise AWSError("InternalError", "the cloud's keys are not at hand to decrypt a bundled image", 500) from None
    folder = posixpath.dirname(image["location"])
    try:
        return manifests.node_bundle(download, cloud_key, node_cert,
                                     lambda name: _object_url(ctx, posixpath.join(folder, name)))
    except AWSError as e:
        raise _unavailable(image, e.message) from None


def _image_fields(ctx, image: dict, boot: dict) -> dict:
    """The run request's fields that tell the node where each image is: ``<prefix>Id``,
    ``<prefix>URL`` and, for a bundle, ``<prefix>Bundle``. Made before any instance is recorded,
    so a bundle that cannot be unpacked fails the call rather than its instances."""
    fields = {}
    for prefix, row in (("image", image), ("kernel", boot["kernel_id"]), ("ramdisk", boot["ramdisk_id"])):
        if row:
            fields[f"{prefix}Id"], fields[f"{prefix}URL"] = row["image_id"], _image_url(ctx, row)
            if row["location"].endswith(bundle.MANIFEST_SUFFIX):
                fields[f"{prefix}Bundle"] = _bundle(ctx, row)
    return fields


def _boot_images(ctx, params: dict, image: dict) -> dict[str, dict | None]:
    """The kernel and ramdisk to boot: the request's (the caller's visible eki-/eri- images,
    else InvalidAMIID.NotFound) or the machine image's own, as far as they still exist."""
    out = {}
    for member, prefix, column in (("KernelId", "eki", "kernel_id"), ("RamdiskId", "eri", "ramdisk_id")):
        if params.get(member):
            row = visible_image(ctx, params[member])
            if not row["image_id"].startswith(prefix + "-"):
                raise not_found("InvalidAMIID.NotFound", "image id", params[member])
            out[column] = row
        elif image[column]:
            found = list(ctx.cloud.store.db["images"].rows_where("image_id = ? AND state != 'deregistered'",
                                                                 [image[column]]))
            out[column] = found[0] if found else None
            if out[column] is None:
                log.warning("image %s: its %s %s is gone; booting without it", image["image_id"], column,
                            image[column])
        else:
            out[column] = None
    return out


def _user_data(params: dict) -> str:
    user_data = params.get("UserData") or ""
    return user_data.decode("latin-1") if isinstance(user_data, bytes) else user_data


def _token_rows(ctx, token: str) -> list[dict]:
    return list(ctx.cloud.store.db["instances"].rows_where(
        "account_id = ? AND client_token = ?", [ctx.account_id, token], order_by="launch_index"))


def _replay(ctx, rows: list[dict], params: dict) -> dict:
    """RunInstances again with a ClientToken already used: the original reservation, if the
    request is the same one, else IdempotentParameterMismatch."""
    first, groups = rows[0], group_refs(ctx.cloud, rows[:1])[rows[0]["instance_id"]]
    zone = (params.get("Placement") or {}).get("AvailabilityZone")
    same = (first["image_id"] == params["ImageId"]
            and first["instance_type"] == (params.get("InstanceType") or "m1.small")
            and first["key_name"] == (params.get("KeyName") or "") and first["user_data"] == _user_data(params)
            and params.get("KernelId") in (None, first["kernel_id"])
            and params.get("RamdiskId") in (None, first["ramdisk_id"]) and zone in (None, first["zone"])
            and int(params.get("MinCount", 1)) <= len(rows) <= int(params.get("MaxCount", 1))
            and set(params.get("SecurityGroups") or []) <= {g["GroupName"] for g in groups}
            and set(params.get("SecurityGroupIds") or []) <= {g["GroupId"] for g in groups})
    if not same:
        raise AWSError("IdempotentParameterMismatch", "The client token you have provided is associated with a "
                                                      "resource that has different parameters.")
    tags = tag_sets(ctx, [r["instance_id"] for r in rows])
    return {"ReservationId": first["reservation_id"], "OwnerId": ctx.account_id, "Groups": groups,
            "Instances": [_instance(r, tags[r["instance_id"]], groups) for r in rows]}


def run_instances(ctx, params):
    token = params.get("ClientToken") or ""
    if len(token) > MAX_CLIENT_TOKEN:
        raise AWSError("InvalidParameterValue", f"ClientToken must be at most {MAX_CLIENT_TOKEN} characters")
    if token and (earlier := _token_rows(ctx, token)):
        dry_run(params)
        return _replay(ctx, earlier, params)
    image = visible_image(ctx, params["ImageId"])
    if image["state"] != "available":
        raise AWSError("InvalidAMIID.Unavailable", f"The image id '[{image['image_id']}]' is not available: it is "
                                                   f"{image['state']}")
    if image["image_type"] != "machine":
        raise AWSError("InvalidParameterValue", f"{image['image_id']} is not a machine image")
    boot = _boot_images(ctx, params, image)
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
    behavior = checked_behavior(params.get("InstanceInitiatedShutdownBehavior") or "stop")
    zone = (params.get("Placement") or {}).get("AvailabilityZone")
    tags = requested_tags(params, "instance")
    groups = resolve_groups(ctx, params.get("SecurityGroups"), params.get("SecurityGroupIds"))
    group_names = [g["name"] for g in groups]
    dry_run(params)
    image_fields = _image_fields(ctx, image, boot)
    cluster, free = _choose_zone(ctx, vm, min_count, zone)
    count = min(max_count, free)
    rows = _new_rows(ctx, params, count, image=image, boot=boot, zone=cluster["partition"], type_name=type_name,
                     group_names=group_names, behavior=behavior)
    with ctx.cloud.store.atomic():
        if token and (earlier := _token_rows(ctx, token)):  # the same request, answered meanwhile
            return _replay(ctx, earlier, params)
        per_instance = {"instances": 1, "cores": vm["cores"], "memory": vm["memory"]}
        fits = ctx.cloud.quotas.room(ctx.account_id, per_instance, len(rows))
        if fits < min_count:
            ctx.cloud.quotas.check(ctx.account_id, **{k: v * min_count for k, v in per_instance.items()})
        del rows[fits:]
        ctx.cloud.store.db["instances"].insert_all(rows)
        add_tags(ctx, [r["instance_id"] for r in rows], tags, "instance")
    # The cluster holds the groups' rules before their instances run (a push never fails the call).
    ctx.cloud.networks.groups_changed(ctx.account_id, group_names, also=cluster)
    request = _run_request(ctx, rows, image_fields, min_count)
    try:
        reply = ctx.cloud.cc(cluster).RunInstances(**request)
    except soap.Unanswered as e:
        # The cluster has the request and may be starting the instances: they stay pending, and
        # the poller follows them (running once the cluster reports them, terminated if it has
        # not for cloud.vmstate.instance_timeout). Ending them now could leave them running unseen.
        log.warning("cluster %s: RunInstances not answered (%s): %d instance(s) left pending for the poller",
                    cluster["partition"], e, len(rows))
    except (soap.Fault, *soap.TransportError) as e:
        message = getattr(e, "message", None) or str(e)
        _end(ctx, [r["instance_id"] for r in rows], f"Server.InternalError: {message}")
        if isinstance(e, soap.Fault) and "InsufficientInstanceCapacity" in (e.code or ""):
            raise AWSError("InsufficientInstanceCapacity", message)
        raise AWSError("InternalError", f"cluster {cluster['partition']} could not run the instances", 500)
    else:
        rows = _placed(ctx, rows, {i.instanceId: i.serviceTag for i in (reply.instances or [])})
        if not rows:
            raise AWSError("InsufficientInstanceCapacity",
                           f"There is not enough capacity in zone {cluster['partition']}")
    refs = [{"GroupName": g["name"], "GroupId": g["group_id"]} for g in groups]
    return {"ReservationId": rows[0]["reservation_id"], "OwnerId": ctx.account_id, "Groups": refs,
            "Instances": [_instance(r, tags, refs) for r in rows]}


def _placed(ctx, rows: list[dict], nodes: dict[str, str]) -> list[dict]:
    """The new instances the cluster placed (on ``nodes``: id -> node), their node recorded.
    Those it did not place (it may start fewer than asked, never fewer than MinCount) were
    never launched: their records and tags go, as if they had not been asked for."""
    placed = [r for r in rows if r["instance_id"] in nodes]
    unplaced = [r["instance_id"] for r in rows if r["instance_id"] not in nodes]
    with ctx.cloud.store.atomic():
        for r in placed:
            r["node"] = nodes[r["instance_id"]]
            ctx.cloud.store.db["instances"].update(r["instance_id"], {"node": r["node"]})
        if unplaced:
            ctx.cloud.store.db.execute("DELETE FROM instances WHERE instance_id IN (SELECT value FROM json_each(?))",
                                       [json.dumps(unplaced)])
            delete_resource_tags(ctx, unplaced)
    return placed


def _new_rows(ctx, params: dict, count: int, *, image: dict, boot: dict, zone: str, type_name: str,
              group_names: list[str], behavior: str) -> list[dict]:
    """The records of ``count`` new instances of one reservation, pending."""
    reservation_id, now = ids.new_id("r"), ids.now()
    behavior_column = {BEHAVIOR_COLUMN: behavior}
    rows = []
    for index in range(count):
        instance_id = ids.new_id("i")
        rows.append({"instance_id": instance_id, "reservation_id": reservation_id, "account_id": ctx.account_id,
                     "user_id": ctx.credentials.user_id, "image_id": image["image_id"],
                     "kernel_id": (boot["kernel_id"] or {}).get("image_id") or image["kernel_id"],
                     "ramdisk_id": (boot["ramdisk_id"] or {}).get("image_id") or image["ramdisk_id"],
                     "instance_type": type_name, "key_name": params.get("KeyName") or "", "zone": zone,
                     "state": "pending", "reason": "", "launch_time": now, "launch_index": index,
                     "user_data": _user_data(params), "mac": _mac(instance_id), "private_ip": "", "public_ip": "",
                     "node": "", "groups": ",".join(group_names), "updated": now,
                     "client_token": params.get("ClientToken") or "",
                     "disable_api_termination": int(bool(params.get("DisableApiTermination"))), **behavior_column})
    return rows


def _run_request(ctx, rows: list[dict], image_fields: dict, min_count: int) -> dict:
    """The cluster's RunInstances of the new instances ``rows``. ``keyName`` carries the key
    pair's public key, for the instance's NoCloud seed, as the original's did."""
    first, vm = rows[0], _vm(ctx.cloud, rows[0]["instance_type"])
    key = public_key(ctx.cloud, ctx.account_id, first["key_name"]) if first["key_name"] else None
    return {
        "correlationId": ctx.request_id, "userId": ctx.credentials.user_id, "reservationId": first["reservation_id"],
        "instanceIds": [r["instance_id"] for r in rows], "uuids": [str(uuid.uuid4()) for _ in rows],
        "macAddresses": [r["mac"] for r in rows], "minCount": min_count, "maxCount": len(rows),
        "instanceType": vm, "ownerId": ctx.account_id, "accountId": ctx.account_id, "keyName": key or "",
        "userData": first["user_data"], "launchIndex": 0, "platform": "linux",
        "groupNames": [g for g in first["groups"].split(",") if g], **image_fields,
    }


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


# -- how instances look ------------------------------------------------------------------------------

def _group_lists(cloud, account_ids: set[str]):
    """function(account id, an instance's ``groups`` column) -> (its security groups as EC2
    shows them, name and id; a key of them): one list and key for all instances of the
    same account and groups. Leave the lists as they are."""
    ids_by_name = {(g["account_id"], g["name"]): g["group_id"] for g in cloud.store.db.query(
        "SELECT account_id, name, group_id FROM security_groups WHERE account_id IN (SELECT value FROM json_each(?))",
        [json.dumps(sorted(account_ids))])}
    shared: dict[tuple[str, str], tuple[list[dict], tuple]] = {}

    def lists(account_id: str, names: str | None) -> tuple[list[dict], tuple]:
        found = shared.get((account_id, names))
        if found is None:
            refs = [{"GroupName": name, "GroupId": ids_by_name.get((account_id, name), name)}
                    for name in (names or "").split(",") if name]
            found = shared[account_id, names] = refs, tuple(map(_group_pair, refs))
        return found
    return lists


def group_refs(cloud, rows: list[dict]) -> dict[str, list[dict]]:
    """Each instance's security groups as EC2 shows them (name and id), by instance id."""
    lists = _group_lists(cloud, {r["account_id"] for r in rows})
    return {r["instance_id"]: lists(r["account_id"], r["groups"])[0] for r in rows}


def _virtualization(row: dict) -> str:
    return "paravirtual" if row["kernel_id"] else "hvm"


def _instance(row: dict, tags: list[dict] = (), groups: list[dict] = ()) -> dict:
    out = {"InstanceId": row["instance_id"], "ImageId": row["image_id"], "State": state_dict(row["state"]),
           "PrivateDnsName": "", "PublicDnsName": "", "StateTransitionReason": row["reason"] or "",
           "AmiLaunchIndex": row["launch_index"], "InstanceType": row["instance_type"],
           "LaunchTime": ids.isoformat(row["launch_time"]), "Placement": {"AvailabilityZone": row["zone"],
                                                                          "Tenancy": "default"},
           "Monitoring": {"State": "disabled"}, "Architecture": "x86_64", "RootDeviceType": "instance-store",
           "RootDeviceName": ROOT_DEVICE, "VirtualizationType": _virtualization(row), "Hypervisor": "kvm",
           "ClientToken": row["client_token"], "SecurityGroups": list(groups)}
    copy_present(out, row, {"KeyName": "key_name", "KernelId": "kernel_id", "RamdiskId": "ramdisk_id",
                            "PrivateIpAddress": "private_ip", "PublicIpAddress": "public_ip"})
    if row["state"] in ("terminated", "stopping", "stopped") and row["reason"]:
        out["StateReason"] = {"Code": row["reason"].split(":", 1)[0], "Message": row["reason"]}
    if tags:
        out["Tags"] = list(tags)
    return out


#: The order of DescribeInstances and of its page tokens (see _page_key), in SQL.
_PAGE_ORDER = "printf('%020.6f', launch_time), launch_index, instance_id"


def _visible_instances(ctx, every_account: bool = False, wanted: list[str] | None = None,
                       after: tuple[str, str, str] | None = None, limit: int | None = None,
                       columns: tuple[str, ...] | None = None) -> list[dict]:
    """The caller's account's instances (every account's for the cloud admin's verbose view),
    with the terminated ones of the last ``cloud.vmstate.terminated_time`` minutes, in page
    order; only those of ``wanted`` when given (read by id, not by scanning the account's
    instances); only those after the page key ``after``, and at most ``limit``, when given.
    Each a dict, or with ``columns`` a tuple of those columns."""
    horizon = ids.now() - 60 * ctx.cloud.properties.get("cloud.vmstate.terminated_time")
    where, args = ["(state != 'terminated' OR updated >= ?)"], [horizon]
    if not every_account:
        where, args = ["account_id = ?", *where], [ctx.account_id, *args]
    if wanted:
        where, args = ["instance_id IN (SELECT value FROM json_each(?))", *where], [json.dumps(wanted), *args]
    if after:
        where.append(f"({_PAGE_ORDER}) > (?, ?, ?)")
        args += [after[0], int(after[1]), after[2]]
    cursor = ctx.cloud.store.db.execute(
        f"SELECT {', '.join(columns) if columns else '*'} FROM instances WHERE {' AND '.join(where)} "
        f"ORDER BY {_PAGE_ORDER}"
        + (" LIMIT ?" if limit else ""), args + ([limit] if limit else []))
    if columns:
        return cursor.fetchall()
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def own_instances(ctx, instance_ids: list[str]) -> list[dict]:
    """The caller's instances of ``instance_ids`` (each once, in request order); an id that is
    not one of them, another account's included, is InvalidInstanceID.NotFound."""
    horizon = ids.now() - 60 * ctx.cloud.properties.get("cloud.vmstate.terminated_time")
    rows = {r["instance_id"]: r for r in ctx.cloud.store.db["instances"].rows_where(
        "account_id = ? AND instance_id IN (SELECT value FROM json_each(?)) "
        "AND (state != 'terminated' OR updated >= ?)",
        [ctx.account_id, json.dumps(list(instance_ids)), horizon])}
    for instance_id in instance_ids:
        if instance_id not in rows:
            raise not_found("InvalidInstanceID.NotFound", "instance ID", instance_id)
    return [rows[i] for i in dict.fromkeys(instance_ids)]


def _reason_code(row: dict) -> str:
    return row["reason"].split(":", 1)[0] if ":" in (row["reason"] or "") else ""


_FILTERS = {
    "instance-id": lambda r: r["instance_id"], "image-id": lambda r: r["image_id"],
    "instance-state-name": lambda r: r["state"], "instance-state-code": lambda r: STATE_CODES[r["state"]],
    "instance-type": lambda r: r["instance_type"], "availability-zone": lambda r: r["zone"],
    "reservation-id": lambda r: r["reservation_id"], "key-name": lambda r: r["key_name"],
    "owner-id": lambda r: r["account_id"], "kernel-id": lambda r: r["kernel_id"],
    "ramdisk-id": lambda r: r["ramdisk_id"], "private-ip-address": lambda r: r["private_ip"],
    "ip-address": lambda r: r["public_ip"], "launch-index": lambda r: r["launch_index"],
    "dns-name": lambda r: "", "private-dns-name": lambda r: "", "client-token": lambda r: r["client_token"],
    "architecture": lambda r: "x86_64", "hypervisor": lambda r: "kvm", "root-device-type": lambda r: "instance-store",
    "root-device-name": lambda r: ROOT_DEVICE, "virtualization-type": _virtualization,
    "launch-time": lambda r: ids.isoformat(r["launch_time"]), "monitoring-state": lambda r: "disabled",
    "tenancy": lambda r: "default", "platform": lambda r: [], "product-code": lambda r: [],
    "reason": lambda r: r["reason"], "state-reason-code": _reason_code,
    "state-reason-message": lambda r: r["reason"] if _reason_code(r) else "",
}


def _group_filters(groups: dict[str, list[dict]]) -> dict:
    ids_of = lambda r: [g["GroupId"] for g in groups[r["instance_id"]]]  # noqa: E731
    names_of = lambda r: [g["GroupName"] for g in groups[r["instance_id"]]]  # noqa: E731
    return {"group-id": ids_of, "instance.group-id": ids_of, "group-name": names_of, "instance.group-name": names_of}


def requested_instances(ctx, params: dict, in_sql: bool = False,
                        columns: tuple[str, ...] | None = None) -> tuple[list[dict], Page]:
    """The instances a DescribeInstances/DescribeInstanceStatus names (InstanceIds), else all
    the caller sees, in page order (dicts; tuples of ``columns``, instance_id first, when
    given), and the request's Page.  With ``in_sql`` (for a request without filters) only
    the page and the one after it are read.  An id the caller cannot see is
    InvalidInstanceID.NotFound; InstanceIds with MaxResults InvalidParameterCombination."""
    every_account, wanted = sees_all_accounts(ctx, params.get("InstanceIds"), params.get("Filters"))
    page = Page(params)
    if wanted and params.get("MaxResults") is not None:
        raise AWSError("InvalidParameterCombination",
                       "The parameter instancesSet cannot be used with the parameter maxResults")
    if in_sql and page.after is not None and (len(page.after) != 3 or not page.after[1].isdigit()):
        raise AWSError("InvalidPaginationToken", f"Invalid pagination token: {params.get('NextToken')}")
    rows = _visible_instances(ctx, every_account, list(wanted) if wanted else None,
                              *((page.after, page.limit and page.limit + 1) if in_sql else (None, None)), columns)
    return only_ids(rows, wanted, 0 if columns else "instance_id", "InvalidInstanceID.NotFound", "instance ID"), page


#: The columns of an instance's record that DescribeInstances shows: _instance reads no other.
SHOWN_COLUMNS = ("instance_id", "image_id", "state", "reason", "launch_index", "instance_type", "launch_time",
                 "zone", "client_token", "kernel_id", "ramdisk_id", "key_name", "private_ip", "public_ip")
#: What DescribeInstances reads of each instance, as a tuple: what it shows, then what its
#: reservations and filters use. Tuples, not dicts: at 10,000 instances the dicts were a fifth
#: of the time.
_DESCRIBED_COLUMNS = SHOWN_COLUMNS + ("reservation_id", "account_id", "groups")
_SHOWN = len(SHOWN_COLUMNS)
_RESERVATION, _ACCOUNT, _GROUPS = map(_DESCRIBED_COLUMNS.index, ("reservation_id", "account_id", "groups"))
_LAUNCH_TIME, _LAUNCH_INDEX = SHOWN_COLUMNS.index("launch_time"), SHOWN_COLUMNS.index("launch_index")
_tag_pair, _group_pair = operator.itemgetter("Key", "Value"), operator.itemgetter("GroupName", "GroupId")


def _page_key(row: tuple) -> tuple[str, str, str]:
    return f"{row[_LAUNCH_TIME]:020.6f}", f"{row[_LAUNCH_INDEX]:08d}", row[0]


def _as_dict(row: tuple) -> dict:
    return dict(zip(_DESCRIBED_COLUMNS, row))


def describe_instances(ctx, params):
    rows, page = requested_instances(ctx, params, in_sql=not params.get("Filters"), columns=_DESCRIBED_COLUMNS)
    groups = _group_lists(ctx.cloud, {r[_ACCOUNT] for r in rows})
    if params.get("Filters"):
        rows = _filtered(ctx, rows, params["Filters"], groups)
    dry_run(params)
    rows, more = page.of(rows, _page_key)
    tags = tag_sets(ctx, [r[0] for r in rows])
    reservations: dict[str, dict] = {}
    for row in rows:
        group_list, group_key = groups(row[_ACCOUNT], row[_GROUPS])
        res = reservations.get(row[_RESERVATION])
        if res is None:
            res = reservations[row[_RESERVATION]] = {"ReservationId": row[_RESERVATION], "OwnerId": row[_ACCOUNT],
                                                     "Groups": group_list, "Instances": []}
        res["Instances"].append(_described(row, tags[row[0]], group_list, group_key))
    return {"Reservations": list(reservations.values()), **more}


def _filtered(ctx, rows: list[tuple], filters: list[dict], groups) -> list[tuple]:
    """The rows that pass DescribeInstances's ``filters``."""
    dicts = [_as_dict(row) for row in rows]
    kept = {id(r) for r in apply_filters(dicts, filters, {
        **_FILTERS, **_group_filters({r["instance_id"]: groups(r["account_id"], r["groups"])[0] for r in dicts}),
        **tag_getters(ctx, [r["instance_id"] for r in dicts], lambda r: r["instance_id"])})}
    return [row for row, as_dict in zip(rows, dicts) if id(as_dict) in kept]


def _described(row: tuple, tags: list[dict], groups: list[dict], group_key: tuple) -> Keyed:
    """The instance as DescribeInstances shows it, keyed by all it is made of (the columns
    shown, its tags and groups), so that the response writer writes each unchanged
    instance's XML only once."""
    key = (row[:_SHOWN], tuple(map(_tag_pair, tags)) if tags else (), group_key)
    return Keyed(row[0], key, functools.partial(_instance_of, row, tags, groups))


def _instance_of(row: tuple, tags: list[dict], groups: list[dict]) -> dict:
    return _instance(_as_dict(row), tags, groups)


# -- changes of state -------------------------------------------------------------------------------

def _transition(ctx, rows: list[dict], moves: dict[str, str], reason: str,
                **columns) -> tuple[list[dict], list[dict]]:
    """Move each instance whose state is a key of ``moves`` to that key's value (with
    ``reason`` and ``columns``); the others stay. Returns (EC2's state change of each
    instance, the rows that moved as they are now)."""
    changes, moved = [], []
    with ctx.cloud.store.atomic():
        for row in rows:
            previous = row["state"]
            current = moves.get(previous, previous)
            if current != previous:
                ctx.cloud.store.db["instances"].update(row["instance_id"], {
                    "state": current, "reason": reason, "updated": ids.now(), **columns})
                record_state_change(ctx.cloud, row, current)
                moved.append({**row, "state": current, "reason": reason, **columns})
            changes.append({"InstanceId": row["instance_id"], "CurrentState": state_dict(current),
                            "PreviousState": state_dict(previous)})
    return changes, moved


def _clusters(ctx) -> dict[str, dict]:
    return {c["partition"]: c for c in ctx.cloud.clusters()}


def _ask_cluster(ctx, zone: str, operation: str, **request):
    """``operation`` of the zone's cluster; a cluster that fails is logged (the poller asks
    again) and None returned. A soap.Fault of the cluster is raised."""
    cluster = _clusters(ctx).get(zone)
    if cluster is None:
        log.warning("no cluster for zone %s: %s not sent", zone, operation)
        return None
    try:
        return getattr(ctx.cloud.cc(cluster), operation)(correlationId=ctx.request_id, **request)
    except soap.TransportError as e:
        log.warning("cluster %s: %s failed: %s", zone, operation, e)
        return None


def terminate_instances(ctx, params):
    rows = own_instances(ctx, params["InstanceIds"])
    for row in rows:
        if row["disable_api_termination"] and row["state"] != "terminated":
            raise AWSError("OperationNotPermitted", f"The instance '{row['instance_id']}' may not be terminated. "
                                                    f"Modify its 'disableApiTermination' instance attribute and "
                                                    f"try again.")
    dry_run(params)
    moves = {state: "shutting-down" for state in STATE_CODES if state != "terminated"}
    changes, moved = _transition(ctx, rows, moves, "User initiated")
    clusters, by_zone = _clusters(ctx), {}
    for row in moved:
        by_zone.setdefault(row["zone"], []).append(row["instance_id"])
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


def _require(rows: list[dict], states: tuple[str, ...], what: str) -> None:
    for row in rows:
        if row["state"] not in states:
            raise incorrect_state(row["instance_id"], what)


def stop_instances(ctx, params):
    if params.get("Hibernate"):
        raise AWSError("UnsupportedHibernationConfiguration", "Hibernation is not supported by this cloud")
    rows = own_instances(ctx, params["InstanceIds"])
    _require(rows, ("running", "stopping", "stopped"), "stopped")
    dry_run(params)
    force = bool(params.get("Force"))
    changes, moved = _transition(ctx, rows, {"running": "stopping"}, USER_STOP)
    # Force also pulls the plug of an instance that is still shutting down.
    for row in moved + [r for r in rows if force and r["state"] == "stopping"]:
        try:
            _ask_cluster(ctx, row["zone"], "StopInstance", instanceId=row["instance_id"], force=force)
        except soap.Fault as e:
            log.warning("stop %s: %s", row["instance_id"], e.message)
    return {"StoppingInstances": changes}


def _vm(cloud, type_name: str) -> dict:
    vm = cloud.instance_types()[type_name]
    return {"name": type_name, "memory": vm["memory"], "cores": vm["cores"], "disk": vm["disk"]}


def start_instances(ctx, params):
    rows = own_instances(ctx, params["InstanceIds"])
    _require(rows, ("stopped", "pending", "running"), "started")
    dry_run(params)
    changes, moved = _transition(ctx, rows, {"stopped": "pending"}, "", launch_time=ids.now())
    full = []
    for row in moved:
        try:
            _ask_cluster(ctx, row["zone"], "StartInstance", instanceId=row["instance_id"],
                         instanceType=_vm(ctx.cloud, row["instance_type"]))
        except soap.Fault as e:
            log.warning("start %s: %s", row["instance_id"], e.message)
            if "InsufficientInstanceCapacity" in (e.code or ""):
                full.append(row)
    if full:
        _transition(ctx, full, {"pending": "stopped"}, "Server.InsufficientInstanceCapacity: Insufficient capacity")
        raise AWSError("InsufficientInstanceCapacity", "There is not enough capacity to start "
                       + ", ".join(r["instance_id"] for r in full) + " on the node that holds its disk")
    return {"StartingInstances": changes}


def reboot_instances(ctx, params):
    rows = own_instances(ctx, params["InstanceIds"])
    _require(rows, ("running", "shutting-down", "terminated"), "rebooted")  # EC2 ignores ending ones
    dry_run(params)
    by_zone = {}
    for row in rows:
        if row["state"] == "running":
            by_zone.setdefault(row["zone"], []).append(row["instance_id"])
    for zone, instance_ids in by_zone.items():
        try:
            _ask_cluster(ctx, zone, "RebootInstances", instanceIds=instance_ids)
        except soap.Fault as e:
            log.warning("cluster %s: RebootInstances failed: %s", zone, e.message)
    return {}


def get_console_output(ctx, params):
    (row,) = own_instances(ctx, [params["InstanceId"]])
    dry_run(params)
    output = ""
    if row["state"] not in ("pending", "terminated"):
        try:
            reply = _ask_cluster(ctx, row["zone"], "GetConsoleOutput", instanceId=row["instance_id"])
            output = (reply.consoleOutput if reply is not None else "") or ""
        except soap.Fault as e:
            log.warning("console output of %s: %s", row["instance_id"], e.message)
    data = base64.b64decode(output)[-CONSOLE_TAIL:]
    out = {"InstanceId": row["instance_id"], "Timestamp": ids.isoformat(ids.now())}
    if data:
        out["Output"] = base64.b64encode(data).decode()
    return out


def user_data_text(row: dict) -> bytes:
    return base64.b64decode(row["user_data"]) if row["user_data"] else b""


HANDLERS = {"RunInstances": run_instances, "DescribeInstances": describe_instances,
            "TerminateInstances": terminate_instances, "StopInstances": stop_instances,
            "StartInstances": start_instances, "RebootInstances": reboot_instances,
            "GetConsoleOutput": get_console_output}
