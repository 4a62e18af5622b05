"""Who besides its owner may use an image or a snapshot: the grantees of its launchPermission
or createVolumePermission, account ids or the group ``all``.

They are rows of a permissions table (``image_permissions``, ``snapshot_permissions``),
changed by either of the two forms a Modify*Attribute request takes, and listed the way
EC2 answers them.  What a grantee may be is the caller's to check: images and snapshots
refuse a bad one with different errors.
"""

from collections.abc import Callable

from eucacore.awsapi.errors import AWSError

#: The group that grants every account.
PUBLIC = "all"
#: Ids per ``IN (...)`` query, well below SQLite's limit on host parameters.
_CHUNK = 500


def grantees_of(db, table: str, id_column: str, resource_ids: list[str]) -> dict[str, set[str]]:
    """Resource id -> its grantees in ``table`` (an empty set for a resource granted to no one)."""
    out: dict[str, set[str]] = {i: set() for i in resource_ids}
    for start in range(0, len(resource_ids), _CHUNK):
        chunk = resource_ids[start:start + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for resource_id, grantee in db.execute(
                f"SELECT {id_column}, grantee FROM {table} WHERE {id_column} IN ({marks})", chunk):
            out[resource_id].add(grantee)
    return out


def change_grantees(db, table: str, id_column: str, resource_id: str, add: set[str], remove: set[str]) -> None:
    """Grant ``add`` and take back ``remove`` (which wins when both name a grantee), in the
    caller's transaction ``db``."""
    db.conn.executemany(f"INSERT OR IGNORE INTO {table} ({id_column}, grantee) VALUES (?, ?)",
                        [(resource_id, g) for g in sorted(add - remove)])
    db.conn.executemany(f"DELETE FROM {table} WHERE {id_column} = ? AND grantee = ?",
                        [(resource_id, g) for g in sorted(remove)])


def permission_items(granted: set[str]) -> list[dict]:
    """Grantees as EC2 lists them: ``{"Group": "all"}`` first, then ``{"UserId": ...}`` by id."""
    items = [{"Group": PUBLIC}] if PUBLIC in granted else []
    return items + [{"UserId": g} for g in sorted(granted - {PUBLIC})]


def permission_changes(params: dict, grantee: Callable[[dict], str], *, member: str, groups_member: str,
                       attribute: str) -> tuple[set[str], set[str]]:
    """(grantees to add, grantees to remove) of a Modify*Attribute, in either of its forms:
    ``member`` {Add, Remove} (LaunchPermission, CreateVolumePermission), or OperationType with
    UserIds and ``groups_member`` (UserGroups, GroupNames).

    ``grantee`` checks one ``{"UserId": ...}`` or ``{"Group": ...}`` item and returns whom it
    names.  A request changing no one is MissingParameter of ``attribute``.
    """
    structured = params.get(member) or {}
    add = {grantee(p) for p in structured.get("Add") or []}
    remove = {grantee(p) for p in structured.get("Remove") or []}
    listed = [{"UserId": u} for u in params.get("UserIds") or []] + \
             [{"Group": g} for g in params.get(groups_member) or []]
    if listed:
        operation = params.get("OperationType")
        if operation not in ("add", "remove"):
            raise AWSError("MissingParameter" if operation is None else "InvalidParameterValue",
                           "The parameter OperationType must be 'add' or 'remove'.")
        (add if operation == "add" else remove).update(grantee(p) for p in listed)
    if not add and not remove:
        raise AWSError("MissingParameter", f"The request must contain the parameter {attribute}")
    return add, remove
