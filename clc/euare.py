"""Euare, the IAM-compatible API: users, groups, access keys, passwords, policies, and
the original's additions for the cloud admin (accounts, account policies, quotas).

Each handler is ``handler(ctx, params) -> dict`` for one IAM operation.  A user who
is not its account's admin needs an identity policy allowing ``iam:<Operation>`` on
the entity's ARN.  The cloud admin may act inside any account with
``DelegateAccount`` (``--as-account``); account operations are the cloud admin's only.
"""

import functools
from urllib.parse import quote

from eucacore import policy
from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.models import DELEGATE
from clc.identity import ADMIN_USER, IdentityError

MAX_ITEMS = 100


# -- access ------------------------------------------------------------------

def _answering_iam_errors(handler):
    """The handler, with the identity layer's refusals answered as IAM errors."""
    @functools.wraps(handler)
    def wrapped(ctx, params):
        try:
            return handler(ctx, params)
        except IdentityError as e:
            raise AWSError(e.code, e.message, e.status) from None
    return wrapped


def _target_account(ctx, params) -> str:
    """The account the request acts in: the caller's, or DelegateAccount for the cloud admin."""
    delegate = params.pop(DELEGATE, None)
    if not delegate:
        return ctx.account_id
    if not ctx.credentials.is_cloud_admin:
        raise AWSError("AccessDenied", f"Only the cloud admin may act as another account ({DELEGATE}).", 403)
    return ctx.cloud.identity.require_account(delegate)["account_id"]


def _require_cloud_admin(ctx, action: str) -> None:
    if not ctx.credentials.is_cloud_admin:
        raise AWSError("AccessDenied", f"User: {ctx.credentials.arn} is not authorized to perform: "
                       f"iam:{action}: only the cloud admin manages accounts", 403)


class _Scope:
    """One request's account, and its users and groups as the caller may see them."""

    def __init__(self, ctx, params, action: str):
        self.ctx, self.action = ctx, action
        self.identity = ctx.cloud.identity
        self.account_id = _target_account(ctx, params)

    def arn(self, kind: str, entity: dict | None = None, name: str = "", path: str = "/") -> str:
        if entity is not None:
            return policy.iam_arn(self.account_id, kind, entity["path"], entity["name"])
        return policy.iam_arn(self.account_id, kind, path, name)

    def authorize(self, arn: str) -> None:
        """AccessDenied unless the caller may do this request's action on ``arn`` (the cloud
        admin acting inside another account may do everything)."""
        principal = self.ctx.credentials
        if self.account_id == self.ctx.account_id and not principal.allows(f"iam:{self.action}", [arn]):
            raise AWSError("AccessDenied", f"User: {principal.arn} is not authorized to perform: "
                           f"iam:{self.action} on resource: {arn}", 403)

    def user(self, name: str | None) -> dict:
        """The named user, or the caller when no name is given (as IAM does)."""
        if not name:
            name = self.ctx.credentials.user_name if self.account_id == self.ctx.account_id else ADMIN_USER
        return self._entity("user", name)

    def group(self, name: str) -> dict:
        return self._entity("group", name)

    def _entity(self, kind: str, name: str) -> dict:
        """The entity if the caller may act on it; one the caller may not act on is refused
        whether or not it exists, so a refusal tells nothing about existence."""
        try:
            entity = getattr(self.identity, kind)(self.account_id, name)
        except IdentityError:
            self.authorize(self.arn(kind, name=name))
            raise
        self.authorize(self.arn(kind, entity))
        return entity

    def create(self, kind: str, params) -> dict:
        name, path = params[f"{kind.title()}Name"], params.get("Path") or "/"
        self.authorize(self.arn(kind, name=name, path=path))
        return getattr(self.identity, f"create_{kind}")(self.account_id, name, path)


