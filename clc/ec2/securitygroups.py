"""Security groups: CreateSecurityGroup, DescribeSecurityGroups, DeleteSecurityGroup,
Authorize/RevokeSecurityGroupIngress and Authorize/RevokeSecurityGroupEgress.

A group belongs to one account and its name is unique there; every account has a
``default`` group, made on first need (:func:`ensure_default_group`).  A rule is one row
of ``security_group_rules``: a direction, a protocol, a port range (ICMP: type and code)
and exactly one peer, a CIDR or a source group (of any account).  Describe folds the rows
of one (protocol, ports) into one IpPermission, as AWS shows them.

For the other modules: RunInstances finds its groups with :func:`resolve_groups`, and the
cluster controllers get the rules to enforce from :func:`rules_of`.  Every change of a group
(created, deleted, rules authorized or revoked) is pushed to the clusters once it committed
(clc.networks); a cluster that misses it is resynced by the poller, never failing the call.
"""

import ipaddress
import re
import sqlite3

from eucacore import ids, policy
from eucacore.awsapi.errors import AWSError
from clc.ec2 import tags
from clc.ec2.access import REGION, sees_all_accounts
from clc.ec2.common import Page, apply_filters, dry_run, not_found, only_ids

DEFAULT = "default"
MAX_LENGTH = 255
PAGE_MIN, PAGE_MAX = 5, 1000
#: The characters AWS allows in group names, group descriptions and rule descriptions.
_ALLOWED = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*")
_ALLOWED_TEXT = "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"
_GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}")
_RULE_ID = re.compile(r"sgr-([0-9a-f]{17})")
#: Protocol as requested (name or IANA number) -> as stored; '-1' is every protocol.
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp", "-1": "-1"}
_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "-1": "-1"}
#: The permissions a flat SourceSecurityGroupName without IpProtocol grants, as EC2-Classic did.
_WHOLE_GROUP = (("tcp", 0, 65535), ("udp", 0, 65535), ("icmp", -1, -1))
_FLAT = ("IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName", "SourceSecurityGroupOwnerId")


def _invalid(message: str) -> AWSError:
    return AWSError("InvalidParameterValue", message)


# -- rows -------------------------------------------------------------------------------------

def _group_where(cloud, where: str, args: list) -> dict | None:
    rows = list(cloud.store.db["security_groups"].rows_where(where, args, limit=1))
    return rows[0] if rows else None


def _insert_group(cloud, account_id: str, name: str, description: str) -> dict:
    row = {"group_id": ids.new_id("sg"), "account_id": account_id, "name": name, "description": description,
           "created": ids.now()}
    cloud.store.db["security_groups"].insert(row)
    return row


def _insert_rule(cloud, group_id: str, direction: str, rule: dict) -> dict:
    row = {"group_id": group_id, "direction": direction, **rule}
    row["id"] = cloud.store.db["security_group_rules"].insert(row).last_pk
    return row


def ensure_default_group(cloud, account_id: str) -> dict:
    """The account's ``default`` group, made now if it has none (as AWS does: all traffic in
    from the group's own members, all traffic out).  Idempotent; concurrent callers get the
    same group."""
    row = _group_where(cloud, "account_id = ? AND name = ?", [account_id, DEFAULT])
    if row is not None:
        return row
    try:
        with cloud.store.atomic():  # BEGIN IMMEDIATE: one creator at a time
            row = _group_where(cloud, "account_id = ? AND name = ?", [account_id, DEFAULT])
            if row is None:
                row = _insert_group(cloud, account_id, DEFAULT, "default group")
                _insert_rule(cloud, row["group_id"], "ingress", _rule("-1", -1, -1, source=row))
                _insert_rule(cloud, row["group_id"], "egress", _rule("-1", -1, -1, cidr="0.0.0.0/0"))
    except sqlite3.IntegrityError:
        # The unique (account, name) index caught a creator outside our lock: theirs stands.
        row = _group_where(cloud, "account_id = ? AND name = ?", [account_id, DEFAULT])
    return row


