"""Volumes and snapshots: records, states, quotas and usage; the zone's SC holds the bytes.

A volume is recorded (``creating``) before the zone's storage controller is asked
to create it, then becomes ``available``, or ``error`` if the SC refuses or cannot
be reached.  The SC answers synchronously, so no poll is needed.  Attachments and
snapshots are records only for now: the NC attaches volumes and the SC copies
snapshots to Walrus with the storage issue.
"""

import logging
import re

from eucacore import ids, soap
from eucacore.awsapi.errors import AWSError
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import Page, apply_filters, checked_attribute, dry_run, not_found, only_ids
from clc.ec2.permissions import PUBLIC, change_grantees, grantees_of, permission_changes, permission_items
from clc.ec2.tags import add_tags, delete_resource_tags, requested_tags, tag_getters, tag_sets

log = logging.getLogger("eucalyptus.clc.volumes")

#: The SC's limit (sc.volumes.MAX_VOLUME_GB), checked here so a refusal costs no record.
MAX_VOLUME_GIB = 1024
VOLUME_TYPE = "standard"
CREATE_VOLUME_PERMISSION = "createVolumePermission"
PAGE_MIN = 5
_DEVICE = re.compile(r"^/dev/(sd|vd|xvd|hd)[b-z][0-9]{0,2}$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
#: CreateVolume members this cloud cannot honour: refused rather than silently ignored.
_UNSUPPORTED_VOLUME_MEMBERS = ("Iops", "KmsKeyId", "OutpostArn", "Throughput", "VolumeInitializationRate",
                               "Operator")


# -- the zone's storage controller ------------------------------------------------------------------

def storage_controller(cloud, zone: str):
    """A SOAP client of the SC registered for ``zone``, or None if the zone has none."""
    for sc in cloud.components("sc"):
        if sc["partition"] == zone:
            return soap.client("EucalyptusSC", sc["host"], sc["port"], cloud.keys, timeout=60)
    return None


def _fault_code(error: Exception) -> str:
    return (getattr(error, "code", None) or "") if isinstance(error, soap.Fault) else ""


def _page(params: dict, ids_member: str, maximum: int) -> Page:
    """The Describe's paging, validated (before DryRun): ids and MaxResults don't mix, as in EC2."""
    if params.get("MaxResults") is not None and params.get(ids_member):
        raise AWSError("InvalidParameterCombination",
                       f"The parameter {ids_member} cannot be used with the parameter maxResults")
    return Page(params, PAGE_MIN, maximum)


# -- volumes: records -------------------------------------------------------------------------------

def _live_volumes(ctx, every_account: bool = False) -> list[dict]:
    where, args = "state != 'deleted'", []
    if not every_account:
        where, args = "account_id = ? AND " + where, [ctx.account_id]
    return list(ctx.cloud.store.db["volumes"].rows_where(where, args, order_by="volume_id"))


def _own(ctx, table: str, id_column: str, ident: str, code: str, what: str) -> dict:
    """The caller's own row ``ident`` of ``table`` (not deleted), else ``code`` (NotFound)."""
    rows = list(ctx.cloud.store.db[table].rows_where(
        f"{id_column} = ? AND account_id = ? AND state != 'deleted'", [ident, ctx.account_id]))
    if not rows:
        raise not_found(code, what, ident)
    return rows[0]


def own_volume(ctx, volume_id: str) -> dict:
    """The caller's volume ``volume_id`` (not deleted), else InvalidVolume.NotFound."""
    return _own(ctx, "volumes", "volume_id", volume_id, "InvalidVolume.NotFound", "volume")


def _attachment(row: dict) -> dict:
    return {"VolumeId": row["volume_id"], "InstanceId": row["instance_id"], "Device": row["device"],
            "State": row["attach_state"], "AttachTime": ids.isoformat(row["attach_time"]),
            "DeleteOnTermination": bool(row["delete_on_termination"])}


def _volume(row: dict, tags: list[dict] | None = None) -> dict:
    out = {"VolumeId": row["volume_id"], "Size": row["size"], "SnapshotId": row["snapshot_id"] or "",
           "AvailabilityZone": row["zone"], "State": row["state"], "CreateTime": ids.isoformat(row["created"]),
           "Attachments": [_attachment(row)] if row["instance_id"] else [], "VolumeType": VOLUME_TYPE,
           "Encrypted": False, "MultiAttachEnabled": False}
    if tags:
        out["Tags"] = tags
    return out


def _zone(ctx, params: dict) -> str:
    """The zone CreateVolume names (by name or id), which must be a registered cluster's."""
    zones = {c["partition"] for c in ctx.cloud.clusters()}
    name, zone_id = params.get("AvailabilityZone"), params.get("AvailabilityZoneId")
    if not name and not zone_id:
        raise AWSError("MissingParameter", "The request must contain the parameter AvailabilityZone")
    if name:
        if name not in zones:
            raise AWSError("InvalidZone.NotFound", f"The zone '{name}' does not exist.")
        return name
    by_id = {f"eucalyptus-{zone}": zone for zone in zones}  # the ZoneId DescribeAvailabilityZones shows
    if zone_id not in by_id:
        raise AWSError("InvalidZone.NotFound", f"The zone ID '{zone_id}' does not exist.")
    return by_id[zone_id]


def _check_volume_options(params: dict) -> None:
    for member in _UNSUPPORTED_VOLUME_MEMBERS:
        if params.get(member) is not None:
            raise AWSError("InvalidParameterValue", f"The parameter {member} is not supported by this cloud.")
    if params.get("Encrypted") or params.get("MultiAttachEnabled"):
        raise AWSError("InvalidParameterValue", "Encrypted and multi-attach volumes are not supported by this cloud.")
    volume_type = params.get("VolumeType") or VOLUME_TYPE
    if volume_type != VOLUME_TYPE:
        raise AWSError("InvalidParameterValue",
                       f"The volume type '{volume_type}' is not supported; this cloud offers '{VOLUME_TYPE}'.")


def _volume_size(ctx, params: dict) -> tuple[int, dict | None]:
    """(size in GiB, source snapshot or None) of a CreateVolume request."""
    size, snapshot = params.get("Size"), None
    if params.get("SnapshotId"):
        snapshot = visible_snapshot(ctx, params["SnapshotId"])
        if snapshot["state"] != "completed":
            raise AWSError("IncorrectState", f"Snapshot '{snapshot['snapshot_id']}' is not 'completed'.")
        if size is None:
            size = snapshot["volume_size"]
        elif size < snapshot["volume_size"]:
            raise AWSError("InvalidParameterValue",
                           f"Volume of {size}GiB is too small; minimum is {snapshot['volume_size']}GiB.")
    elif size is None:
        raise AWSError("MissingParameter", "The request must contain the parameter size or snapshotId")
    if size < 1:
        raise AWSError("InvalidParameterValue", "The parameter size must be greater than zero.")
    if size > MAX_VOLUME_GIB:
        raise AWSError("InvalidParameterValue", f"Volume of {size}GiB is too large; maximum is {MAX_VOLUME_GIB}GiB.")
    return size, snapshot


# -- volumes: actions -------------------------------------------------------------------------------

def create_volume(ctx, params):
    """Records the volume (counted against the quotas, its usage started), then has the zone's
    SC create it: ``available`` when it did, ``error`` when it did not."""
    _check_volume_options(params)
    size, snapshot = _volume_size(ctx, params)
    zone = _zone(ctx, params)
    tags = requested_tags(params, "volume")
    sc = storage_controller(ctx.cloud, zone)
    if sc is None:
        raise AWSError("InsufficientVolumeCapacity", f"There is no storage controller in the zone '{zone}'.")
    dry_run(params)
    # ClientToken (boto3 always sends one) is accepted, but volumes have no column to keep it,
    # so a retried CreateVolume is not yet recognized as the same request.
    row = {"volume_id": ids.new_id("vol"), "account_id": ctx.account_id, "size": size,
           "snapshot_id": snapshot["snapshot_id"] if snapshot else "", "zone": zone, "state": "creating",
           "created": ids.now(), "instance_id": "", "device": "", "attach_state": "", "attach_time": None,
           "delete_on_termination": 0}
    with ctx.cloud.store.atomic():
        ctx.cloud.quotas.check(ctx.account_id, volumes=1, volume_gib=size)
        ctx.cloud.store.db["volumes"].insert(row)
        ctx.cloud.usage.started(ctx.account_id, "volume", row["volume_id"], quantity=size)
        add_tags(ctx, [row["volume_id"]], tags, "volume")
    try:
        # The snapshot's bytes arrive with the storage issue; until the SC can restore them, a
        # volume from a snapshot is a blank volume of its size (the SC refuses a snapshotId).
        sc.CreateStorageVolume(volumeId=row["volume_id"], size=size, correlationId=ctx.request_id,
                               userId=ctx.credentials.user_id)
        row["state"] = "available"
    except (soap.Fault, *soap.TransportError) as e:
        log.warning("%s: SC of %s could not create %s: %s", ctx.request_id, zone, row["volume_id"], e)
        row["state"] = "error"
    with ctx.cloud.store.atomic():
        ctx.cloud.store.db["volumes"].update(row["volume_id"], {"state": row["state"]})
        if row["state"] == "error":
            ctx.cloud.usage.ended("volume", row["volume_id"])  # a failed volume holds no storage
    return _volume(row, tags)


def fail_interrupted_creations(cloud) -> list[str]:
    """Sets to ``error`` the volumes an earlier run of the CLC left ``creating`` (it stopped
    between recording one and the SC's answer), so they can be deleted; returns their ids.

    Call before serving requests, when no CreateVolume of this run can be under way.
    """
    with cloud.store.atomic() as db:
        volume_ids = [r["volume_id"] for r in db["volumes"].rows_where("state = 'creating'")]
        for volume_id in volume_ids:
            db["volumes"].update(volume_id, {"state": "error"})
            cloud.usage.ended("volume", volume_id)
    for volume_id in volume_ids:
        # The SC may hold it or not; DeleteVolume copes with either.
        log.warning("%s was being created when the CLC stopped; it is now 'error'", volume_id)
    return volume_ids


def delete_volume(ctx, params):
    """Deletes an available (or failed) volume: ``deleting``, the SC removes it, ``deleted``.

    A volume left ``deleting`` (the CLC stopped before the SC answered) may be deleted again.
    """
    volume_id = params["VolumeId"]
    with ctx.cloud.store.atomic():
        row = own_volume(ctx, volume_id)
        if row["instance_id"]:
            raise AWSError("VolumeInUse", f"Volume {volume_id} is currently attached to {row['instance_id']}")
        if row["state"] not in ("available", "error", "deleting"):
            raise AWSError("IncorrectState", f"The volume '{volume_id}' is '{row['state']}'.")
        dry_run(params)
        ctx.cloud.store.db["volumes"].update(volume_id, {"state": "deleting"})
    sc = storage_controller(ctx.cloud, row["zone"])
    try:
        if sc is None:
            log.warning("%s: no SC in %s any more; %s is forgotten", ctx.request_id, row["zone"], volume_id)
        else:
            sc.DeleteStorageVolume(volumeId=volume_id, correlationId=ctx.request_id, userId=ctx.credentials.user_id)
    except (soap.Fault, *soap.TransportError) as e:
        if "InvalidVolume.NotFound" not in _fault_code(e):  # the SC never had it (an 'error' volume)
            log.warning("%s: SC of %s could not delete %s: %s", ctx.request_id, row["zone"], volume_id, e)
            with ctx.cloud.store.atomic():
                ctx.cloud.store.db["volumes"].update(volume_id, {"state": row["state"]})
            raise AWSError("InternalError", f"The storage controller could not delete {volume_id}; "
                                            "try again later.", 500) from None
    with ctx.cloud.store.atomic():
        ctx.cloud.store.db["volumes"].update(volume_id, {"state": "deleted"})
        ctx.cloud.usage.ended("volume", volume_id)
        delete_resource_tags(ctx, [volume_id])
    return {}


def _described_volumes(ctx, params: dict) -> list[dict]:
    """The volumes a DescribeVolumes/DescribeVolumeStatus names (all visible ones if none)."""
    every_account, wanted = sees_all_accounts(ctx, params.get("VolumeIds"), params.get("Filters"))
    rows = _live_volumes(ctx, every_account)
    return only_ids(rows, wanted, "volume_id", "InvalidVolume.NotFound", "volume")


def _attached(r: dict, value):
    """A filter value of the volume's attachment, or nothing to match when it has none."""
    return value if r["instance_id"] else []


_VOLUME_FILTERS = {
    "attachment.attach-time": lambda r: _attached(r, r["attach_time"] and ids.isoformat(r["attach_time"])),
    "attachment.delete-on-termination": lambda r: _attached(r, "true" if r["delete_on_termination"] else "false"),
    "attachment.device": lambda r: _attached(r, r["device"]),
    "attachment.instance-id": lambda r: _attached(r, r["instance_id"]),
    "attachment.status": lambda r: _attached(r, r["attach_state"]),
    "availability-zone": lambda r: r["zone"], "create-time": lambda r: ids.isoformat(r["created"]),
    "encrypted": lambda r: "false", "fast-restored": lambda r: "false", "multi-attach-enabled": lambda r: "false",
    "size": lambda r: r["size"], "snapshot-id": lambda r: r["snapshot_id"], "status": lambda r: r["state"],
    "volume-id": lambda r: r["volume_id"], "volume-type": lambda r: VOLUME_TYPE,
}


def describe_volumes(ctx, params):
    page = _page(params, "VolumeIds", 500)
    rows = _described_volumes(ctx, params)
    dry_run(params)
    volume_ids = [r["volume_id"] for r in rows]
    getters = {**_VOLUME_FILTERS, **tag_getters(ctx, volume_ids, lambda r: r["volume_id"])}
    rows = apply_filters(rows, params.get("Filters"), getters)
    rows, out = page.of(rows, lambda r: r["volume_id"])
    tags = tag_sets(ctx, [r["volume_id"] for r in rows])
    out["Volumes"] = [_volume(r, tags[r["volume_id"]]) for r in rows]
    return out


def _status(row: dict) -> tuple[str, str]:
    """(volume status, io-enabled check) as AWS reports them for the volume's state."""
    if row["state"] in ("available", "in-use"):
        return "ok", "passed"
    if row["state"] == "error":
        return "impaired", "failed"
    return "insufficient-data", "insufficient-data"


_STATUS_FILTERS = {
    "availability-zone": lambda r: r["zone"], "volume-status.status": lambda r: _status(r)[0],
    "volume-status.details-name": lambda r: ["io-enabled", "io-performance"],
    "volume-status.details-status": lambda r: [_status(r)[1], "not-applicable"],
    # No volume has scheduled events or actions.
    **{name: (lambda r: []) for name in ("action.code", "action.description", "action.event-id",
                                          "event.description", "event.event-id", "event.event-type",
                                          "event.not-after", "event.not-before")},
}


def describe_volume_status(ctx, params):
    page = _page(params, "VolumeIds", 1000)
    rows = _described_volumes(ctx, params)
    dry_run(params)
    rows = apply_filters(rows, params.get("Filters"), _STATUS_FILTERS)
    rows, out = page.of(rows, lambda r: r["volume_id"])
    statuses = []
    for r in rows:
        status, io_enabled = _status(r)
        entry = {"VolumeId": r["volume_id"], "AvailabilityZone": r["zone"], "Actions": [], "Events": [],
                 "VolumeStatus": {"Status": status, "Details": [
                     {"Name": "io-enabled", "Status": io_enabled},
                     {"Name": "io-performance", "Status": "not-applicable"}]}}
        if r["instance_id"]:
            entry["AttachmentStatuses"] = [{"InstanceId": r["instance_id"]}]
        statuses.append(entry)
    out["VolumeStatuses"] = statuses
    return out


# -- attachments ------------------------------------------------------------------------------------

def own_instance(ctx, instance_id: str) -> dict:
    """The caller's instance, as DescribeInstances shows it, else InvalidInstanceID.NotFound."""
    horizon = ids.now() - 60 * ctx.cloud.properties.get("cloud.vmstate.terminated_time")
    rows = list(ctx.cloud.store.db["instances"].rows_where(
        "instance_id = ? AND account_id = ? AND (state != 'terminated' OR updated >= ?)",
        [instance_id, ctx.account_id, horizon]))
    if not rows:
        raise not_found("InvalidInstanceID.NotFound", "instance ID", instance_id)
    return rows[0]


def attach_volume(ctx, params):
    """Attaches the caller's available volume to its running instance in the same zone."""
    volume_id, instance_id, device = params["VolumeId"], params["InstanceId"], params["Device"]
    if not _DEVICE.match(device):
        raise AWSError("InvalidParameterValue",
                       f"Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name.")
    with ctx.cloud.store.atomic():
        volume = own_volume(ctx, volume_id)
        instance = own_instance(ctx, instance_id)
        if volume["instance_id"]:
            raise AWSError("VolumeInUse", f"{volume_id} is already attached to an instance")
        if volume["state"] != "available":
            raise AWSError("IncorrectState", f"Volume '{volume_id}' is in the '{volume['state']}' state.")
        if instance["state"] != "running":
            raise AWSError("IncorrectState", f"Instance '{instance_id}' is not 'running'.")
        if volume["zone"] != instance["zone"]:
            raise AWSError("InvalidVolume.ZoneMismatch", f"The volume '{volume_id}' is not in the same "
                                                         f"availability zone as instance '{instance_id}'")
        if list(ctx.cloud.store.db["volumes"].rows_where("instance_id = ? AND device = ? AND state = 'in-use'",
                                                         [instance_id, device])):
            raise AWSError("InvalidParameterValue",
                           f"Invalid value '{device}' for unixDevice. Attachment point {device} is already in use")
        dry_run(params)
        # The NC attaches the volume with the storage issue; until then the attachment is only
        # recorded, so it goes straight to 'attached' instead of 'attaching' first.
        changes = {"state": "in-use", "instance_id": instance_id, "device": device, "attach_state": "attached",
                   "attach_time": ids.now(), "delete_on_termination": 0}
        ctx.cloud.store.db["volumes"].update(volume_id, changes)
    return _attachment({**volume, **changes})


def detach_volume(ctx, params):
    """Detaches the caller's volume (Force is accepted; there is nothing to force yet)."""
    volume_id = params["VolumeId"]
    with ctx.cloud.store.atomic():
        volume = own_volume(ctx, volume_id)
        if not volume["instance_id"]:
            raise AWSError("IncorrectState", f"Volume '{volume_id}' is in the '{volume['state']}' state.")
        for member, column in (("InstanceId", "instance_id"), ("Device", "device")):
            if params.get(member) and params[member] != volume[column]:
                raise AWSError("InvalidAttachment.NotFound",
                               f"Volume '{volume_id}' is not attached to {member} '{params[member]}'.")
        dry_run(params)
        # Like attaching, detaching is a record until the NC does it.
        ctx.cloud.store.db["volumes"].update(volume_id, {"state": "available", "instance_id": "", "device": "",
                                                         "attach_state": "", "attach_time": None})
    return _attachment({**volume, "attach_state": "detached"})


def detach_instance_volumes(cloud, instance_id: str) -> None:
    """Detaches every volume of a terminated instance (they become available); call in the
    transaction that records the termination."""
    with cloud.store.atomic() as db:
        db.execute("UPDATE volumes SET state = 'available', instance_id = '', device = '', attach_state = '', "
                   "attach_time = NULL WHERE instance_id = ? AND state = 'in-use'", [instance_id])


# -- snapshots: records -----------------------------------------------------------------------------

def _visible_snapshots(ctx, every_account: bool = False) -> list[dict]:
    """Snapshots the caller may see: its own and those shared with its account or with all."""
    if every_account:
        return list(ctx.cloud.store.db["snapshots"].rows_where("state != 'deleted'", order_by="snapshot_id"))
    return list(ctx.cloud.store.db["snapshots"].rows_where(
        "state != 'deleted' AND (account_id = ? OR snapshot_id IN "
        "(SELECT snapshot_id FROM snapshot_permissions WHERE grantee IN (?, ?)))",
        [ctx.account_id, ctx.account_id, PUBLIC], order_by="snapshot_id"))


def visible_snapshot(ctx, snapshot_id: str) -> dict:
    """A snapshot the caller may create volumes from, else InvalidSnapshot.NotFound."""
    rows = list(ctx.cloud.store.db["snapshots"].rows_where(
        "snapshot_id = ? AND state != 'deleted' AND (account_id = ? OR snapshot_id IN "
        "(SELECT snapshot_id FROM snapshot_permissions WHERE grantee IN (?, ?)))",
        [snapshot_id, ctx.account_id, ctx.account_id, PUBLIC]))
    if not rows:
        raise not_found("InvalidSnapshot.NotFound", "snapshot", snapshot_id)
    return rows[0]


def own_snapshot(ctx, snapshot_id: str) -> dict:
    """The caller's own snapshot, else InvalidSnapshot.NotFound (shared ones are not the caller's)."""
    return _own(ctx, "snapshots", "snapshot_id", snapshot_id, "InvalidSnapshot.NotFound", "snapshot")


def _grantees(ctx, snapshot_ids: list[str]) -> dict[str, set[str]]:
    return grantees_of(ctx.cloud.store.db, "snapshot_permissions", "snapshot_id", snapshot_ids)


def _snapshot(row: dict, tags: list[dict] | None = None) -> dict:
    out = {"SnapshotId": row["snapshot_id"], "VolumeId": row["volume_id"], "State": row["state"],
           "StartTime": ids.isoformat(row["created"]), "Progress": row["progress"], "OwnerId": row["account_id"],
           "Description": row["description"] or "", "VolumeSize": row["volume_size"], "Encrypted": False,
           "StorageTier": "standard"}
    if tags:
        out["Tags"] = tags
    return out


# -- snapshots: actions -----------------------------------------------------------------------------

def create_snapshot(ctx, params):
    """Snapshots the caller's volume (counted against the snapshots quota, usage = its size)."""
    if params.get("OutpostArn") or params.get("Location"):
        raise AWSError("InvalidParameterValue", "Outposts and local snapshots are not supported by this cloud.")
    description = params.get("Description") or ""
    if len(description) > 255:
        raise AWSError("InvalidParameterValue", "The snapshot description must be at most 255 characters.")
    tags = requested_tags(params, "snapshot")
    with ctx.cloud.store.atomic():
        volume = own_volume(ctx, params["VolumeId"])
        if volume["state"] not in ("available", "in-use"):
            raise AWSError("IncorrectState", f"Volume '{volume['volume_id']}' is in the '{volume['state']}' state.")
        dry_run(params)
        row = {"snapshot_id": ids.new_id("snap"), "account_id": ctx.account_id, "volume_id": volume["volume_id"],
               "volume_size": volume["size"], "state": "pending", "progress": "0%", "description": description,
               "created": ids.now()}
        ctx.cloud.quotas.check(ctx.account_id, snapshots=1)
        ctx.cloud.store.db["snapshots"].insert(row)
        ctx.cloud.usage.started(ctx.account_id, "snapshot", row["snapshot_id"], quantity=volume["size"])
        add_tags(ctx, [row["snapshot_id"]], tags, "snapshot")
    # The SC copies the volume's bytes to Walrus with the storage issue; until then there is
    # nothing to copy and the snapshot completes at once.
    row.update(state="completed", progress="100%")
    with ctx.cloud.store.atomic():
        ctx.cloud.store.db["snapshots"].update(row["snapshot_id"], {"state": "completed", "progress": "100%"})
    return _snapshot(row, tags)


def delete_snapshot(ctx, params):
    snapshot_id = params["SnapshotId"]
    with ctx.cloud.store.atomic():
        own_snapshot(ctx, snapshot_id)
        if list(ctx.cloud.store.db["volumes"].rows_where("snapshot_id = ? AND state = 'creating'", [snapshot_id])):
            raise AWSError("InvalidSnapshot.InUse", f"The snapshot {snapshot_id} is in use by a volume being created.")
        dry_run(params)
        ctx.cloud.store.db["snapshots"].update(snapshot_id, {"state": "deleted"})
        ctx.cloud.store.db.execute("DELETE FROM snapshot_permissions WHERE snapshot_id = ?", [snapshot_id])
        ctx.cloud.usage.ended("snapshot", snapshot_id)
        delete_resource_tags(ctx, [snapshot_id])
    return {}


def _restorable_by(ctx, row: dict, grantees: set[str], who: str) -> bool:
    """Whether ``who`` ('self', 'all' or an account id) may create volumes from the snapshot."""
    if who == "self":
        return row["account_id"] == ctx.account_id or ctx.account_id in grantees
    if who == PUBLIC:
        return PUBLIC in grantees
    return who in grantees or row["account_id"] == who


_SNAPSHOT_FILTERS = {
    "description": lambda r: r["description"] or "", "encrypted": lambda r: "false",
    "owner-alias": lambda r: [], "owner-id": lambda r: r["account_id"], "progress": lambda r: r["progress"],
    "snapshot-id": lambda r: r["snapshot_id"], "start-time": lambda r: ids.isoformat(r["created"]),
    "status": lambda r: r["state"], "storage-tier": lambda r: "standard", "volume-id": lambda r: r["volume_id"],
    "volume-size": lambda r: r["volume_size"],
}


def describe_snapshots(ctx, params):
    """The caller's snapshots and those shared with it, narrowed by ids, owners, restorers and filters."""
    page = _page(params, "SnapshotIds", 1000)
    every_account, wanted = sees_all_accounts(ctx, params.get("SnapshotIds"), params.get("Filters"))
    owners = {ctx.account_id if o == "self" else o for o in params.get("OwnerIds") or []}
    every_account |= ctx.credentials.is_cloud_admin and bool(owners - {ctx.account_id, "amazon"})
    rows = _visible_snapshots(ctx, every_account)
    rows = only_ids(rows, wanted, "snapshot_id", "InvalidSnapshot.NotFound", "snapshot")
    dry_run(params)
    if owners:
        rows = [r for r in rows if r["account_id"] in owners]
    restorers = params.get("RestorableByUserIds")
    if restorers:
        grantees = _grantees(ctx, [r["snapshot_id"] for r in rows])
        rows = [r for r in rows if any(_restorable_by(ctx, r, grantees[r["snapshot_id"]], who) for who in restorers)]
    snapshot_ids = [r["snapshot_id"] for r in rows]
    getters = {**_SNAPSHOT_FILTERS, **tag_getters(ctx, snapshot_ids, lambda r: r["snapshot_id"])}
    rows = apply_filters(rows, params.get("Filters"), getters)
    rows, out = page.of(rows, lambda r: r["snapshot_id"])
    tags = tag_sets(ctx, [r["snapshot_id"] for r in rows])
    out["Snapshots"] = [_snapshot(r, tags[r["snapshot_id"]]) for r in rows]
    return out


# -- snapshot attributes ----------------------------------------------------------------------------

def _permission_grantee(permission: dict) -> str:
    """The grantee of a createVolumePermission item: an account id, or 'all' for the group."""
    user_id, group = permission.get("UserId"), permission.get("Group")
    if bool(user_id) == bool(group):
        raise AWSError("InvalidParameterValue", "A createVolumePermission names either a UserId or a Group.")
    if group:
        if group != PUBLIC:
            raise AWSError("InvalidParameterValue", f"Value ({group}) for parameter group is invalid. "
                                                    f"Expecting '{PUBLIC}'.")
        return PUBLIC
    if not _ACCOUNT_ID.match(user_id):
        raise AWSError("InvalidParameterValue", f"Value ({user_id}) for parameter userId is invalid. "
                                                "Expecting a 12-digit account ID.")
    return user_id


def _permission_changes(params: dict) -> tuple[set[str], set[str]]:
    """(grantees to add, grantees to remove) of a ModifySnapshotAttribute, in either of its forms:
    CreateVolumePermission {Add, Remove}, or OperationType with UserIds and GroupNames."""
    if params.get("Attribute") is not None:
        checked_attribute(params["Attribute"], (CREATE_VOLUME_PERMISSION,))
    return permission_changes(params, _permission_grantee, member="CreateVolumePermission",
                              groups_member="GroupNames", attribute=CREATE_VOLUME_PERMISSION)


def modify_snapshot_attribute(ctx, params):
    """Adds or removes createVolumePermission grants (account ids, or the group 'all') of the caller's snapshot."""
    add, remove = _permission_changes(params)
    snapshot_id = params["SnapshotId"]
    with ctx.cloud.store.atomic() as db:
        own_snapshot(ctx, snapshot_id)
        dry_run(params)
        change_grantees(db, "snapshot_permissions", "snapshot_id", snapshot_id, add, remove)
    return {}


def describe_snapshot_attribute(ctx, params):
    attribute = checked_attribute(params["Attribute"], (CREATE_VOLUME_PERMISSION, "productCodes"))
    snapshot_id = params["SnapshotId"]
    own_snapshot(ctx, snapshot_id)
    dry_run(params)
    if attribute == "productCodes":
        return {"SnapshotId": snapshot_id, "ProductCodes": []}
    permissions = permission_items(_grantees(ctx, [snapshot_id])[snapshot_id])
    return {"SnapshotId": snapshot_id, "CreateVolumePermissions": permissions}


def reset_snapshot_attribute(ctx, params):
    """Makes the caller's snapshot private again (only createVolumePermission can be reset)."""
    checked_attribute(params["Attribute"], (CREATE_VOLUME_PERMISSION,))
    snapshot_id = params["SnapshotId"]
    with ctx.cloud.store.atomic() as db:
        own_snapshot(ctx, snapshot_id)
        dry_run(params)
        db.execute("DELETE FROM snapshot_permissions WHERE snapshot_id = ?", [snapshot_id])
    return {}


HANDLERS = {
    "CreateVolume": create_volume, "DeleteVolume": delete_volume, "DescribeVolumes": describe_volumes,
    "DescribeVolumeStatus": describe_volume_status, "AttachVolume": attach_volume, "DetachVolume": detach_volume,
    "CreateSnapshot": create_snapshot, "DeleteSnapshot": delete_snapshot, "DescribeSnapshots": describe_snapshots,
    "DescribeSnapshotAttribute": describe_snapshot_attribute, "ModifySnapshotAttribute": modify_snapshot_attribute,
    "ResetSnapshotAttribute": reset_snapshot_attribute,
}