def _page(items: list[dict], params, key: str) -> tuple[dict, list[dict]]:
    """IAM's Marker/MaxItems paging over items sorted by ``key``."""
    marker = params.get("Marker")
    if marker:
        items = [i for i in items if i[key] >= marker]
    limit = params.get("MaxItems") or MAX_ITEMS
    page = {"IsTruncated": len(items) > limit}
    if page["IsTruncated"]:
        page["Marker"] = items[limit][key]
    return page, items[:limit]


# -- shapes ------------------------------------------------------------------

def _user(scope, row: dict) -> dict:
    return {"Path": row["path"], "UserName": row["name"], "UserId": row["user_id"],
            "Arn": scope.arn("user", row), "CreateDate": row["created"]}


def _group(scope, row: dict) -> dict:
    return {"Path": row["path"], "GroupName": row["name"], "GroupId": row["group_id"],
            "Arn": scope.arn("group", row), "CreateDate": row["created"]}


def _key(user: dict, row: dict) -> dict:
    return {"UserName": user["name"], "AccessKeyId": row["access_key"], "Status": row["status"],
            "CreateDate": row["created"]}


# -- users -------------------------------------------------------------------

def create_user(ctx, params):
    scope = _Scope(ctx, params, "CreateUser")
    return {"User": _user(scope, scope.create("user", params))}


def get_user(ctx, params):
    scope = _Scope(ctx, params, "GetUser")
    return {"User": _user(scope, scope.user(params.get("UserName")))}


def list_users(ctx, params):
    scope = _Scope(ctx, params, "ListUsers")
    scope.authorize(scope.arn("user", name="*"))
    rows = [r for r in scope.identity.users(scope.account_id, params.get("PathPrefix") or "/")]
    page, rows = _page(rows, params, "name")
    return dict(page, Users=[_user(scope, r) for r in rows])


def delete_user(ctx, params):
    scope = _Scope(ctx, params, "DeleteUser")
    user = scope.user(params["UserName"])
    if user["name"] == ADMIN_USER:
        raise AWSError("DeleteConflict", "The account's admin user cannot be deleted.", 409)
    scope.identity.delete_user(user["user_id"])
    return {}


def list_groups_for_user(ctx, params):
    scope = _Scope(ctx, params, "ListGroupsForUser")
    user = scope.user(params["UserName"])
    page, rows = _page(scope.identity.user_groups(user["user_id"]), params, "name")
    return dict(page, Groups=[_group(scope, r) for r in rows])


# -- groups ------------------------------------------------------------------

def create_group(ctx, params):
    scope = _Scope(ctx, params, "CreateGroup")
    return {"Group": _group(scope, scope.create("group", params))}


def get_group(ctx, params):
    scope = _Scope(ctx, params, "GetGroup")
    group = scope.group(params["GroupName"])
    page, rows = _page(scope.identity.group_users(group["group_id"]), params, "name")
    return dict(page, Group=_group(scope, group), Users=[_user(scope, r) for r in rows])


def list_groups(ctx, params):
    scope = _Scope(ctx, params, "ListGroups")
    scope.authorize(scope.arn("group", name="*"))
    page, rows = _page(scope.identity.groups(scope.account_id, params.get("PathPrefix") or "/"),
                       params, "name")
    return dict(page, Groups=[_group(scope, r) for r in rows])


def delete_group(ctx, params):
    scope = _Scope(ctx, params, "DeleteGroup")
    scope.identity.delete_group(scope.group(params["GroupName"])["group_id"])
    return {}


def add_user_to_group(ctx, params):
    scope = _Scope(ctx, params, "AddUserToGroup")
    group = scope.group(params["GroupName"])
    scope.identity.add_user_to_group(group["group_id"], scope.user(params["UserName"])["user_id"])
    return {}


def remove_user_from_group(ctx, params):
    scope = _Scope(ctx, params, "RemoveUserFromGroup")
    group = scope.group(params["GroupName"])
    scope.identity.remove_user_from_group(group["group_id"], scope.user(params["UserName"])["user_id"])
    return {}


# -- access keys ---------------------------------------------------------------