def _own_group(ctx, name: str | None = None, group_id: str | None = None) -> dict:
    """The caller's group by id or by name; another account's is InvalidGroup.NotFound."""
    if group_id:
        _check_group_id(group_id)
        row = _group_where(ctx.cloud, "account_id = ? AND group_id = ?", [ctx.account_id, group_id])
    elif name:
        row = (ensure_default_group(ctx.cloud, ctx.account_id) if name == DEFAULT else
               _group_where(ctx.cloud, "account_id = ? AND name = ?", [ctx.account_id, name]))
    else:
        raise AWSError("MissingParameter", "The request must contain the parameter groupName or groupId")
    if row is None:
        raise not_found("InvalidGroup.NotFound", "security group", group_id or name)
    return row


def _check_group_id(group_id: str) -> None:
    if not _GROUP_ID.fullmatch(group_id):
        raise AWSError("InvalidGroupId.Malformed", f"Invalid id: \"{group_id}\" (expecting \"sg-...\")")


def resolve_groups(ctx, names: list[str] | None, group_ids: list[str] | None) -> list[dict]:
    """The caller's groups named by ``names`` and ``group_ids`` (each once, in request order),
    or ``[default]`` when none is named; a missing one is InvalidGroup.NotFound."""
    if not names and not group_ids:
        return [ensure_default_group(ctx.cloud, ctx.account_id)]
    found = {}
    for name in names or []:
        row = _own_group(ctx, name=name)
        found.setdefault(row["group_id"], row)
    for group_id in group_ids or []:
        row = _own_group(ctx, group_id=group_id)
        found.setdefault(row["group_id"], row)
    return list(found.values())


def _groups_by_id(cloud, group_ids) -> dict[str, dict]:
    group_ids = list(dict.fromkeys(group_ids))
    out = {}
    for start in range(0, len(group_ids), 500):
        chunk = group_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        out.update((r["group_id"], r) for r in cloud.store.db["security_groups"].rows_where(
            f"group_id IN ({marks})", chunk))
    return out


def _rules_by_group(cloud, group_ids) -> dict[str, list[dict]]:
    group_ids = list(dict.fromkeys(group_ids))
    out: dict[str, list[dict]] = {g: [] for g in group_ids}
    for start in range(0, len(group_ids), 500):
        chunk = group_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for r in cloud.store.db["security_group_rules"].rows_where(f"group_id IN ({marks})", chunk, order_by="id"):
            out[r["group_id"]].append(r)
    return out


# -- validation -------------------------------------------------------------------------------

def _checked_text(value, member: str, what: str) -> str:
    """A group name or description: 1 to 255 of AWS's allowed characters."""
    if not value:
        raise AWSError("MissingParameter", f"The request must contain the parameter {member}")
    if len(value) > MAX_LENGTH:
        raise _invalid(f"Invalid value '{value}' for {what}. Length exceeds maximum of {MAX_LENGTH}.")
    if not _ALLOWED.fullmatch(value):
        raise _invalid(f"Invalid value '{value}' for {what}. Valid values: {_ALLOWED_TEXT}")
    return value


def _rule_description(value) -> str:
    value = value or ""
    if len(value) > MAX_LENGTH or not _ALLOWED.fullmatch(value):
        raise _invalid("Invalid rule description. Valid descriptions are strings less than 256 characters "
                       f"from the following set: {_ALLOWED_TEXT}")
    return value


def _protocol(value) -> str:
    if value is None or value == "":
        raise AWSError("MissingParameter", "The request must contain the parameter ipProtocol")
    protocol = _PROTOCOLS.get(str(value).lower())
    if protocol is None:
        raise _invalid(f"Invalid value '{value}' for IP protocol. Unknown protocol.")
    return protocol


def _ports(protocol: str, from_port, to_port) -> tuple[int, int]:
    """The stored port range: -1/-1 for every protocol; ICMP type and code, each -1 (all) or
    0-255; for TCP and UDP both ports, 0-65535, from no more than to."""
    if protocol == "-1":
        return -1, -1
    if protocol == "icmp":
        icmp_type = -1 if from_port is None else int(from_port)
        code = -1 if to_port is None else int(to_port)
        if not (-1 <= icmp_type <= 255 and -1 <= code <= 255):
            raise _invalid(f"Invalid value for ICMP type ({icmp_type}) or code ({code}): each is -1 or 0 to 255")
        if icmp_type == -1 and code != -1:
            raise _invalid("ICMP code must be -1 (all codes) when the ICMP type is -1 (all types)")
        return icmp_type, code
    if from_port is None or to_port is None:
        raise _invalid("Invalid value 'null' for portRange. Must specify both from and to ports with TCP/UDP.")
    from_port, to_port = int(from_port), int(to_port)
    if not 0 <= from_port <= to_port <= 65535:
        raise _invalid(f"Invalid port range ({from_port}, {to_port}): ports are 0 to 65535, "
                       "and the from port may not exceed the to port")
    return from_port, to_port


