"""S3 access control lists: canned ACLs, x-amz-grant-* headers, and who they let in.

An ACL is kept in the shape botocore gives and expects for Get/PutBucketAcl and
Get/PutObjectAcl: ``{"Owner": {"ID", "DisplayName"}, "Grants": [{"Grantee": {...},
"Permission": ...}]}``, so it goes to SQLite as JSON and back to the wire unchanged.
A canonical user id is the account id.
"""

import re

from eucacore.awsapi.errors import AWSError

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = (ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY)

READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL = "READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"
PERMISSIONS = (READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL)

CANNED = ("private", "public-read", "public-read-write", "authenticated-read",
          "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write", "aws-exec-read")

#: x-amz-grant-* header -> the permission it grants.
GRANT_HEADERS = {"x-amz-grant-read": READ, "x-amz-grant-write": WRITE,
                 "x-amz-grant-read-acp": READ_ACP, "x-amz-grant-write-acp": WRITE_ACP,
                 "x-amz-grant-full-control": FULL_CONTROL}
_GRANTEE = re.compile(r'\s*(id|uri|emailAddress)\s*=\s*"?([^",]*)"?\s*(?:,|$)', re.IGNORECASE)


def owner(account_id: str) -> dict:
    """An Owner (or Initiator) element: the canonical user id is the account id."""
    return {"ID": account_id, "DisplayName": account_id}


def user(account_id: str) -> dict:
    return {"Type": "CanonicalUser", "ID": account_id, "DisplayName": account_id}


def group(uri: str) -> dict:
    return {"Type": "Group", "URI": uri}


def _grant(grantee: dict, permission: str) -> dict:
    return {"Grantee": grantee, "Permission": permission}


def canned(name: str, owner_id: str, bucket_owner: str | None = None) -> dict:
    """The ACL a canned name stands for; InvalidArgument for a name S3 does not know."""
    grants = [_grant(user(owner_id), FULL_CONTROL)]
    if name == "public-read":
        grants.append(_grant(group(ALL_USERS), READ))
    elif name == "public-read-write":
        grants += [_grant(group(ALL_USERS), READ), _grant(group(ALL_USERS), WRITE)]
    elif name == "authenticated-read":
        grants.append(_grant(group(AUTHENTICATED_USERS), READ))
    elif name in ("bucket-owner-read", "bucket-owner-full-control"):
        if bucket_owner and bucket_owner != owner_id:
            grants.append(_grant(user(bucket_owner), READ if name == "bucket-owner-read" else FULL_CONTROL))
    elif name == "log-delivery-write":
        grants += [_grant(group(LOG_DELIVERY), WRITE), _grant(group(LOG_DELIVERY), READ_ACP)]
    elif name not in ("private", "aws-exec-read"):
        raise AWSError("InvalidArgument", f"Invalid canned ACL: {name}", 400,
                       ArgumentName="x-amz-acl", ArgumentValue=name)
    return {"Owner": owner(owner_id), "Grants": grants}


def from_request(req: dict, headers: dict, owner_id: str, bucket_owner: str | None = None) -> dict | None:
    """The ACL a create/put request asks for (``ACL`` canned or x-amz-grant-* headers), None if
    it asks for none; InvalidRequest when it gives both, as S3 answers."""
    granted = [(h, headers[h]) for h in GRANT_HEADERS if h in headers]
    if req.get("ACL") and granted:
        raise AWSError("InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed", 400)
    if req.get("ACL"):
        return canned(req["ACL"], owner_id, bucket_owner)
    if not granted:
        return None
    grants = []
    for header, value in granted:
        for grantee in parse_grantees(header, value):
            grants.append(_grant(grantee, GRANT_HEADERS[header]))
    return {"Owner": owner(owner_id), "Grants": grants}


def parse_grantees(header: str, value: str) -> list[dict]:
    """``id="…", uri="…"`` from one x-amz-grant-* header; InvalidArgument when malformed."""
    grantees, pos = [], 0
    while pos < len(value.rstrip()):
        match = _GRANTEE.match(value, pos)
        if not match or not match.group(2):
            raise AWSError("InvalidArgument", "Invalid grant header", 400,
                           ArgumentName=header, ArgumentValue=value)
        kind, ident = match.group(1).lower(), match.group(2)
        grantees.append(_grantee({"id": {"Type": "CanonicalUser", "ID": ident},
                                  "uri": {"Type": "Group", "URI": ident},
                                  "emailaddress": {"Type": "AmazonCustomerByEmail",
                                                   "EmailAddress": ident}}[kind]))
        pos = match.end()
    return grantees


def _grantee(grantee: dict) -> dict:
    """A grantee checked and normalized; errors as S3 gives them."""
    kind = grantee.get("Type")
    if kind == "CanonicalUser" and grantee.get("ID"):
        return user(grantee["ID"])
    if kind == "Group" and grantee.get("URI") in GROUPS:
        return group(grantee["URI"])
    if kind == "Group":
        raise AWSError("InvalidArgument", "Invalid group uri", 400,
                       ArgumentName="uri", ArgumentValue=grantee.get("URI", ""))
    if kind == "AmazonCustomerByEmail":
        raise AWSError("UnresolvableGrantByEmailAddress", "The e-mail address you provided "
                       "does not match any account on record.", 400,
                       EmailAddressProvided=grantee.get("EmailAddress", ""))
    raise AWSError("MalformedACLError", "The XML you provided was not well-formed or did not "
                   "validate against our published schema", 400)


def from_policy(policy: dict | None, owner_id: str) -> dict:
    """An AccessControlPolicy sent with Put*Acl, checked; its owner must be the current owner."""
    if not policy or "Owner" not in policy or not policy["Owner"].get("ID"):
        raise AWSError("MalformedACLError", "The XML you provided was not well-formed or did "
                       "not validate against our published schema", 400)
    if policy["Owner"]["ID"] != owner_id:
        raise AWSError("AccessDenied", "Access Denied", 403)
    grants = []
    for entry in policy.get("Grants", []):
        permission = entry.get("Permission")
        if permission not in PERMISSIONS:
            raise AWSError("MalformedACLError", "The XML you provided was not well-formed or "
                           "did not validate against our published schema", 400)
        grants.append(_grant(_grantee(entry.get("Grantee") or {}), permission))
    return {"Owner": owner(owner_id), "Grants": grants}


def permits(acl: dict, account_id: str | None, permission: str) -> bool:
    """Whether ``acl`` grants ``permission`` to ``account_id`` (None: an anonymous request)."""
    if account_id is not None and acl["Owner"]["ID"] == account_id and permission in (READ_ACP, WRITE_ACP):
        return True  # an owner can always read and repair its ACL
    for entry in acl["Grants"]:
        if entry["Permission"] not in (permission, FULL_CONTROL):
            continue
        grantee = entry["Grantee"]
        if grantee["Type"] == "CanonicalUser" and account_id is not None and grantee["ID"] == account_id:
            return True
        if grantee["Type"] == "Group" and (grantee["URI"] == ALL_USERS or (
                grantee["URI"] == AUTHENTICATED_USERS and account_id is not None)):
            return True
    return False
