"""Images: RegisterImage (an image object or bundle manifest in Walrus), DescribeImages, DeregisterImage."""

import logging

import botocore.exceptions

from eucacore import ids
from eucacore.awsapi.errors import AWSError
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import apply_filters, copy_present, dry_run, not_found
from clc.ec2.tags import delete_resource_tags, tag_getters, tag_sets

log = logging.getLogger("eucalyptus.clc.images")
_PREFIX = {"machine": "emi", "kernel": "eki", "ramdisk": "eri"}


def _split_location(location: str) -> tuple[str, str]:
    bucket, _, key = location.lstrip("/").partition("/")
    if not bucket or not key:
        raise AWSError("InvalidParameterValue", f"ImageLocation must be bucket/key, got '{location}'")
    return bucket, key


def _head_object(ctx, bucket: str, key: str) -> dict:
    """The image object's metadata, read from Walrus with the caller's own credentials."""
    s3 = ctx.cloud.s3(ctx.credentials)
    if s3 is None:
        raise AWSError("InvalidParameterValue", "no Walrus is registered to hold images")
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (403, 404):
            raise AWSError("InvalidManifest", f"cannot read image object {bucket}/{key} (HTTP {status})")
        raise AWSError("InternalError", f"Walrus answered {status} for {bucket}/{key}", 500)
    except botocore.exceptions.BotoCoreError as e:
        log.error("Walrus unreachable: %s", e)
        raise AWSError("InternalError", "the image store is unreachable", 500)


def register_image(ctx, params):
    location = params.get("ImageLocation")
    if not location:
        raise AWSError("MissingParameter", "ImageLocation is required (EBS-backed images are not supported)")
    name = params.get("Name") or location.rsplit("/", 1)[-1]
    bucket, key = _split_location(location)
    image_type = "kernel" if key.startswith("vmlinuz") or params.get("ImageType") == "kernel" else "machine"
    for ref, code in (("KernelId", "eki"), ("RamdiskId", "eri")):
        if params.get(ref) and not _visible(ctx, params[ref]):
            raise not_found("InvalidAMIID.NotFound", "image id", params[ref])
    dry_run(params)
    head = _head_object(ctx, bucket, key)
    row = {"image_id": ids.new_id(_PREFIX[image_type]), "account_id": ctx.account_id, "location": f"{bucket}/{key}",
           "name": name, "description": params.get("Description") or "",
           "architecture": params.get("Architecture") or "x86_64", "image_type": image_type,
           "state": "available", "kernel_id": params.get("KernelId") or "", "ramdisk_id": params.get("RamdiskId") or "",
           "is_public": 0, "size": int(head.get("ContentLength") or 0), "created": ids.now()}
    table = ctx.cloud.store.db["images"]
    with ctx.cloud.store.atomic():
        if list(table.rows_where("account_id = ? AND name = ? AND state != 'deregistered'", [ctx.account_id, name])):
            raise AWSError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI")
        table.insert(row)
    return {"ImageId": row["image_id"]}


def _visible(ctx, image_id: str) -> dict | None:
    rows = list(ctx.cloud.store.db["images"].rows_where(
        "image_id = ? AND state != 'deregistered' AND (account_id = ? OR is_public = 1)", [image_id, ctx.account_id]))
    return rows[0] if rows else None


def visible_image(ctx, image_id: str) -> dict:
    """The image if the caller may launch it, else InvalidAMIID.NotFound."""
    row = _visible(ctx, image_id)
    if row is None:
        raise not_found("InvalidAMIID.NotFound", "image id", image_id)
    return row


def _image(row, ctx, tags: list[dict] = ()) -> dict:
    out = {"ImageId": row["image_id"], "ImageLocation": row["location"], "State": row["state"],
           "OwnerId": row["account_id"], "Public": bool(row["is_public"]), "Architecture": row["architecture"],
           "ImageType": row["image_type"], "Name": row["name"], "RootDeviceType": "instance-store",
           "VirtualizationType": "paravirtual" if row["kernel_id"] else "hvm", "Hypervisor": "kvm",
           "CreationDate": ids.isoformat(row["created"])}
    if tags:
        out["Tags"] = list(tags)
    return copy_present(out, row, {"Description": "description", "KernelId": "kernel_id", "RamdiskId": "ramdisk_id"})


def describe_images(ctx, params):
    """The caller's, public and (for the cloud admin asking with ``verbose``, an owner-id filter
    or another account in Owners) every account's images."""
    every_account, wanted = sees_all_accounts(ctx, params.get("ImageIds"), params.get("Filters"))
    every_account |= ctx.credentials.is_cloud_admin and bool(set(params.get("Owners") or []) - {"self", "amazon"})
    if every_account:
        rows = list(ctx.cloud.store.db["images"].rows_where("state != 'deregistered'", order_by="image_id"))
    else:
        rows = list(ctx.cloud.store.db["images"].rows_where(
            "state != 'deregistered' AND (account_id = ? OR is_public = 1)", [ctx.account_id], order_by="image_id"))
    if wanted:
        for image_id in wanted:
            if not any(r["image_id"] == image_id for r in rows):
                raise not_found("InvalidAMIID.NotFound", "image id", image_id)
        rows = [r for r in rows if r["image_id"] in wanted]
    owners = params.get("Owners")
    if owners:
        owners = {ctx.account_id if o == "self" else o for o in owners}
        rows = [r for r in rows if r["account_id"] in owners]
    executable = params.get("ExecutableUsers")
    if executable:
        rows = [r for r in rows if ("all" in executable and r["is_public"])
                or ({"self", ctx.account_id} & set(executable))]
    rows = apply_filters(rows, params.get("Filters"), {
        "image-id": lambda r: r["image_id"], "name": lambda r: r["name"], "state": lambda r: r["state"],
        "owner-id": lambda r: r["account_id"], "architecture": lambda r: r["architecture"],
        "image-type": lambda r: r["image_type"], "manifest-location": lambda r: r["location"],
        "is-public": lambda r: "true" if r["is_public"] else "false", "description": lambda r: r["description"],
        "kernel-id": lambda r: r["kernel_id"], "ramdisk-id": lambda r: r["ramdisk_id"],
        **tag_getters(ctx, [r["image_id"] for r in rows], lambda r: r["image_id"])})
    tags = tag_sets(ctx, [r["image_id"] for r in rows])
    return {"Images": [_image(r, ctx, tags[r["image_id"]]) for r in rows]}


def deregister_image(ctx, params):
    image_id = params["ImageId"]
    rows = list(ctx.cloud.store.db["images"].rows_where(
        "image_id = ? AND account_id = ? AND state != 'deregistered'", [image_id, ctx.account_id]))
    if not rows:
        raise not_found("InvalidAMIID.NotFound", "image id", image_id)
    dry_run(params)
    with ctx.cloud.store.atomic():
        ctx.cloud.store.db["images"].update(image_id, {"state": "deregistered"})
        delete_resource_tags(ctx, [image_id])
    return {}


HANDLERS = {"RegisterImage": register_image, "DescribeImages": describe_images, "DeregisterImage": deregister_image}