def _cidr(value) -> str:
    """An IPv4 CIDR block, normalized to its network (10.1.2.3/8 -> 10.0.0.0/8)."""
    try:
        if not value or "/" not in value:
            raise ValueError(value)
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError:
        raise _invalid(f"Value ({value}) for parameter cidrIp is invalid. This is not a valid CIDR block.") from None


def _rule(protocol: str, from_port: int, to_port: int, cidr: str = "", source: dict | None = None,
          description: str = "") -> dict:
    return {"protocol": protocol, "from_port": from_port, "to_port": to_port, "cidr": cidr,
            "source_group_id": source["group_id"] if source else "",
            "source_account_id": source["account_id"] if source else "", "description": description}


def _source_group(ctx, pair: dict) -> dict:
    """The group a UserIdGroupPair names: by GroupId or GroupName, in the account UserId
    (the caller's when absent).  A group of another account needs its UserId, so a
    group id alone never reveals another account's group."""
    owner = (pair.get("UserId") or ctx.account_id).replace("-", "")
    group_id, name = pair.get("GroupId"), pair.get("GroupName")
    if group_id:
        _check_group_id(group_id)
        row = _group_where(ctx.cloud, "account_id = ? AND group_id = ?", [owner, group_id])
    elif name:
        if name == DEFAULT and ctx.cloud.identity.account_by_id(owner):
            row = ensure_default_group(ctx.cloud, owner)
        else:
            row = _group_where(ctx.cloud, "account_id = ? AND name = ?", [owner, name])
    else:
        raise AWSError("MissingParameter", "The request must contain the parameter groupId or groupName "
                                           "of each UserIdGroupPair")
    if row is None:
        raise not_found("InvalidGroup.NotFound", "security group", group_id or name)
    return row


def _permission_rules(ctx, permission: dict) -> list[dict]:
    """The rules (one per peer) of one IpPermission, validated."""
    if permission.get("Ipv6Ranges") or permission.get("PrefixListIds"):
        raise _invalid("IPv6 ranges and prefix lists are not supported by this cloud")
    protocol = _protocol(permission.get("IpProtocol"))
    ports = _ports(protocol, permission.get("FromPort"), permission.get("ToPort"))
    rules = [_rule(protocol, *ports, cidr=_cidr(r.get("CidrIp")), description=_rule_description(r.get("Description")))
             for r in permission.get("IpRanges") or []]
    rules += [_rule(protocol, *ports, source=_source_group(ctx, p), description=_rule_description(p.get("Description")))
              for p in permission.get("UserIdGroupPairs") or []]
    if not rules:
        raise AWSError("MissingParameter", "Each IpPermission must contain IpRanges or UserIdGroupPairs")
    return rules


def _requested_permissions(params: dict) -> list[dict]:
    """The request's IpPermissions, or the one its flat parameters describe (a source group
    without a protocol: all of TCP, UDP and ICMP from it, as in EC2-Classic)."""
    flat = {k: params[k] for k in _FLAT if params.get(k) is not None}
    if flat and params.get("IpPermissions"):
        raise AWSError("InvalidParameterCombination",
                       "IpPermissions cannot be combined with " + ", ".join(sorted(flat)))
    if params.get("IpPermissions"):
        return params["IpPermissions"]
    if not flat:
        raise AWSError("MissingParameter", "The request must contain the parameter IpPermissions")
    source = flat.get("SourceSecurityGroupName")
    if flat.get("SourceSecurityGroupOwnerId") and not source:
        raise AWSError("MissingParameter", "The request must contain the parameter SourceSecurityGroupName")
    if source and flat.get("CidrIp"):
        raise AWSError("InvalidParameterCombination", "CidrIp cannot be combined with SourceSecurityGroupName")
    pairs = [{"GroupName": source, "UserId": flat.get("SourceSecurityGroupOwnerId")}] if source else []
    if source and not flat.get("IpProtocol"):
        return [{"IpProtocol": p, "FromPort": f, "ToPort": t, "UserIdGroupPairs": pairs} for p, f, t in _WHOLE_GROUP]
    if not flat.get("CidrIp") and not source:
        raise AWSError("MissingParameter", "The request must contain the parameter CidrIp or SourceSecurityGroupName")
    return [{"IpProtocol": flat.get("IpProtocol"), "FromPort": flat.get("FromPort"), "ToPort": flat.get("ToPort"),
             "IpRanges": [{"CidrIp": flat["CidrIp"]}] if flat.get("CidrIp") else [], "UserIdGroupPairs": pairs}]