def create_access_key(ctx, params):
    scope = _Scope(ctx, params, "CreateAccessKey")
    user = scope.user(params.get("UserName"))
    creds = scope.identity.create_access_key(user["user_id"])
    row = scope.identity.access_key(user["user_id"], creds.access_key)
    return {"AccessKey": dict(_key(user, row), SecretAccessKey=creds.secret_key)}


def list_access_keys(ctx, params):
    scope = _Scope(ctx, params, "ListAccessKeys")
    user = scope.user(params.get("UserName"))
    page, rows = _page(scope.identity.access_keys(user["user_id"]), params, "access_key")
    return dict(page, AccessKeyMetadata=[_key(user, r) for r in rows])


def update_access_key(ctx, params):
    scope = _Scope(ctx, params, "UpdateAccessKey")
    user = scope.user(params.get("UserName"))
    scope.identity.update_access_key(user["user_id"], params["AccessKeyId"], params["Status"])
    return {}


def delete_access_key(ctx, params):
    scope = _Scope(ctx, params, "DeleteAccessKey")
    user = scope.user(params.get("UserName"))
    scope.identity.delete_access_key(user["user_id"], params["AccessKeyId"])
    return {}


# -- passwords -----------------------------------------------------------------

def _login_profile(user: dict, row: dict) -> dict:
    return {"LoginProfile": {"UserName": user["name"], "CreateDate": row["created"],
                             "PasswordResetRequired": False}}


def create_login_profile(ctx, params):
    scope = _Scope(ctx, params, "CreateLoginProfile")
    user = scope.user(params["UserName"])
    return _login_profile(user, scope.identity.set_login_profile(user["user_id"], params["Password"], True))


def update_login_profile(ctx, params):
    scope = _Scope(ctx, params, "UpdateLoginProfile")
    user = scope.user(params["UserName"])
    if params.get("Password") is not None:
        scope.identity.set_login_profile(user["user_id"], params["Password"], False)
    return {}


def get_login_profile(ctx, params):
    scope = _Scope(ctx, params, "GetLoginProfile")
    user = scope.user(params["UserName"])
    return _login_profile(user, scope.identity.login_profile(user["user_id"]))


def delete_login_profile(ctx, params):
    scope = _Scope(ctx, params, "DeleteLoginProfile")
    scope.identity.delete_login_profile(scope.user(params["UserName"])["user_id"])
    return {}


# -- user and group policies -----------------------------------------------------

def _policy_handlers(kind: str):
    """Put/Get/List/Delete<Kind>Policy for users, groups and (the cloud admin's) accounts:
    one implementation."""
    title = kind.title()
    name_key = f"{title}Name"

    def owner(ctx, params, action: str) -> tuple[str, str]:
        """(name, id) of the policies' owner, if the caller may act on it."""
        if kind == "account":
            _require_cloud_admin(ctx, action)
            account = ctx.cloud.identity.require_account(params[name_key])
            return account["name"], account["account_id"]
        scope = _Scope(ctx, params, action)
        entity = scope.user(params[name_key]) if kind == "user" else scope.group(params[name_key])
        return entity["name"], entity[f"{kind}_id"]

    def put(ctx, params):
        _, owner_id = owner(ctx, params, f"Put{title}Policy")
        ctx.cloud.identity.put_policy(kind, owner_id, params["PolicyName"], params["PolicyDocument"])
        return {}

    def get(ctx, params):
        name, owner_id = owner(ctx, params, f"Get{title}Policy")
        row = ctx.cloud.identity.policy(kind, owner_id, params["PolicyName"])
        # IAM sends policy documents URL-encoded; botocore decodes them.
        return {name_key: name, "PolicyName": row["name"], "PolicyDocument": quote(row["document"])}

    def list_(ctx, params):
        _, owner_id = owner(ctx, params, f"List{title}Policies")
        page, rows = _page(ctx.cloud.identity.policies(kind, owner_id), params, "name")
        return dict(page, PolicyNames=[r["name"] for r in rows])

    def delete(ctx, params):
        _, owner_id = owner(ctx, params, f"Delete{title}Policy")
        ctx.cloud.identity.delete_policy(kind, owner_id, params["PolicyName"])
        return {}

    return {f"Put{title}Policy": put, f"Get{title}Policy": get, f"List{title}Policies": list_,
            f"Delete{title}Policy": delete}


