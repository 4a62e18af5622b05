"""Elastic IP addresses: AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress,
DescribeAddresses.

The pool is the cloud's ``VNET_PUBLICIPS`` (addresses and ranges); an address is free
while no row of ``addresses`` holds it.  Allocation picks and records a free address in
one transaction, so two concurrent allocations never get the same one.  Associating
records the address as the instance's ``public_ip``; the networking issue makes it real.
"""

import ipaddress
from collections.abc import Iterator

from eucacore import ids
from eucacore.awsapi.errors import AWSError
from clc.cloud import REGION
from clc.ec2.access import sees_all_accounts
from clc.ec2.common import apply_filters, dry_run, not_found
from clc.ec2.tags import add_tags, delete_resource_tags, requested_tags, tag_getters, tag_sets
from clc.ec2.volumes import own_instance

#: Every address is EC2-Classic style, as in the original's networking modes.  AllocateAddress
#: accepts Domain 'vpc' so scripts written for AWS run, but ``addresses`` has no column to
#: remember it, so every address reports 'standard'.
DOMAIN = "standard"
DOMAINS = ("standard", "vpc")
POOL_FULL = "The maximum number of addresses has been reached."
_UNSUPPORTED = ("PublicIpv4Pool", "CustomerOwnedIpv4Pool", "IpamPoolId")


def public_ip_pool(config) -> Iterator[str]:
    """The addresses of ``VNET_PUBLICIPS`` in the order configured, ranges expanded, each once."""
    seen = set()
    for word in config["VNET_PUBLICIPS"] or []:
        first, _, last = word.partition("-")
        low, high = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last or first))
        for number in range(low, high + 1):
            address = str(ipaddress.IPv4Address(number))
            if address not in seen:
                seen.add(address)
                yield address


def _check_border_group(params: dict) -> None:
    group = params.get("NetworkBorderGroup")
    if group is not None and group != REGION:
        raise AWSError("InvalidParameterValue", f"The network border group '{group}' does not exist; "
                                                f"this cloud has '{REGION}'.")


def _free_address(ctx, wanted: str | None) -> str:
    """A free address of the pool (``wanted`` itself, if given); call inside the allocating transaction."""
    taken = {row[0] for row in ctx.cloud.store.db.execute("SELECT public_ip FROM addresses")}
    if wanted:
        if wanted not in public_ip_pool(ctx.cloud.config):
            raise not_found("InvalidAddress.NotFound", "address", wanted)
        if wanted in taken:
            raise AWSError("InvalidIPAddress.InUse", f"The address '{wanted}' is already allocated.")
        return wanted
    for address in public_ip_pool(ctx.cloud.config):
        if address not in taken:
            return address
    raise AWSError("AddressLimitExceeded", POOL_FULL)


def allocate_address(ctx, params):
    """Allocates a free address of the pool to the caller's account (the addresses quota permitting)."""
    domain = params.get("Domain") or DOMAIN
    if domain not in DOMAINS:
        raise AWSError("InvalidParameterValue", f"Invalid value '{domain}' for domain.")
    for member in _UNSUPPORTED:
        if params.get(member) is not None:
            raise AWSError("InvalidParameterValue", f"The parameter {member} is not supported by this cloud.")
    _check_border_group(params)
    wanted = params.get("Address")
    if wanted is not None:
        try:
            wanted = str(ipaddress.IPv4Address(wanted))
        except ValueError:
            raise AWSError("InvalidParameterValue", f"Invalid value '{wanted}' for address.") from None
    tags = requested_tags(params, "elastic-ip")
    dry_run(params)
    with ctx.cloud.store.atomic() as db:
        ctx.cloud.quotas.check(ctx.account_id, addresses=1)
        row = {"public_ip": _free_address(ctx, wanted), "allocation_id": ids.new_id("eipalloc"),
               "account_id": ctx.account_id, "zone": "", "instance_id": "", "association_id": "",
               "allocated": ids.now()}
        db["addresses"].insert(row)
        add_tags(ctx, [row["allocation_id"]], tags, "elastic-ip")
    return {"PublicIp": row["public_ip"], "AllocationId": row["allocation_id"], "Domain": DOMAIN}