def _same(rule: dict) -> tuple:
    """What makes two rules of a group the same rule (the description does not)."""
    return (rule["protocol"], rule["from_port"], rule["to_port"], rule["cidr"] or "", rule["source_group_id"] or "")


def _rule_text(rule: dict) -> str:
    """A rule as AWS names it in InvalidPermission.Duplicate."""
    peer = rule["cidr"] or rule["source_group_id"]
    if rule["protocol"] == "-1":
        return f"peer: {peer}, ALL, ALLOW"
    if rule["protocol"] == "icmp":
        return f"peer: {peer}, ICMP, type: {rule['from_port']}, code: {rule['to_port']}, ALLOW"
    return (f"peer: {peer}, {rule['protocol'].upper()}, from port: {rule['from_port']}, "
            f"to port: {rule['to_port']}, ALLOW")


# -- output -----------------------------------------------------------------------------------

def _rule_id(rule: dict) -> str:
    return f"sgr-{rule['id']:017x}"


def _permissions(rules: list[dict], groups: dict[str, dict]) -> list[dict]:
    """Rules as EC2 IpPermissions: one per (protocol, ports), its peers listed in it."""
    out: dict[tuple, dict] = {}
    for r in rules:
        permission = out.get((r["protocol"], r["from_port"], r["to_port"]))
        if permission is None:
            permission = {"IpProtocol": r["protocol"], "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
                          "UserIdGroupPairs": []}
            if r["protocol"] != "-1":
                permission.update(FromPort=r["from_port"], ToPort=r["to_port"])
            out[(r["protocol"], r["from_port"], r["to_port"])] = permission
        if r["cidr"]:
            permission["IpRanges"].append({"CidrIp": r["cidr"], **({"Description": r["description"]}
                                                                    if r["description"] else {})})
        else:
            pair = {"UserId": r["source_account_id"], "GroupId": r["source_group_id"]}
            if r["source_group_id"] in groups:
                pair["GroupName"] = groups[r["source_group_id"]]["name"]
            if r["description"]:
                pair["Description"] = r["description"]
            permission["UserIdGroupPairs"].append(pair)
    return list(out.values())


def _security_group_rule(group: dict, rule: dict) -> dict:
    """A rule as AuthorizeSecurityGroup* returns it (SecurityGroupRule)."""
    out = {"SecurityGroupRuleId": _rule_id(rule), "GroupId": group["group_id"], "GroupOwnerId": group["account_id"],
           "IsEgress": rule["direction"] == "egress", "IpProtocol": rule["protocol"],
           "FromPort": rule["from_port"], "ToPort": rule["to_port"]}
    if rule["cidr"]:
        out["CidrIpv4"] = rule["cidr"]
    else:
        out["ReferencedGroupInfo"] = {"GroupId": rule["source_group_id"], "UserId": rule["source_account_id"]}
    if rule["description"]:
        out["Description"] = rule["description"]
    return out


def _arn(group: dict) -> str:
    return policy.ec2_arn(REGION, group["account_id"], "security-group", group["group_id"])


# -- the actions ------------------------------------------------------------------------------

