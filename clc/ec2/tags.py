"""Tags: CreateTags, DeleteTags, DescribeTags, and the helpers the other EC2 modules use to
show tags (``tag_sets``), filter by them (``tag_getters``), write them at creation
(``requested_tags`` + ``add_tags``) and forget them (``delete_resource_tags``).

A tag belongs to its resource's account and only that account sees it, as in AWS:
another account's public image shows none of its owner's tags.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from eucacore import ids
from eucacore.awsapi.errors import AWSError
from clc.ec2.common import Page, apply_filters, dry_run, not_found

MAX_TAGS = 50
MAX_KEY, MAX_VALUE = 128, 256
RESERVED_PREFIX = "aws:"
PAGE_MIN, PAGE_MAX = 5, 1000
_CHUNK = 500  # ids per ``IN (...)``: well under SQLite's bound on parameters


@dataclass(frozen=True)
class _Kind:
    """A taggable resource kind: where its rows live and how a missing id is answered."""

    resource_type: str
    table: str
    id_column: str
    not_found_code: str
    what: str
    live: str = ""  # SQL: rows that still exist as far as the API is concerned


_INSTANCE = _Kind("instance", "instances", "instance_id", "InvalidInstanceID.NotFound", "instance ID",
                  "(state != 'terminated' OR updated >= ?)")
_IMAGE = _Kind("image", "images", "image_id", "InvalidAMIID.NotFound", "image id", "state != 'deregistered'")
#: Resource id prefix -> its kind.
KINDS = {
    "i": _INSTANCE, "emi": _IMAGE, "eki": _IMAGE, "eri": _IMAGE,
    "vol": _Kind("volume", "volumes", "volume_id", "InvalidVolume.NotFound", "volume", "state != 'deleted'"),
    "snap": _Kind("snapshot", "snapshots", "snapshot_id", "InvalidSnapshot.NotFound", "snapshot",
                  "state != 'deleted'"),
    "sg": _Kind("security-group", "security_groups", "group_id", "InvalidGroup.NotFound", "security group"),
    "key": _Kind("key-pair", "keypairs", "key_pair_id", "InvalidKeyPair.NotFound", "key pair"),
    "eipalloc": _Kind("elastic-ip", "addresses", "allocation_id", "InvalidAllocationID.NotFound", "allocation ID"),
}


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _marks(items: list) -> str:
    return ", ".join("?" for _ in items)


# -- validation ---------------------------------------------------------------------------------

def _checked_key(key) -> str:
    if not key:
        raise AWSError("InvalidParameterValue", "Tag keys must not be empty")
    if len(key) > MAX_KEY:
        raise AWSError("InvalidParameterValue", f"Tag key exceeds the maximum length of {MAX_KEY} characters")
    if key.lower().startswith(RESERVED_PREFIX):
        raise AWSError("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
    return key


def checked_tags(tags: list[dict] | None) -> dict[str, str]:
    """The tags of a request as key -> value (a missing Value is ""; a repeated key, its last
    value), or InvalidParameterValue for a key or value AWS would refuse."""
    out = {}
    for tag in tags or []:
        key, value = _checked_key(tag.get("Key")), tag.get("Value") or ""
        if len(value) > MAX_VALUE:
            raise AWSError("InvalidParameterValue",
                           f"Tag value exceeds the maximum length of {MAX_VALUE} characters")
        out[key] = value
    return out


def requested_tags(params: dict, resource_type: str) -> list[dict]:
    """The tags a create request's ``TagSpecifications`` asks for ``resource_type``, validated
    (call before ``dry_run``); another resource type is InvalidParameterValue, as AWS answers
    for types the operation does not create."""
    tags = {}
    for spec in params.get("TagSpecifications") or []:
        kind = spec.get("ResourceType")
        if kind != resource_type:
            raise AWSError("InvalidParameterValue",
                           f"'{kind}' is not a valid taggable resource type for this operation.")
        tags.update(checked_tags(spec.get("Tags")))
    if len(tags) > MAX_TAGS:
        raise AWSError("TagLimitExceeded", f"The maximum number of tags per resource is {MAX_TAGS}")
    return [{"Key": k, "Value": v} for k, v in tags.items()]


# -- the helpers other modules use ----------------------------------------------------------------

def tag_sets(ctx, resource_ids: list[str]) -> dict[str, list[dict]]:
    """The caller's account's tags per resource id as EC2 ``[{"Key", "Value"}]``, by key
    (an id without tags -> [])."""
    out: dict[str, list[dict]] = {rid: [] for rid in resource_ids}
    unique = list(out)
    for chunk in _chunks(unique):
        rows = ctx.cloud.store.db.execute(
            f"SELECT resource_id, key, value FROM tags WHERE account_id = ? AND resource_id IN ({_marks(chunk)})"
            " ORDER BY resource_id, key", [ctx.account_id, *chunk])
        for resource_id, key, value in rows:
            out[resource_id].append({"Key": key, "Value": value})
    return out


def tag_getters(ctx, resource_ids: list[str], id_of: Callable[[dict], str]) -> dict[str, Callable]:
    """Getters of the filters ``tag-key``, ``tag-value`` and ``tag:<Key>`` for
    ``clc.ec2.common.apply_filters`` over items whose id is ``id_of(item)``.

    The tags are read once, on the first tag filter, so a Describe without one costs nothing.
    """
    cache: dict[str, dict[str, str]] = {}

    def tags_of(item) -> dict[str, str]:
        if not cache and resource_ids:
            cache.update({rid: {t["Key"]: t["Value"] for t in tags}
                          for rid, tags in tag_sets(ctx, resource_ids).items()})
        return cache.get(id_of(item), {})

    def by_key(item, key: str) -> list[str]:
        tags = tags_of(item)
        return [tags[key]] if key in tags else []

    return {"tag-key": lambda item: list(tags_of(item)), "tag-value": lambda item: list(tags_of(item).values()),
            "tag:": by_key}


def add_tags(ctx, resource_ids: list[str], tags: list[dict], resource_type: str) -> None:
    """Sets ``tags`` on each resource (replacing the values of keys it has), all of them or,
    with TagLimitExceeded, none; call inside the transaction that creates or checked the
    resources."""
    wanted = checked_tags(tags)
    if not wanted or not resource_ids:
        return
    db = ctx.cloud.store.db
    with ctx.cloud.store.atomic():
        existing: dict[str, set[str]] = {rid: set() for rid in resource_ids}
        for chunk in _chunks(list(existing)):
            for resource_id, key in db.execute(
                    f"SELECT resource_id, key FROM tags WHERE resource_id IN ({_marks(chunk)})", chunk):
                existing[resource_id].add(key)
        for resource_id, keys in existing.items():
            if len(keys | set(wanted)) > MAX_TAGS:
                raise AWSError("TagLimitExceeded",
                               f"The maximum number of tags ({MAX_TAGS}) for resource '{resource_id}' has been reached")
        db.conn.executemany(
            "INSERT INTO tags (resource_id, account_id, resource_type, key, value) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (resource_id, key) DO UPDATE SET value = excluded.value",
            [(rid, ctx.account_id, resource_type, key, value) for rid in existing for key, value in wanted.items()])


def delete_resource_tags(ctx, resource_ids: list[str]) -> None:
    """Forgets every tag of resources that are gone (call in the transaction that deletes them)."""
    for chunk in _chunks(list(dict.fromkeys(resource_ids))):
        ctx.cloud.store.db.execute(f"DELETE FROM tags WHERE resource_id IN ({_marks(chunk)})", chunk)


# -- the actions ----------------------------------------------------------------------------------

def _kind_of(resource_id: str) -> _Kind:
    prefix, dash, rest = resource_id.partition("-")
    kind = KINDS.get(prefix)
    if kind is None or not dash or not rest:
        raise AWSError("InvalidID", f"The ID '{resource_id}' is not valid")
    return kind


def _terminated_horizon(ctx) -> float:
    """Terminated instances older than this are gone, as DescribeInstances shows them."""
    return ids.now() - 60 * ctx.cloud.properties.get("cloud.vmstate.terminated_time")


def _owned(ctx, resource_ids: list[str]) -> dict[str, str]:
    """Resource id -> resource type of the caller's resources ``resource_ids``; an unknown id
    prefix is InvalidID, a missing or another account's id its kind's NotFound code."""
    if not resource_ids:
        raise AWSError("MissingParameter", "The request must contain the parameter resourceIdSet")
    kinds = {rid: _kind_of(rid) for rid in resource_ids}
    found: set[str] = set()
    for kind in set(kinds.values()):
        wanted = [rid for rid, k in kinds.items() if k is kind]
        for chunk in _chunks(wanted):
            where = f"account_id = ? AND {kind.id_column} IN ({_marks(chunk)})"
            args = [ctx.account_id, *chunk]
            if kind.live:
                where += f" AND {kind.live}"
                args += [_terminated_horizon(ctx)] if kind is _INSTANCE else []
            found.update(row[0] for row in ctx.cloud.store.db.execute(
                f"SELECT {kind.id_column} FROM {kind.table} WHERE {where}", args))
    for rid in resource_ids:
        if rid not in found:
            raise not_found(kinds[rid].not_found_code, kinds[rid].what, rid)
    return {rid: kind.resource_type for rid, kind in kinds.items()}


def create_tags(ctx, params):
    """Adds or overwrites tags on the caller's resources: all of them, or none."""
    resources = list(dict.fromkeys(params.get("Resources") or []))
    tags = checked_tags(params.get("Tags"))
    if not tags:
        raise AWSError("MissingParameter", "The request must contain the parameter tagSet")
    with ctx.cloud.store.atomic():
        types = _owned(ctx, resources)
        dry_run(params)
        for resource_type in set(types.values()):
            add_tags(ctx, [rid for rid in resources if types[rid] == resource_type],
                     [{"Key": k, "Value": v} for k, v in tags.items()], resource_type)
    return {}