def _named(params: dict) -> tuple[str | None, str | None]:
    """(PublicIp, AllocationId) of a request that names its address by exactly one of them."""
    public_ip, allocation_id = params.get("PublicIp"), params.get("AllocationId")
    if public_ip and allocation_id:
        raise AWSError("InvalidParameterCombination", "You may specify a public IP or an allocation ID, not both.")
    if not public_ip and not allocation_id:
        raise AWSError("MissingParameter", "Either public IP or allocation id must be specified")
    return public_ip, allocation_id


def own_address(ctx, public_ip: str | None = None, allocation_id: str | None = None) -> dict:
    """The caller's address by public IP or allocation id; another account's answers as missing."""
    column, value = ("public_ip", public_ip) if public_ip else ("allocation_id", allocation_id)
    rows = list(ctx.cloud.store.db["addresses"].rows_where(f"{column} = ? AND account_id = ?",
                                                           [value, ctx.account_id]))
    if not rows:
        if public_ip:
            raise not_found("InvalidAddress.NotFound", "address", public_ip)
        raise not_found("InvalidAllocationID.NotFound", "allocation ID", allocation_id)
    return rows[0]


def _unlink(db, address: dict) -> None:
    """Ends the address's association: the address and its instance forget each other."""
    if address["instance_id"]:
        db.execute("UPDATE instances SET public_ip = '' WHERE instance_id = ? AND public_ip = ?",
                   [address["instance_id"], address["public_ip"]])
    db["addresses"].update(address["public_ip"], {"instance_id": "", "association_id": ""})


def associate_address(ctx, params):
    """Associates the caller's address with its running instance, moving it from any other
    instance and replacing any other address of that instance."""
    public_ip, allocation_id = _named(params)
    if params.get("NetworkInterfaceId"):
        raise AWSError("InvalidParameterValue", "Network interfaces are not supported by this cloud.")
    if not params.get("InstanceId"):
        raise AWSError("MissingParameter", "The request must contain the parameter InstanceId")
    with ctx.cloud.store.atomic() as db:
        address = own_address(ctx, public_ip, allocation_id)
        instance = own_instance(ctx, params["InstanceId"])
        if instance["state"] != "running":
            raise AWSError("IncorrectInstanceState", f"The instance '{instance['instance_id']}' is not in the "
                                                     "'running' state.")
        private_ip = params.get("PrivateIpAddress")
        if private_ip and private_ip != instance["private_ip"]:
            raise AWSError("InvalidParameterValue", f"The address {private_ip} is not the private address of "
                                                    f"instance '{instance['instance_id']}'.")
        dry_run(params)
        if address["instance_id"] == instance["instance_id"]:
            return {"AssociationId": address["association_id"]}
        if address["instance_id"]:
            _unlink(db, address)
        for previous in list(db["addresses"].rows_where("instance_id = ?", [instance["instance_id"]])):
            _unlink(db, previous)
        association_id = ids.new_id("eipassoc")
        db["addresses"].update(address["public_ip"], {"instance_id": instance["instance_id"],
                                                      "association_id": association_id})
        db["instances"].update(instance["instance_id"], {"public_ip": address["public_ip"]})
    return {"AssociationId": association_id}


def disassociate_address(ctx, params):
    """Ends an association, named by its id or by the address (an unassociated address is left as it is)."""
    association_id, public_ip = params.get("AssociationId"), params.get("PublicIp")
    if bool(association_id) == bool(public_ip):
        raise AWSError("MissingParameter" if not public_ip else "InvalidParameterCombination",
                       "Specify either an association ID or a public IP.")
    with ctx.cloud.store.atomic() as db:
        if association_id:
            rows = list(db["addresses"].rows_where("association_id = ? AND account_id = ?",
                                                   [association_id, ctx.account_id]))
            if not rows:
                raise not_found("InvalidAssociationID.NotFound", "association ID", association_id)
            address = rows[0]
        else:
            address = own_address(ctx, public_ip=public_ip)
        dry_run(params)
        if address["instance_id"]:
            _unlink(db, address)
    return {}