def create_security_group(ctx, params):
    """A new group of the caller's account with AWS's default egress rule (all traffic out)."""
    name = _checked_text(params.get("GroupName"), "GroupName", "groupName")
    description = _checked_text(params.get("Description"), "GroupDescription", "groupDescription")
    if name == DEFAULT:
        raise AWSError("InvalidGroup.Reserved", "The security group 'default' is reserved")
    if name.startswith("sg-"):
        raise _invalid("Group names may not be in the format sg-*")
    if params.get("VpcId"):
        raise not_found("InvalidVpcID.NotFound", "vpc ID", params["VpcId"])
    wanted_tags = tags.requested_tags(params, "security-group")
    dry_run(params)
    ensure_default_group(ctx.cloud, ctx.account_id)
    with ctx.cloud.store.atomic():
        if _group_where(ctx.cloud, "account_id = ? AND name = ?", [ctx.account_id, name]):
            raise AWSError("InvalidGroup.Duplicate", f"The security group '{name}' already exists")
        group = _insert_group(ctx.cloud, ctx.account_id, name, description)
        _insert_rule(ctx.cloud, group["group_id"], "egress", _rule("-1", -1, -1, cidr="0.0.0.0/0"))
        tags.add_tags(ctx, [group["group_id"]], wanted_tags, "security-group")
    ctx.cloud.networks.groups_changed(ctx.account_id, [name])
    out = {"GroupId": group["group_id"], "SecurityGroupArn": _arn(group)}
    if wanted_tags:
        out["Tags"] = wanted_tags
    return out


def _rule_getters(direction: str, prefix: str) -> dict:
    """The ``ip-permission.*`` (or ``egress.ip-permission.*``) filters over a described group."""
    def rules(view):
        return view[direction]

    def names(view):
        return [view["names"][r["source_group_id"]]["name"] for r in rules(view)
                if r["source_group_id"] in view["names"]]
    return {
        f"{prefix}protocol": lambda v: [p for r in rules(v) for p in (r["protocol"], _NUMBERS[r["protocol"]])],
        f"{prefix}from-port": lambda v: [r["from_port"] for r in rules(v)],
        f"{prefix}to-port": lambda v: [r["to_port"] for r in rules(v)],
        f"{prefix}cidr": lambda v: [r["cidr"] for r in rules(v) if r["cidr"]],
        f"{prefix}group-id": lambda v: [r["source_group_id"] for r in rules(v) if r["source_group_id"]],
        f"{prefix}group-name": names,
        f"{prefix}user-id": lambda v: [r["source_account_id"] for r in rules(v) if r["source_account_id"]],
        f"{prefix}ipv6-cidr": lambda v: [], f"{prefix}prefix-list-id": lambda v: [],
    }


def describe_security_groups(ctx, params):
    """The caller's groups (every account's in the cloud admin's verbose view) named by
    GroupNames/GroupIds, filtered, a page at a time."""
    filters = params.get("Filters")
    by_names, names = sees_all_accounts(ctx, params.get("GroupNames"), filters)
    by_ids, group_ids = sees_all_accounts(ctx, params.get("GroupIds"), filters)
    for group_id in group_ids:
        _check_group_id(group_id)
    page = Page(params, PAGE_MIN, PAGE_MAX)
    dry_run(params)
    ensure_default_group(ctx.cloud, ctx.account_id)
    table = ctx.cloud.store.db["security_groups"]
    if by_names or by_ids:
        rows = list(table.rows_where(order_by="group_id"))
    else:
        rows = list(table.rows_where("account_id = ?", [ctx.account_id], order_by="group_id"))
    everything = rows
    rows = only_ids(everything, names, "name", "InvalidGroup.NotFound", "security group")
    by_id = {r["group_id"] for r in only_ids(everything, group_ids, "group_id", "InvalidGroup.NotFound",
                                             "security group")}
    rows = [r for r in rows if r["group_id"] in by_id]
    rules = _rules_by_group(ctx.cloud, [r["group_id"] for r in rows])
    peers = _groups_by_id(ctx.cloud, [x["source_group_id"] for rs in rules.values() for x in rs
                                      if x["source_group_id"]])
    views = [{"group": r, "names": peers,
              "ingress": [x for x in rules[r["group_id"]] if x["direction"] == "ingress"],
              "egress": [x for x in rules[r["group_id"]] if x["direction"] == "egress"]} for r in rows]
    getters = {"group-id": lambda v: v["group"]["group_id"], "group-name": lambda v: v["group"]["name"],
               "description": lambda v: v["group"]["description"], "owner-id": lambda v: v["group"]["account_id"],
               "vpc-id": lambda v: [], **_rule_getters("ingress", "ip-permission."),
               **_rule_getters("egress", "egress.ip-permission."),
               **tags.tag_getters(ctx, [r["group_id"] for r in rows], lambda v: v["group"]["group_id"])}
    views = apply_filters(views, filters, getters)
    views, out = page.of(views, lambda v: v["group"]["group_id"])
    tag_sets = tags.tag_sets(ctx, [v["group"]["group_id"] for v in views])
    out["SecurityGroups"] = [_group_out(v, tag_sets) for v in views]
    return out