# -- the account -------------------------------------------------------------------

def get_account_summary(ctx, params):
    scope = _Scope(ctx, params, "GetAccountSummary")
    scope.authorize("*")
    identity = scope.identity
    users = identity.users(scope.account_id)
    return {"SummaryMap": {
        "Users": len(users), "Groups": len(identity.groups(scope.account_id)),
        "AccessKeysPerUserQuota": 2,
        "Policies": sum(len(identity.policies("user", u["user_id"])) for u in users),
    }}


# -- the cloud admin's: accounts, account policies, quotas ---------------------------

def _account(row: dict) -> dict:
    return {"AccountName": row["name"], "AccountId": row["account_id"], "CreateDate": row["created"]}


def create_account(ctx, params):
    _require_cloud_admin(ctx, "CreateAccount")
    account, _ = ctx.cloud.identity.create_account(params["AccountName"], with_key=False)
    return {"Account": _account(account)}


def list_accounts(ctx, params):
    _require_cloud_admin(ctx, "ListAccounts")
    return {"Accounts": [_account(r) for r in ctx.cloud.identity.accounts()]}


def delete_account(ctx, params):
    _require_cloud_admin(ctx, "DeleteAccount")
    ctx.cloud.identity.delete_account(params["AccountName"], bool(params.get("Recursive")))
    return {}


def list_account_quotas(ctx, params):
    """Every quota of one account (or, for the cloud admin without a name, of every account),
    with what the account uses.  An account admin may see its own account's."""
    identity, principal = ctx.cloud.identity, ctx.credentials
    own = identity.account_by_id(ctx.account_id)
    if not principal.is_cloud_admin and (not principal.is_account_admin
                                         or params.get("AccountName") not in (None, own["name"])):
        # Refused before any lookup, so the answer tells nothing of which accounts exist.
        raise AWSError("AccessDenied", "Only the cloud admin and the account's admin may see its quotas.", 403)
    if params.get("AccountName"):
        accounts = [identity.require_account(params["AccountName"])]
    else:
        accounts = identity.accounts() if principal.is_cloud_admin else [own]
    quotas = []
    for account in accounts:
        limits, used = ctx.cloud.quotas.limits(account["account_id"]), ctx.cloud.quotas.used(account["account_id"])
        for name, quota in policy.QUOTAS.items():
            quotas.append({"AccountName": account["name"], "AccountId": account["account_id"], "Name": name,
                           "Key": quota.key, "Limit": limits[name], "Used": used[name]})
    return {"Quotas": quotas}


_HANDLERS = {
    "CreateUser": create_user, "GetUser": get_user, "ListUsers": list_users, "DeleteUser": delete_user,
    "ListGroupsForUser": list_groups_for_user,
    "CreateGroup": create_group, "GetGroup": get_group, "ListGroups": list_groups, "DeleteGroup": delete_group,
    "AddUserToGroup": add_user_to_group, "RemoveUserFromGroup": remove_user_from_group,
    "CreateAccessKey": create_access_key, "ListAccessKeys": list_access_keys,
    "UpdateAccessKey": update_access_key, "DeleteAccessKey": delete_access_key,
    "CreateLoginProfile": create_login_profile, "UpdateLoginProfile": update_login_profile,
    "GetLoginProfile": get_login_profile, "DeleteLoginProfile": delete_login_profile,
    **_policy_handlers("user"), **_policy_handlers("group"), **_policy_handlers("account"),
    "GetAccountSummary": get_account_summary,
    "CreateAccount": create_account, "ListAccounts": list_accounts, "DeleteAccount": delete_account,
    "ListAccountQuotas": list_account_quotas,
}
HANDLERS = {action: _answering_iam_errors(handler) for action, handler in _HANDLERS.items()}
