"""Images: RegisterImage (a disk image object or a bundle manifest in Walrus), CreateImage (of an
instance's root disk), DescribeImages, the image attributes (launch permissions,
description...), DeregisterImage.

CreateImage records the new image ``pending`` at ``<account id>-images/<image id>.img`` (the
bucket made for the account if it has none) and asks the instance's cluster to have its node
copy the instance's root disk there, through a presigned PUT URL; the node works in the
background and reports the copy in the instance's records (``createImageTasks``), from which
the poller makes the image ``available`` with the object's size, or ``failed`` with a
StateReason (:func:`follow_image_tasks`).

An image is visible to its owner, to the accounts its launchPermission names and, when the
group ``all`` is granted (``images.is_public``, kept with an ``all`` row in
``image_permissions``), to every account; all of these may launch it.  Only the owner may
change, reset or read its attributes: another account that can see the image is answered
AuthFailure ("Not authorized for image:..."), as AWS answers, and one that cannot see it,
InvalidAMIID.NotFound, exactly as for an image that does not exist.
"""

import logging
import posixpath
import re

import botocore.exceptions

from eucacore import ids, soap
from eucacore.messages import CREATEIMAGE_FAILED, CREATEIMAGE_SUCCEEDED
from eucacore.awsapi.errors import AWSError
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import (Page, apply_filters, checked_attribute, copy_present, dry_run, not_found,
                            only_ids)
from clc.ec2.manifests import ARCHITECTURES, EUCA_MARKER, Manifest, invalid, parse_manifest
from clc.ec2.permissions import PUBLIC, change_grantees, grantees_of, permission_changes, permission_items
from clc.ec2.tags import add_tags, delete_resource_tags, requested_tags, tag_getters, tag_sets
from clc.ec2.volumes import own_instance

log = logging.getLogger("eucalyptus.clc.images")

_PREFIX = {"machine": "emi", "kernel": "eki", "ramdisk": "eri"}
LAUNCH_PERMISSION = "launchPermission"
MANIFEST_SUFFIX = ".manifest.xml"
MAX_MANIFEST_BYTES = 1 << 20
MAX_DESCRIPTION = 255
PAGE_MIN, PAGE_MAX = 5, 1000
ROOT_DEVICE = "/dev/sda1"
#: Seconds the node has to upload a CreateImage copy to its presigned URL.
UPLOAD_URL_LIFETIME = 4 * 3600
#: Seconds a pending CreateImage may go without its cluster reporting it before it fails.
TASK_REPORT_TIMEOUT = 600
HYPERVISOR = "kvm"
_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
_RAMDISK_PREFIXES = ("initrd", "initramfs", "ramdisk")
_OWNER_ALIASES = {"amazon", "aws-marketplace", "aws-backup-vault"}
#: RegisterImage members this cloud cannot honour for instance-store images: refused, not ignored.
_UNSUPPORTED_REGISTER_MEMBERS = ("BillingProducts", "BootMode", "TpmSupport", "UefiData", "ImdsSupport",
                                 "SriovNetSupport", "BlockDeviceMappings")
_UNSUPPORTED_MODIFY_MEMBERS = ("ProductCodes", "OrganizationArns", "OrganizationalUnitArns", "ImdsSupport")
#: DescribeImageAttribute's attributes (botocore's ImageAttributeName).
ATTRIBUTES = ("description", "kernel", "ramdisk", LAUNCH_PERMISSION, "productCodes", "blockDeviceMapping",
              "sriovNetSupport", "bootMode", "tpmSupport", "uefiData", "lastLaunchedTime", "imdsSupport",
              "deregistrationProtection")


# -- Walrus, with the caller's own credentials ------------------------------------------------------

def _split_location(location: str) -> tuple[str, str]:
    bucket, _, key = location.lstrip("/").partition("/")
    if not bucket or not key:
        raise AWSError("InvalidParameterValue", f"ImageLocation must be bucket/key, got '{location}'")
    return bucket, key


def _s3(ctx):
    s3 = ctx.cloud.s3(ctx.credentials)
    if s3 is None:
        raise AWSError("InvalidParameterValue", "no Walrus is registered to hold images")
    return s3