def _group_out(view: dict, tag_sets: dict) -> dict:
    group = view["group"]
    out = {"OwnerId": group["account_id"], "GroupName": group["name"], "GroupId": group["group_id"],
           "Description": group["description"], "SecurityGroupArn": _arn(group),
           "IpPermissions": _permissions(view["ingress"], view["names"]),
           "IpPermissionsEgress": _permissions(view["egress"], view["names"])}
    if tag_sets.get(group["group_id"]):
        out["Tags"] = tag_sets[group["group_id"]]
    return out


def _instances_using(ctx, group: dict) -> bool:
    """Whether a non-terminated instance of the account is in ``group`` (the instances' groups
    column lists group ids or names)."""
    for (groups,) in ctx.cloud.store.db.execute(
            "SELECT groups FROM instances WHERE account_id = ? AND state != 'terminated'", [ctx.account_id]):
        listed = {g.strip() for g in (groups or "").split(",")}
        if group["group_id"] in listed or group["name"] in listed:
            return True
    return False


def delete_security_group(ctx, params):
    """Deletes a group of the caller's, its rules and its tags; never ``default``, nor a group
    that instances use or another group's rules refer to."""
    group = _own_group(ctx, params.get("GroupName"), params.get("GroupId"))
    if group["name"] == DEFAULT:
        raise AWSError("CannotDelete", f"the specified group: \"{group['group_id']}\" name: \"default\" "
                                       "cannot be deleted by a user")
    dry_run(params)
    db = ctx.cloud.store.db
    with ctx.cloud.store.atomic():
        if _instances_using(ctx, group):
            raise AWSError("InvalidGroup.InUse", f"There are active instances using security group '{group['name']}'")
        if db.execute("SELECT 1 FROM security_group_rules WHERE source_group_id = ? AND group_id != ? LIMIT 1",
                      [group["group_id"], group["group_id"]]).fetchone():
            raise AWSError("DependencyViolation", f"resource {group['group_id']} has a dependent object")
        rule_ids = [_rule_id(r) for r in _rules_by_group(ctx.cloud, [group["group_id"]])[group["group_id"]]]
        db.execute("DELETE FROM security_group_rules WHERE group_id = ?", [group["group_id"]])
        db.execute("DELETE FROM security_groups WHERE group_id = ?", [group["group_id"]])
        tags.delete_resource_tags(ctx, [group["group_id"], *rule_ids])
    ctx.cloud.networks.groups_changed(ctx.account_id, [group["name"]])
    return {"Return": True, "GroupId": group["group_id"]}


def _authorize(ctx, params, direction: str):
    group = _own_group(ctx, params.get("GroupName"), params.get("GroupId"))
    wanted = [r for p in _requested_permissions(params) for r in _permission_rules(ctx, p)]
    wanted_tags = tags.requested_tags(params, "security-group-rule")
    dry_run(params)
    added = []
    with ctx.cloud.store.atomic():
        existing = {_same(r) for r in _rules_by_group(ctx.cloud, [group["group_id"]])[group["group_id"]]
                    if r["direction"] == direction}
        for rule in wanted:
            if _same(rule) in existing:
                raise AWSError("InvalidPermission.Duplicate",
                               f"the specified rule \"{_rule_text(rule)}\" already exists")
            existing.add(_same(rule))
            added.append(_insert_rule(ctx.cloud, group["group_id"], direction, rule))
        tags.add_tags(ctx, [_rule_id(r) for r in added], wanted_tags, "security-group-rule")
    ctx.cloud.networks.groups_changed(ctx.account_id, [group["name"]])
    return {"Return": True, "SecurityGroupRules": [_security_group_rule(group, r) for r in added]}