def delete_tags(ctx, params):
    """Deletes the named tags of the caller's resources (only where the value matches, for a
    tag given with a Value), or all their tags when no tag is named."""
    resources = list(dict.fromkeys(params.get("Resources") or []))
    tags = params.get("Tags") or []
    for tag in tags:
        _checked_key(tag.get("Key"))
    db = ctx.cloud.store.db
    with ctx.cloud.store.atomic():
        _owned(ctx, resources)
        dry_run(params)
        for chunk in _chunks(resources):
            where, args = f"account_id = ? AND resource_id IN ({_marks(chunk)})", [ctx.account_id, *chunk]
            if not tags:
                db.execute(f"DELETE FROM tags WHERE {where}", args)
            for tag in tags:
                if "Value" in tag:
                    db.execute(f"DELETE FROM tags WHERE {where} AND key = ? AND value = ?",
                               [*args, tag["Key"], tag["Value"] or ""])
                else:
                    db.execute(f"DELETE FROM tags WHERE {where} AND key = ?", [*args, tag["Key"]])
    return {}


_FILTERS = {"key": lambda r: r["key"], "value": lambda r: r["value"], "resource-id": lambda r: r["resource_id"],
            "resource-type": lambda r: r["resource_type"],
            "tag:": lambda r, key: [r["value"]] if r["key"] == key else []}


def describe_tags(ctx, params):
    """The caller's account's tags by resource id and key, filtered, a page at a time."""
    page = Page(params, PAGE_MIN, PAGE_MAX)
    dry_run(params)
    rows = list(ctx.cloud.store.db["tags"].rows_where("account_id = ?", [ctx.account_id],
                                                       order_by="resource_id, key"))
    rows = apply_filters(rows, params.get("Filters"), _FILTERS)
    rows, out = page.of(rows, lambda r: (r["resource_id"], r["key"]))
    out["Tags"] = [{"ResourceId": r["resource_id"], "ResourceType": r["resource_type"], "Key": r["key"],
                    "Value": r["value"]} for r in rows]
    return out


HANDLERS = {"CreateTags": create_tags, "DeleteTags": delete_tags, "DescribeTags": describe_tags}