def release_address(ctx, params):
    """Gives the address back to the pool, disassociating it first."""
    public_ip, allocation_id = _named(params)
    _check_border_group(params)
    with ctx.cloud.store.atomic() as db:
        address = own_address(ctx, public_ip, allocation_id)
        dry_run(params)
        if address["instance_id"]:
            _unlink(db, address)
        db["addresses"].delete(address["public_ip"])
        delete_resource_tags(ctx, [address["allocation_id"]])
    return {}


def _private_ips(ctx, instance_ids: list[str]) -> dict[str, str]:
    if not instance_ids:
        return {}
    marks = ", ".join("?" for _ in instance_ids)
    return dict(ctx.cloud.store.db.execute(
        f"SELECT instance_id, private_ip FROM instances WHERE instance_id IN ({marks})", instance_ids).fetchall())


def _address(row: dict, private_ip: str, tags: list[dict]) -> dict:
    out = {"PublicIp": row["public_ip"], "AllocationId": row["allocation_id"], "Domain": DOMAIN}
    if row["instance_id"]:
        out.update(InstanceId=row["instance_id"], AssociationId=row["association_id"])
        if private_ip:
            out["PrivateIpAddress"] = private_ip
    if tags:
        out["Tags"] = tags
    return out


def describe_addresses(ctx, params):
    """The caller's addresses (every account's for the cloud admin's ``verbose``), by address,
    allocation id and filters."""
    every_account, wanted_ips = sees_all_accounts(ctx, params.get("PublicIps"), params.get("Filters"))
    where, args = ("1", []) if every_account else ("account_id = ?", [ctx.account_id])
    rows = sorted(ctx.cloud.store.db["addresses"].rows_where(where, args),
                  key=lambda r: ipaddress.IPv4Address(r["public_ip"]))
    for public_ip in wanted_ips:
        if not any(r["public_ip"] == public_ip for r in rows):
            raise not_found("InvalidAddress.NotFound", "address", public_ip)
    wanted_allocations = params.get("AllocationIds") or []
    for allocation_id in wanted_allocations:
        if not any(r["allocation_id"] == allocation_id for r in rows):
            raise not_found("InvalidAllocationID.NotFound", "allocation ID", allocation_id)
    dry_run(params)
    if wanted_ips:
        rows = [r for r in rows if r["public_ip"] in wanted_ips]
    if wanted_allocations:
        rows = [r for r in rows if r["allocation_id"] in wanted_allocations]
    private_ips = _private_ips(ctx, [r["instance_id"] for r in rows if r["instance_id"]])
    allocation_ids = [r["allocation_id"] for r in rows]
    getters = {
        "allocation-id": lambda r: r["allocation_id"], "public-ip": lambda r: r["public_ip"],
        "association-id": lambda r: r["association_id"] or [], "instance-id": lambda r: r["instance_id"] or [],
        "domain": lambda r: DOMAIN, "private-ip-address": lambda r: private_ips.get(r["instance_id"]) or [],
        "network-border-group": lambda r: REGION,
        "network-interface-id": lambda r: [], "network-interface-owner-id": lambda r: [],
        **tag_getters(ctx, allocation_ids, lambda r: r["allocation_id"])}
    rows = apply_filters(rows, params.get("Filters"), getters)
    tags = tag_sets(ctx, [r["allocation_id"] for r in rows])
    return {"Addresses": [_address(r, private_ips.get(r["instance_id"], ""), tags[r["allocation_id"]])
                          for r in rows]}


def disassociate_instance(cloud, instance_id: str) -> None:
    """Ends the association of a terminated instance's address (which stays allocated), as
    EC2 does; call in the transaction that records the termination."""
    with cloud.store.atomic() as db:
        for address in list(db["addresses"].rows_where("instance_id = ?", [instance_id])):
            _unlink(db, address)


HANDLERS = {"AllocateAddress": allocate_address, "AssociateAddress": associate_address,
            "DisassociateAddress": disassociate_address, "ReleaseAddress": release_address,
            "DescribeAddresses": describe_addresses}