def _revoke(ctx, params, direction: str):
    group = _own_group(ctx, params.get("GroupName"), params.get("GroupId"))
    rule_ids = params.get("SecurityGroupRuleIds") or []
    for rule_id in rule_ids:
        if not _RULE_ID.fullmatch(rule_id):
            raise AWSError("InvalidSecurityGroupRuleId.Malformed",
                           f"The security group rule ID '{rule_id}' is malformed")
    wanted = ([r for p in _requested_permissions(params) for r in _permission_rules(ctx, p)]
              if not rule_ids or any(params.get(k) is not None for k in (*_FLAT, "IpPermissions")) else [])
    dry_run(params)
    db = ctx.cloud.store.db
    with ctx.cloud.store.atomic():
        rules = [r for r in _rules_by_group(ctx.cloud, [group["group_id"]])[group["group_id"]]
                 if r["direction"] == direction]
        by_key = {_same(r): r for r in rules}
        by_id = {_rule_id(r): r for r in rules}
        doomed = {}
        for rule_id in rule_ids:
            if rule_id not in by_id:
                raise AWSError("InvalidSecurityGroupRuleId.NotFound",
                               f"The security group rule ID '{rule_id}' does not exist")
            doomed[by_id[rule_id]["id"]] = by_id[rule_id]
        for rule in wanted:
            if _same(rule) not in by_key:
                raise AWSError("InvalidPermission.NotFound",
                               "The specified rule does not exist in this security group.")
            doomed[by_key[_same(rule)]["id"]] = by_key[_same(rule)]
        for rule in doomed.values():
            db.execute("DELETE FROM security_group_rules WHERE id = ?", [rule["id"]])
        tags.delete_resource_tags(ctx, [_rule_id(r) for r in doomed.values()])
    ctx.cloud.networks.groups_changed(ctx.account_id, [group["name"]])
    return {"Return": True}


def authorize_security_group_ingress(ctx, params):
    """Adds inbound rules to a group of the caller's: all of them, or with an error none."""
    return _authorize(ctx, params, "ingress")


def authorize_security_group_egress(ctx, params):
    """Adds outbound rules to a group of the caller's: all of them, or with an error none."""
    return _authorize(ctx, params, "egress")


def revoke_security_group_ingress(ctx, params):
    """Removes inbound rules of a group of the caller's; one that is not there is
    InvalidPermission.NotFound and nothing is removed."""
    return _revoke(ctx, params, "ingress")


def revoke_security_group_egress(ctx, params):
    """Removes outbound rules of a group of the caller's, as revoke_security_group_ingress."""
    return _revoke(ctx, params, "egress")


# -- for the cluster controllers --------------------------------------------------------------

def rules_of(cloud, group_ids: list[str]) -> list[dict]:
    """The inbound rules of ``group_ids`` as the original's ConfigureNetwork rules, one each:
    ``type`` "firewall-open"; ``destUserName``/``destName``: the account id and name of the
    group the rule opens; ``protocol`` "tcp" | "udp" | "icmp" | "all"; ``portRangeMin``/
    ``portRangeMax``: the ports (ICMP: type and code; -1 for all); the peer: ``sourceNets``
    [CIDR], or ``sourceNames`` [group name] with ``userNames`` [its account id].  Everything
    else inbound is dropped."""
    groups = _groups_by_id(cloud, group_ids)
    rules = [r for rs in _rules_by_group(cloud, list(groups)).values() for r in rs if r["direction"] == "ingress"]
    peers = _groups_by_id(cloud, [r["source_group_id"] for r in rules if r["source_group_id"]])
    out = []
    for r in rules:
        group = groups[r["group_id"]]
        peer = peers.get(r["source_group_id"])
        out.append({"type": "firewall-open", "destUserName": group["account_id"], "destName": group["name"],
                    "protocol": "all" if r["protocol"] == "-1" else r["protocol"],
                    "portRangeMin": r["from_port"], "portRangeMax": r["to_port"],
                    "sourceNets": [r["cidr"]] if r["cidr"] else [],
                    "sourceNames": [peer["name"]] if peer else [],
                    "userNames": [peer["account_id"]] if peer else []})
    return out


HANDLERS = {
    "CreateSecurityGroup": create_security_group, "DescribeSecurityGroups": describe_security_groups,
    "DeleteSecurityGroup": delete_security_group,
    "AuthorizeSecurityGroupIngress": authorize_security_group_ingress,
    "AuthorizeSecurityGroupEgress": authorize_security_group_egress,
    "RevokeSecurityGroupIngress": revoke_security_group_ingress,
    "RevokeSecurityGroupEgress": revoke_security_group_egress,
}