def _walrus(call, bucket: str, key: str, what: str) -> dict:
    """``call(Bucket=, Key=)``; an object the caller cannot read is InvalidManifest."""
    try:
        return call(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (403, 404):
            raise invalid(f"cannot read {what} {bucket}/{key} (HTTP {status})") from None
        raise AWSError("InternalError", f"Walrus answered {status} for {bucket}/{key}", 500) from None
    except botocore.exceptions.BotoCoreError as e:
        log.error("Walrus unreachable: %s", e)
        raise AWSError("InternalError", "the image store is unreachable", 500) from None


def _read_manifest(ctx, bucket: str, key: str) -> Manifest:
    """The bundle's manifest, checked against the parts the caller can read in Walrus."""
    s3 = _s3(ctx)
    answer = _walrus(s3.get_object, bucket, key, "manifest")
    if int(answer.get("ContentLength") or 0) > MAX_MANIFEST_BYTES:
        raise invalid(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = answer["Body"].read(MAX_MANIFEST_BYTES + 1)
    finally:
        answer["Body"].close()
    if len(data) > MAX_MANIFEST_BYTES:
        raise invalid(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    manifest = parse_manifest(data)
    folder = posixpath.dirname(key)
    bundled = 0
    for filename in manifest.parts:
        part_key = posixpath.join(folder, filename) if folder else filename
        bundled += int(_walrus(s3.head_object, bucket, part_key, "image part").get("ContentLength") or 0)
    if manifest.bundled_size is not None and bundled != manifest.bundled_size:
        raise invalid(f"the parts hold {bundled} bytes, the manifest's bundled_size says {manifest.bundled_size}")
    return manifest


# -- RegisterImage ----------------------------------------------------------------------------------

def checked_name(name: str | None) -> str:
    """An AMI name as AWS allows it, else InvalidAMIName.Malformed."""
    if not name:
        raise AWSError("MissingParameter", "The request must contain the parameter name")
    if not _NAME.match(name):
        raise AWSError("InvalidAMIName.Malformed",
                       "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, "
                       "'(', ')', '[', ']', ' ', '.', '/', '-', ''', '@' and '_'")
    return name


def _checked_description(description: str | None) -> str:
    if description and len(description) > MAX_DESCRIPTION:
        raise AWSError("InvalidParameterValue", f"The description must be at most {MAX_DESCRIPTION} characters.")
    return description or ""


def _check_register_options(params: dict) -> None:
    for member in _UNSUPPORTED_REGISTER_MEMBERS:
        if params.get(member) not in (None, "", []):
            raise AWSError("InvalidParameterValue",
                           f"The parameter {member} is not supported by this cloud's instance-store images.")
    if params.get("EnaSupport"):
        raise AWSError("InvalidParameterValue", "ENA is not supported by this cloud.")
    if params.get("RootDeviceName") not in (None, ROOT_DEVICE):
        raise AWSError("InvalidParameterValue", f"The root device of an instance-store image is {ROOT_DEVICE}.")
    architecture = params.get("Architecture")
    if architecture is not None and architecture not in ARCHITECTURES:
        raise AWSError("InvalidParameterValue", f"Value ({architecture}) for parameter architecture is invalid. "
                                                f"Expecting one of: {', '.join(ARCHITECTURES)}.")
    if params.get("KernelId") == EUCA_MARKER and params.get("RamdiskId") == EUCA_MARKER:
        raise AWSError("InvalidParameterValue", "An image is either a kernel or a ramdisk, not both.")


def _raw_image_type(key: str, params: dict) -> str:
    """A disk image object's type: euca-register's markers, else machine if it names a kernel or
    ramdisk to boot with, else by its file name (vmlinuz*: kernel; initrd*, initramfs*, ramdisk*:
    ramdisk), else machine."""
    kernel, ramdisk = params.get("KernelId"), params.get("RamdiskId")
    if EUCA_MARKER in (kernel, ramdisk):
        return "kernel" if kernel == EUCA_MARKER else "ramdisk"
    if kernel or ramdisk:
        return "machine"
    name = posixpath.basename(key).lower()
    if name.startswith("vmlinuz"):
        return "kernel"
    if name.startswith(_RAMDISK_PREFIXES):
        return "ramdisk"
    return "machine"


def _boot_image(ctx, image_id: str, image_type: str) -> str:
    """``image_id`` if it is a kernel/ramdisk the caller may launch, else the AWS error."""
    row = _visible(ctx, image_id)
    if row is None:
        raise not_found("InvalidAMIID.NotFound", "image id", image_id)
    if row["image_type"] != image_type:
        raise AWSError("InvalidParameterValue", f"The image '{image_id}' is not a {image_type} image.")
    return image_id


def _source(ctx, bucket: str, key: str, params: dict) -> dict:
    """image_type, architecture, kernel_id, ramdisk_id and size of the image object or bundle."""
    if key.endswith(MANIFEST_SUFFIX):
        manifest = _read_manifest(ctx, bucket, key)
        marked = "kernel" if params.get("KernelId") == EUCA_MARKER else \
            "ramdisk" if params.get("RamdiskId") == EUCA_MARKER else manifest.image_type
        if marked != manifest.image_type:
            raise AWSError("InvalidParameterValue", f"The manifest's image is a {manifest.image_type} image.")
        if manifest.architecture and params.get("Architecture") not in (None, manifest.architecture):
            raise AWSError("InvalidParameterValue",
                           f"The manifest's architecture is {manifest.architecture}, not {params['Architecture']}.")
        return {"image_type": manifest.image_type, "architecture": manifest.architecture,
                "kernel_id": manifest.kernel_id, "ramdisk_id": manifest.ramdisk_id, "size": manifest.size}
    head = _walrus(_s3(ctx).head_object, bucket, key, "image object")
    return {"image_type": _raw_image_type(key, params), "architecture": "", "kernel_id": "", "ramdisk_id": "",
            "size": int(head.get("ContentLength") or 0)}


def _boot_images(ctx, source: dict, params: dict) -> tuple[str, str]:
    """(kernel id, ramdisk id) of the new image: the request's, else the manifest's; each a
    visible image of the right type, and none for a kernel or ramdisk."""
    chosen = []
    for member, column, image_type in (("KernelId", "kernel_id", "kernel"), ("RamdiskId", "ramdisk_id", "ramdisk")):
        requested = params.get(member)
        image_id = source[column] if requested in (None, "", EUCA_MARKER) else requested
        if image_id and source["image_type"] != "machine":
            raise AWSError("InvalidParameterValue", f"A {source['image_type']} image cannot have a {member}.")
        chosen.append(_boot_image(ctx, image_id, image_type) if image_id else "")
    return chosen[0], chosen[1]


def register_image(ctx, params):
    """Registers a disk image object (``bucket/key``) or a bundle (``bucket/x.manifest.xml``)
    the caller can read in Walrus, as an emi-, eki- or eri- image by its type."""
    _check_register_options(params)
    location = params.get("ImageLocation")
    if not location:
        raise AWSError("MissingParameter", "ImageLocation is required (EBS-backed images are not supported)")
    name, description = checked_name(params.get("Name")), _checked_description(params.get("Description"))
    bucket, key = _split_location(location)
    tags = requested_tags(params, "image")
    source = _source(ctx, bucket, key, params)
    kernel_id, ramdisk_id = _boot_images(ctx, source, params)
    row = {"image_id": ids.new_id(_PREFIX[source["image_type"]]), "account_id": ctx.account_id,
           "location": f"{bucket}/{key}", "name": name, "description": description,
           "architecture": source["architecture"] or params.get("Architecture") or "x86_64",
           "image_type": source["image_type"], "state": "available", "kernel_id": kernel_id,
           "ramdisk_id": ramdisk_id, "is_public": 0, "size": source["size"], "created": ids.now()}
    virtualization = params.get("VirtualizationType")
    if virtualization is not None and virtualization != _virtualization(row):
        raise AWSError("InvalidParameterValue", f"This image is {_virtualization(row)}: paravirtual images "
                                                "boot a kernel (KernelId), hvm images boot their own disk.")
    dry_run(params)
    table = ctx.cloud.store.db["images"]
    with ctx.cloud.store.atomic():
        if list(table.rows_where("account_id = ? AND name = ? AND state != 'deregistered'", [ctx.account_id, name])):
            raise AWSError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI")
        table.insert(row)
        add_tags(ctx, [row["image_id"]], tags, "image")
    return {"ImageId": row["image_id"]}


# -- visibility -------------------------------------------------------------------------------------

_VISIBLE = ("state != 'deregistered' AND (account_id = ? OR is_public = 1 OR image_id IN "
            "(SELECT image_id FROM image_permissions WHERE grantee = ?))")


def _visible(ctx, image_id: str) -> dict | None:
    rows = list(ctx.cloud.store.db["images"].rows_where(
        f"image_id = ? AND {_VISIBLE}", [image_id, ctx.account_id, ctx.account_id]))
    return rows[0] if rows else None


def visible_image(ctx, image_id: str) -> dict:
    """The image if the caller may launch it (its own, shared with its account, or public),
    else InvalidAMIID.NotFound."""
    row = _visible(ctx, image_id)
    if row is None:
        raise not_found("InvalidAMIID.NotFound", "image id", image_id)
    return row


def _owned_image(ctx, image_id: str) -> dict:
    """The caller's own image; one it only sees is AuthFailure (as AWS answers), one it
    cannot see InvalidAMIID.NotFound."""
    row = visible_image(ctx, image_id)
    if row["account_id"] != ctx.account_id:
        raise AWSError("AuthFailure", f"Not authorized for image:{image_id}")
    return row


def _grantees(ctx, image_ids: list[str]) -> dict[str, set[str]]:
    return grantees_of(ctx.cloud.store.db, "image_permissions", "image_id", image_ids)


# -- DescribeImages ---------------------------------------------------------------------------------

def _virtualization(row: dict) -> str:
    return "hvm" if row["image_type"] == "machine" and not row["kernel_id"] else "paravirtual"


def _image(row: dict, tags: list[dict] = ()) -> dict:
    out = {"ImageId": row["image_id"], "ImageLocation": row["location"], "State": row["state"],
           "OwnerId": row["account_id"], "Public": bool(row["is_public"]), "Architecture": row["architecture"],
           "ImageType": row["image_type"], "Name": row["name"], "RootDeviceType": "instance-store",
           "VirtualizationType": _virtualization(row), "Hypervisor": HYPERVISOR,
           "CreationDate": ids.isoformat(row["created"]), "BlockDeviceMappings": [], "ProductCodes": [],
           "PlatformDetails": "Linux/UNIX", "UsageOperation": "RunInstances", "EnaSupport": False}
    if row["image_type"] == "machine":
        out["RootDeviceName"] = ROOT_DEVICE
    if row["state_reason"]:
        out["StateReason"] = {"Code": _reason_code(row), "Message": row["state_reason"]}
    if row["source_instance_id"]:
        out["SourceInstanceId"] = row["source_instance_id"]
    if tags:
        out["Tags"] = list(tags)
    return copy_present(out, row, {"Description": "description", "KernelId": "kernel_id", "RamdiskId": "ramdisk_id"})


def _reason_code(row: dict) -> str:
    """The code of the image's StateReason ('Server.InternalError: ...' -> 'Server.InternalError')."""
    return row["state_reason"].split(":", 1)[0] if row["state_reason"] else ""


def _or_none(value):
    """A filter value, or nothing to match when the image has none."""
    return value if value else []


def _none(row) -> list:
    """The filter value of an attribute no image of this cloud has: nothing matches."""
    return []


_FILTERS = {
    "architecture": lambda r: r["architecture"], "creation-date": lambda r: ids.isoformat(r["created"]),
    "description": lambda r: _or_none(r["description"]), "ena-support": lambda r: "false",
    "free-tier-eligible": lambda r: "false", "hypervisor": lambda r: HYPERVISOR, "image-allowed": lambda r: "true",
    "image-id": lambda r: r["image_id"], "image-type": lambda r: r["image_type"],
    "is-public": lambda r: "true" if r["is_public"] else "false", "kernel-id": lambda r: _or_none(r["kernel_id"]),
    "manifest-location": lambda r: r["location"], "name": lambda r: r["name"],
    "owner-id": lambda r: r["account_id"], "ramdisk-id": lambda r: _or_none(r["ramdisk_id"]),
    "root-device-name": lambda r: ROOT_DEVICE if r["image_type"] == "machine" else [],
    "root-device-type": lambda r: "instance-store", "state": lambda r: r["state"],
    "virtualization-type": _virtualization, "source-instance-id": lambda r: _or_none(r["source_instance_id"]),
    "state-reason-code": lambda r: _or_none(_reason_code(r)),
    "state-reason-message": lambda r: _or_none(r["state_reason"]),
    **{name: _none for name in (
        "block-device-mapping.delete-on-termination", "block-device-mapping.device-name",
        "block-device-mapping.snapshot-id", "block-device-mapping.volume-size", "block-device-mapping.volume-type",
        "block-device-mapping.encrypted", "deprecation-time", "owner-alias", "platform", "product-code",
        "product-code.type", "source-image-id", "source-image-region", "sriov-net-support")},
}


def _accounts(ctx, values: list[str] | None, allowed: set[str]) -> set[str]:
    """Owners / ExecutableUsers: ``self`` as the caller's account id, the ``allowed`` words, or
    account ids; anything else InvalidUserID.Malformed."""
    out = set()
    for value in values or []:
        if value == "self":
            out.add(ctx.account_id)
        elif value in allowed or _ACCOUNT_ID.match(value or ""):
            out.add(value)
        else:
            raise AWSError("InvalidUserID.Malformed", f'Invalid user id: "{value}"')
    return out


def _launchable_by(ctx, row: dict, grantees: set[str], who: str, every_account: bool) -> bool:
    """Whether ``who`` (an account id, or ``all``) is granted launchPermission on the image
    explicitly.  Another owner's grants to third accounts are not the caller's to see."""
    if who == PUBLIC:
        return bool(row["is_public"]) or PUBLIC in grantees
    if who != ctx.account_id and row["account_id"] != ctx.account_id and not every_account:
        return False
    return who in grantees


def describe_images(ctx, params):
    """The images the caller may launch (its own, shared with it, public; for the cloud admin
    asking with ``verbose``, an owner-id filter or another account in Owners, every account's),
    narrowed by ids, Owners, ExecutableUsers and filters, a page at a time."""
    page = Page(params, PAGE_MIN, PAGE_MAX)
    every_account, wanted = sees_all_accounts(ctx, params.get("ImageIds"), params.get("Filters"))
    if wanted and page.limit is not None:
        raise AWSError("InvalidParameterCombination", "The parameter ImageIds cannot be used with the parameter "
                                                      "maxResults")
    owners = _accounts(ctx, params.get("Owners"), _OWNER_ALIASES)
    executable = _accounts(ctx, params.get("ExecutableUsers"), {PUBLIC})
    every_account |= ctx.credentials.is_cloud_admin and bool(owners - _OWNER_ALIASES - {ctx.account_id})
    if every_account:
        rows = list(ctx.cloud.store.db["images"].rows_where("state != 'deregistered'", order_by="image_id"))
    else:
        rows = list(ctx.cloud.store.db["images"].rows_where(_VISIBLE, [ctx.account_id, ctx.account_id],
                                                             order_by="image_id"))
    rows = only_ids(rows, wanted, "image_id", "InvalidAMIID.NotFound", "image id")
    dry_run(params)
    if owners:
        rows = [r for r in rows if r["account_id"] in owners]
    if executable:
        grants = _grantees(ctx, [r["image_id"] for r in rows])
        rows = [r for r in rows
                if any(_launchable_by(ctx, r, grants[r["image_id"]], who, every_account) for who in executable)]
    getters = {**_FILTERS, **tag_getters(ctx, [r["image_id"] for r in rows], lambda r: r["image_id"])}
    rows = apply_filters(rows, params.get("Filters"), getters)
    rows, out = page.of(rows, lambda r: r["image_id"])
    tags = tag_sets(ctx, [r["image_id"] for r in rows])
    out["Images"] = [_image(r, tags[r["image_id"]]) for r in rows]
    return out


# -- image attributes -------------------------------------------------------------------------------

def _value(text: str | None) -> dict:
    """An AttributeValue: ``{"Value": text}``, or empty when there is none."""
    return {"Value": text} if text else {}


def describe_image_attribute(ctx, params):
    """One attribute of the caller's own image; kernel and ramdisk are read-only here, product
    codes and block device mappings always empty, and the rest AWS's defaults."""
    attribute = checked_attribute(params.get("Attribute"), ATTRIBUTES)
    image_id = params["ImageId"]
    row = _owned_image(ctx, image_id)
    dry_run(params)
    out: dict = {"ImageId": image_id}
    if attribute == "description":
        out["Description"] = _value(row["description"])
    elif attribute in ("kernel", "ramdisk"):
        out["KernelId" if attribute == "kernel" else "RamdiskId"] = _value(row[f"{attribute}_id"])
    elif attribute == LAUNCH_PERMISSION:
        granted = _grantees(ctx, [image_id])[image_id] | ({PUBLIC} if row["is_public"] else set())
        out["LaunchPermissions"] = permission_items(granted)
    elif attribute == "productCodes":
        out["ProductCodes"] = []
    elif attribute == "blockDeviceMapping":
        out["BlockDeviceMappings"] = []
    elif attribute == "lastLaunchedTime":
        (last,) = ctx.cloud.store.db.execute("SELECT MAX(launch_time) FROM instances WHERE image_id = ?",
                                             [image_id]).fetchone()
        out["LastLaunchedTime"] = _value(last and ids.isoformat(last))
    elif attribute == "deregistrationProtection":
        out["DeregistrationProtection"] = {"Value": "disabled"}
    return out


def _grantee(permission: dict) -> str:
    """The grantee of a launchPermission item: an account id, or ``all`` for the group."""
    if permission.get("OrganizationArn") or permission.get("OrganizationalUnitArn"):
        raise AWSError("InvalidParameterValue", "This cloud has no organizations to share images with.")
    user_id, group = permission.get("UserId"), permission.get("Group")
    if bool(user_id) == bool(group):
        raise AWSError("InvalidParameterValue", "A launchPermission names either a UserId or a Group.")
    if group and group != PUBLIC:
        raise AWSError("InvalidAMIAttributeItemValue", f'Invalid attribute item value "{group}" for group item type.')
    if user_id and not _ACCOUNT_ID.match(user_id):
        raise AWSError("InvalidAMIAttributeItemValue",
                       f'Invalid attribute item value "{user_id}" for userId item type.')
    return group or user_id


def _requested_attribute(params: dict) -> str:
    """The one attribute a ModifyImageAttribute changes: description or launchPermission."""
    for member in _UNSUPPORTED_MODIFY_MEMBERS:
        if params.get(member) not in (None, [], {}):
            raise AWSError("InvalidParameterValue", f"The parameter {member} is not supported by this cloud.")
    attribute = params.get("Attribute")
    if attribute is not None:
        checked_attribute(attribute, ("description", LAUNCH_PERMISSION))
    wanted = {a for a, given in (
        ("description", attribute == "description" or params.get("Description") is not None),
        (LAUNCH_PERMISSION, attribute == LAUNCH_PERMISSION or any(
            params.get(m) for m in ("LaunchPermission", "UserIds", "UserGroups")))) if given}
    if len(wanted) != 1:
        raise AWSError("InvalidParameterCombination" if wanted else "MissingParameter",
                       "A ModifyImageAttribute changes exactly one attribute: description or launchPermission.")
    return wanted.pop()


def modify_image_attribute(ctx, params):
    """Changes the description of the caller's image, or adds and removes its launch
    permissions (account ids, or the group ``all``, which makes it public)."""
    attribute = _requested_attribute(params)
    if attribute == "description":
        value = (params.get("Description") or {}).get("Value", params.get("Value"))
        if value is None:
            raise AWSError("MissingParameter", "The request must contain the parameter description")
        description = _checked_description(value)
    else:
        add, remove = permission_changes(params, _grantee, member="LaunchPermission", groups_member="UserGroups",
                                         attribute=LAUNCH_PERMISSION)
    image_id = params["ImageId"]
    with ctx.cloud.store.atomic() as db:
        _owned_image(ctx, image_id)
        dry_run(params)
        if attribute == "description":
            db["images"].update(image_id, {"description": description})
            return {}
        change_grantees(db, "image_permissions", "image_id", image_id, add, remove)
        if PUBLIC in add | remove:
            db["images"].update(image_id, {"is_public": int(PUBLIC in add - remove)})
    return {}


def reset_image_attribute(ctx, params):
    """Takes back every launch permission of the caller's image (only launchPermission resets)."""
    checked_attribute(params.get("Attribute"), (LAUNCH_PERMISSION,))
    image_id = params["ImageId"]
    with ctx.cloud.store.atomic() as db:
        _owned_image(ctx, image_id)
        dry_run(params)
        db.execute("DELETE FROM image_permissions WHERE image_id = ?", [image_id])
        db["images"].update(image_id, {"is_public": 0})
    return {}


# -- DeregisterImage, CreateImage -------------------------------------------------------------------

def deregister_image(ctx, params):
    """Deregisters the caller's image with its launch permissions and tags; instances running it
    go on running, as in AWS.  The objects in Walrus stay: they are the caller's to delete."""
    image_id = params["ImageId"]
    with ctx.cloud.store.atomic() as db:
        _owned_image(ctx, image_id)
        dry_run(params)
        db["images"].update(image_id, {"state": "deregistered", "is_public": 0})
        db.execute("DELETE FROM image_permissions WHERE image_id = ?", [image_id])
        delete_resource_tags(ctx, [image_id])
    return {"Return": True, "DeleteSnapshotResults": []}


def create_image(ctx, params):
    """A new machine image of the root disk of the caller's running or stopped instance: pending
    until the instance's node has uploaded its copy (with the guest paused during the copy
    unless NoReboot), then available; failed, with a StateReason, if the copy cannot be made."""
    name, description = checked_name(params.get("Name")), _checked_description(params.get("Description"))
    for member in ("BlockDeviceMappings", "SnapshotLocation"):
        if params.get(member):
            raise AWSError("InvalidParameterValue", f"The parameter {member} is not supported by this cloud's "
                                                    "instance-store images.")
    tags = requested_tags(params, "image")
    instance = own_instance(ctx, params["InstanceId"])
    if instance["state"] not in ("running", "stopped"):
        raise AWSError("IncorrectInstanceState", f"The instance '{instance['instance_id']}' is not in the 'running' "
                                                 "or 'stopped' state.")
    dry_run(params)
    _check_name_free(ctx, name)  # before anything is made in Walrus
    image_id = ids.new_id("emi")
    location = f"{ctx.account_id}-images/{image_id}.img"
    url = _upload_url(ctx, location)
    row = {"image_id": image_id, "account_id": ctx.account_id, "location": location, "name": name,
           "description": description, "architecture": "x86_64", "image_type": "machine", "state": "pending",
           "kernel_id": instance["kernel_id"], "ramdisk_id": instance["ramdisk_id"], "is_public": 0, "size": 0,
           "created": ids.now(), "state_reason": "", "source_instance_id": instance["instance_id"]}
    with ctx.cloud.store.atomic():
        _check_name_free(ctx, name)
        ctx.cloud.store.db["images"].insert(row)
        add_tags(ctx, [image_id], tags, "image")
    failure = _ask_for_copy(ctx, instance, image_id, url, bool(params.get("NoReboot")))
    if failure:
        _image_failed(ctx.cloud, image_id, failure)
    return {"ImageId": image_id}


def _check_name_free(ctx, name: str) -> None:
    if list(ctx.cloud.store.db["images"].rows_where("account_id = ? AND name = ? AND state != 'deregistered'",
                                                    [ctx.account_id, name], limit=1)):
        raise AWSError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI")


def _upload_url(ctx, location: str) -> str:
    """A presigned PUT of ``bucket/key`` in Walrus, signed by the caller's account (whose admin
    owns the bucket, made now if it has none)."""
    bucket, key = location.split("/", 1)
    owner = ctx.cloud.identity.account_credentials(ctx.account_id)
    s3 = ctx.cloud.s3(owner) if owner else None
    if s3 is None:
        raise AWSError("InternalError", "the image store is not available", 500)
    try:
        try:
            s3.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise
            s3.create_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code == "TooManyBuckets":
            raise AWSError("ResourceLimitExceeded", f"The account has as many buckets as its quota allows: the "
                                                    f"bucket {bucket} for its images cannot be made.") from None
        if code != "BucketAlreadyOwnedByYou":  # made meanwhile by another request of ours: fine
            log.error("cannot use the images bucket %s: %s", bucket, e)
            raise AWSError("InternalError", f"cannot use the bucket {bucket} for the account's images ({code})",
                           500) from None
    except botocore.exceptions.BotoCoreError as e:
        log.error("Walrus unreachable: %s", e)
        raise AWSError("InternalError", "the image store is unreachable", 500) from None
    return s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key},
                                     ExpiresIn=UPLOAD_URL_LIFETIME)


def _ask_for_copy(ctx, instance: dict, image_id: str, url: str, no_reboot: bool) -> str | None:
    """Ask the instance's cluster to have the copy made; None, or why it will not be (a StateReason)."""
    cluster = next((c for c in ctx.cloud.clusters() if c["partition"] == instance["zone"]), None)
    if cluster is None:
        return f"Server.InternalError: the instance's availability zone {instance['zone']} has no cluster"
    try:
        ctx.cloud.cc(cluster).CreateImage(correlationId=ctx.request_id, instanceId=instance["instance_id"],
                                          imageId=image_id, imageURL=url, noReboot=no_reboot)
    except soap.Fault as e:
        code = (e.code or "").rsplit(":", 1)[-1] or "Server.InternalError"
        return f"{code}: {e.message}"
    except soap.TransportError as e:
        log.warning("cluster %s: CreateImage failed: %s", cluster["name"], e)
        return f"Server.InternalError: the instance's cluster did not answer ({e})"
    return None


def _image_failed(cloud, image_id: str, reason: str) -> None:
    with cloud.store.atomic() as db:
        db.execute("UPDATE images SET state = 'failed', state_reason = ? WHERE image_id = ? AND state = 'pending'",
                   [reason, image_id])


def follow_image_tasks(cloud, cluster: dict, reported: list) -> None:
    """Bring the pending CreateImage images of ``cluster``'s zone up to what its instances'
    records (``reported``, as DescribeInstances answered) say of their copies: available with
    the uploaded size, or failed with the node's reason; failed too when no record has reported
    the copy for TASK_REPORT_TIMEOUT."""
    db = cloud.store.db
    pending = list(db.query(
        "SELECT images.image_id, images.created FROM images JOIN instances "
        "ON instances.instance_id = images.source_instance_id "
        "WHERE images.state = 'pending' AND instances.zone = ?", [cluster["partition"]]))
    if not pending:
        return
    tasks = {t.imageId: t for i in reported for t in (getattr(i, "createImageTasks", None) or [])}
    now = ids.now()
    for image in pending:
        task = tasks.get(image["image_id"])
        if task is not None and task.stateName == CREATEIMAGE_SUCCEEDED:
            with cloud.store.atomic():
                db.execute("UPDATE images SET state = 'available', size = ? WHERE image_id = ? AND state = 'pending'",
                           [int(task.bytes or 0), image["image_id"]])
            log.info("image %s available (%s bytes)", image["image_id"], task.bytes)
        elif task is not None and task.stateName == CREATEIMAGE_FAILED:
            _image_failed(cloud, image["image_id"], f"Server.InternalError: {task.statusMessage or 'copy failed'}")
        elif task is None and now - image["created"] > TASK_REPORT_TIMEOUT:
            _image_failed(cloud, image["image_id"], "Server.InternalError: the instance's node has not reported "
                                                    "the copy of its disk")


HANDLERS = {"RegisterImage": register_image, "DescribeImages": describe_images, "DeregisterImage": deregister_image,
            "DescribeImageAttribute": describe_image_attribute, "ModifyImageAttribute": modify_image_attribute,
            "ResetImageAttribute": reset_image_attribute, "CreateImage": create_image}
