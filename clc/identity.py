"""Accounts, users, groups, access keys, passwords and policies: the cloud's identities.

This is the data layer of Euare (``clc/euare.py`` is its API).  Every method
raises :class:`IdentityError` with the IAM error code the API answers
(``NoSuchEntity``, ``EntityAlreadyExists``, ``DeleteConflict``...).  Secret
keys are sealed with the CLC's at-rest key (``clc.secrets``) and opened only
to check a signature or to hand the key to its owner once.
"""

import base64
import hashlib
import hmac
import re
import secrets

from eucacore import ids, policy
from eucacore.awsapi.auth import Credentials
from eucacore.db import Store
from eucacore.principal import Principal
from clc.secrets import SecretBox, is_sealed

ADMIN_ACCOUNT = "eucalyptus"
ADMIN_USER = "admin"
#: AWS allows two access keys per user.
MAX_KEYS_PER_USER = 2
ACCOUNT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$")
ENTITY_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
PATH = re.compile(r"^/(?:[\x21-\x7e]*/)?$")
OWNER_TYPES = ("user", "group", "account")


class IdentityError(Exception):
    """An IAM error: ``code`` as the API answers it, ``status`` its HTTP status."""

    STATUS = {"NoSuchEntity": 404, "EntityAlreadyExists": 409, "DeleteConflict": 409,
              "LimitExceeded": 409, "MalformedPolicyDocument": 400, "ValidationError": 400,
              "PasswordPolicyViolation": 400}

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = self.STATUS.get(code, 400)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return "scrypt$16384$8$1$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got, base64.b64decode(digest))


def _check_name(kind: str, name: str) -> None:
    if not name or not ENTITY_NAME.match(name):
        raise IdentityError("ValidationError", f"Invalid {kind} name {name!r}: up to 64 letters, "
                            "digits and +=,.@_- characters")


def _check_path(path: str) -> None:
    if not PATH.match(path) or len(path) > 512:
        raise IdentityError("ValidationError", f"Invalid path {path!r}: must begin and end with /")


class Identity:
    """Looks up and changes the identities in the CLC's store."""

    def __init__(self, store: Store, box: SecretBox):
        self.store, self.box = store, box
        self._seal_plain_secrets()

    @property
    def db(self):
        return self.store.db

    def _seal_plain_secrets(self) -> None:
        """Seal any secret stored in the clear (by a CLC from before sealing existed)."""
        with self.store.atomic():
            for row in list(self.db["access_keys"].rows_where("sealed_secret NOT LIKE 'v1:%'")):
                if not is_sealed(row["sealed_secret"]):
                    self.db["access_keys"].update(row["access_key"], {
                        "sealed_secret": self.box.seal(row["sealed_secret"], row["access_key"])})

    # -- who signed --------------------------------------------------------

    def lookup(self, access_key: str) -> Principal | None:
        """The principal of an active ``access_key``, or None (unknown or inactive keys sign nothing)."""
        rows = list(self.db.query(
            "SELECT k.access_key, k.sealed_secret, k.user_id, k.account_id, u.name AS user_name, "
            "u.path, a.name AS account_name FROM access_keys k JOIN users u ON u.user_id = k.user_id "
            "JOIN accounts a ON a.account_id = k.account_id WHERE k.access_key = ? AND k.status = 'Active'",
            [access_key]))
        if not rows:
            return None
        row = rows[0]
        account_admin = row["user_name"] == ADMIN_USER
        return Principal(
            access_key=row["access_key"], secret_key=self.box.open(row["sealed_secret"], row["access_key"]),
            account_id=row["account_id"], user_id=row["user_id"], account_name=row["account_name"],
            user_name=row["user_name"], user_path=row["path"], is_account_admin=account_admin,
            is_cloud_admin=account_admin and row["account_name"] == ADMIN_ACCOUNT,
            policies=() if account_admin else tuple(self.user_policy_documents(row["user_id"])))

    def user_policy_documents(self, user_id: str) -> list[str]:
        """The policies that apply to a user: its own and its groups'."""
        return [r["document"] for r in self.db.query(
            "SELECT document FROM policies WHERE owner_type = 'user' AND owner_id = ? "
            "UNION ALL SELECT p.document FROM policies p JOIN group_members m ON p.owner_type = 'group' "
            "AND p.owner_id = m.group_id WHERE m.user_id = ?", [user_id, user_id])]

    # -- accounts ----------------------------------------------------------

    def account(self, name: str) -> dict | None:
        rows = list(self.db["accounts"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def account_by_id(self, account_id: str) -> dict | None:
        rows = list(self.db["accounts"].rows_where("account_id = ?", [account_id]))
        return rows[0] if rows else None

    def require_account(self, name: str) -> dict:
        account = self.account(name)
        if account is None:
            raise IdentityError("NoSuchEntity", f"The account {name} does not exist.")
        return account

    def account_name(self, account_id: str) -> str:
        account = self.account_by_id(account_id)
        return account["name"] if account else ""

    def accounts(self) -> list[dict]:
        return list(self.db["accounts"].rows_where(order_by="name"))

    def create_account(self, name: str, with_key: bool = True) -> tuple[dict, Credentials | None]:
        """A new account with its ``admin`` user (and, ``with_key``, an access key for it)."""
        if not ACCOUNT_NAME.match(name or ""):
            raise IdentityError("ValidationError", f"Invalid account name {name!r}: 3 to 63 lowercase "
                                "letters, digits and single hyphens, not starting or ending with one")
        with self.store.atomic():
            if self.account(name):
                raise IdentityError("EntityAlreadyExists", f"The account {name} already exists.")
            account = {"account_id": self._new_account_number(), "name": name, "created": ids.now()}
            self.db["accounts"].insert(account)
            user = self.create_user(account["account_id"], ADMIN_USER)
            creds = self.create_access_key(user["user_id"]) if with_key else None
        return account, creds

    def _new_account_number(self) -> str:
        while True:
            number = ids.new_account_number()
            if not self.account_by_id(number):
                return number

    def delete_account(self, name: str, recursive: bool = False) -> None:
        """Delete an account and its identities; refused while it has users besides ``admin``,
        groups or policies (unless ``recursive``) or while it owns live instances."""
        if name == ADMIN_ACCOUNT:
            raise IdentityError("DeleteConflict", "The cloud admin account cannot be deleted.")
        with self.store.atomic():
            account = self.require_account(name)
            account_id = account["account_id"]
            live = self.db.execute("SELECT COUNT(*) FROM instances WHERE account_id = ? AND state NOT IN "
                                   "('terminated')", [account_id]).fetchone()[0]
            if live:
                raise IdentityError("DeleteConflict", f"The account {name} still has {live} instance(s); "
                                    "terminate them first.")
            users = [u for u in self.users(account_id) if u["name"] != ADMIN_USER]
            groups = self.groups(account_id)
            if (users or groups) and not recursive:
                raise IdentityError("DeleteConflict", f"The account {name} still has users or groups; "
                                    "delete them first or delete recursively.")
            for group in groups:
                self.delete_group(group["group_id"], recursive=True)
            for user in self.users(account_id):
                self.delete_user(user["user_id"], recursive=True)
            self.db.execute("DELETE FROM policies WHERE owner_type = 'account' AND owner_id = ?", [account_id])
            for table in ("keypairs", "images"):
                self.db.execute(f"DELETE FROM {table} WHERE account_id = ?", [account_id])
            self.db["accounts"].delete(account_id)

    def admin_credentials(self) -> Credentials | None:
        """An active access key of the cloud admin (account ``eucalyptus``, user ``admin``)."""
        account = self.account(ADMIN_ACCOUNT)
        if not account:
            return None
        return self.account_credentials(account["account_id"])

    def account_credentials(self, account_id: str) -> Credentials | None:
        """An active access key of the account's admin user (the CLC acts for the account with it)."""
        rows = list(self.db.query(
            "SELECT k.* FROM access_keys k JOIN users u ON u.user_id = k.user_id "
            "WHERE k.account_id = ? AND k.status = 'Active' ORDER BY u.name = ? DESC, k.created LIMIT 1",
            [account_id, ADMIN_USER]))
        if not rows:
            return None
        r = rows[0]
        return Credentials(r["access_key"], self.box.open(r["sealed_secret"], r["access_key"]),
                           r["account_id"], r["user_id"])

    # -- users -------------------------------------------------------------

    def users(self, account_id: str, path_prefix: str = "/") -> list[dict]:
        return [u for u in self.db["users"].rows_where("account_id = ?", [account_id], order_by="name")
                if u["path"].startswith(path_prefix)]

    def user(self, account_id: str, name: str) -> dict:
        rows = list(self.db["users"].rows_where("account_id = ? AND name = ?", [account_id, name]))
        if not rows:
            raise IdentityError("NoSuchEntity", f"The user with name {name} cannot be found.")
        return rows[0]

    def create_user(self, account_id: str, name: str, path: str = "/") -> dict:
        _check_name("user", name)
        _check_path(path)
        with self.store.atomic():
            if list(self.db["users"].rows_where("account_id = ? AND name = ?", [account_id, name])):
                raise IdentityError("EntityAlreadyExists", f"User with name {name} already exists.")
            user = {"user_id": "AID" + ids.new_access_key()[0][3:], "account_id": account_id,
                    "name": name, "path": path, "created": ids.now()}
            self.db["users"].insert(user)
        return user

    def delete_user(self, user_id: str, recursive: bool = False) -> None:
        """Delete a user; refused while it has keys, policies, groups or a password (unless ``recursive``)."""
        with self.store.atomic():
            attached = {
                "access keys": self.db["access_keys"].count_where("user_id = ?", [user_id]),
                "policies": self.db["policies"].count_where("owner_type = 'user' AND owner_id = ?", [user_id]),
                "groups": self.db["group_members"].count_where("user_id = ?", [user_id]),
                "a login profile": self.db["login_profiles"].count_where("user_id = ?", [user_id]),
            }
            if not recursive and any(attached.values()):
                what = ", ".join(k for k, v in attached.items() if v)
                raise IdentityError("DeleteConflict", f"Cannot delete entity, must remove {what} first.")
            self.db.execute("DELETE FROM access_keys WHERE user_id = ?", [user_id])
            self.db.execute("DELETE FROM policies WHERE owner_type = 'user' AND owner_id = ?", [user_id])
            self.db.execute("DELETE FROM group_members WHERE user_id = ?", [user_id])
            self.db.execute("DELETE FROM login_profiles WHERE user_id = ?", [user_id])
            self.db["users"].delete(user_id)

    # -- groups ------------------------------------------------------------

    def groups(self, account_id: str, path_prefix: str = "/") -> list[dict]:
        return [g for g in self.db["groups"].rows_where("account_id = ?", [account_id], order_by="name")
                if g["path"].startswith(path_prefix)]

    def group(self, account_id: str, name: str) -> dict:
        rows = list(self.db["groups"].rows_where("account_id = ? AND name = ?", [account_id, name]))
        if not rows:
            raise IdentityError("NoSuchEntity", f"The group with name {name} cannot be found.")
        return rows[0]

    def create_group(self, account_id: str, name: str, path: str = "/") -> dict:
        _check_name("group", name)
        _check_path(path)
        with self.store.atomic():
            if list(self.db["groups"].rows_where("account_id = ? AND name = ?", [account_id, name])):
                raise IdentityError("EntityAlreadyExists", f"Group with name {name} already exists.")
            group = {"group_id": "AGP" + ids.new_access_key()[0][3:], "account_id": account_id,
                     "name": name, "path": path, "created": ids.now()}
            self.db["groups"].insert(group)
        return group

    def delete_group(self, group_id: str, recursive: bool = False) -> None:
        with self.store.atomic():
            members = self.db["group_members"].count_where("group_id = ?", [group_id])
            policies = self.db["policies"].count_where("owner_type = 'group' AND owner_id = ?", [group_id])
            if (members or policies) and not recursive:
                raise IdentityError("DeleteConflict", "Cannot delete entity, must remove users and "
                                    "policies from the group first.")
            self.db.execute("DELETE FROM group_members WHERE group_id = ?", [group_id])
            self.db.execute("DELETE FROM policies WHERE owner_type = 'group' AND owner_id = ?", [group_id])
            self.db["groups"].delete(group_id)

    def group_users(self, group_id: str) -> list[dict]:
        return list(self.db.query("SELECT u.* FROM users u JOIN group_members m ON m.user_id = u.user_id "
                                  "WHERE m.group_id = ? ORDER BY u.name", [group_id]))

    def user_groups(self, user_id: str) -> list[dict]:
        return list(self.db.query("SELECT g.* FROM groups g JOIN group_members m ON m.group_id = g.group_id "
                                  "WHERE m.user_id = ? ORDER BY g.name", [user_id]))

    def add_user_to_group(self, group_id: str, user_id: str) -> None:
        with self.store.atomic():
            self.db["group_members"].insert({"group_id": group_id, "user_id": user_id}, ignore=True)

    def remove_user_from_group(self, group_id: str, user_id: str) -> None:
        with self.store.atomic():
            self.db.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?", [group_id, user_id])

    # -- access keys -------------------------------------------------------

    def access_keys(self, user_id: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "sealed_secret"}
                for r in self.db["access_keys"].rows_where("user_id = ?", [user_id], order_by="created")]

    def create_access_key(self, user_id: str) -> Credentials:
        """A new active key for the user; its secret is returned here and never again."""
        with self.store.atomic():
            user = self.db["users"].get(user_id)
            if self.db["access_keys"].count_where("user_id = ?", [user_id]) >= MAX_KEYS_PER_USER:
                raise IdentityError("LimitExceeded", f"Cannot exceed quota for AccessKeysPerUser: "
                                    f"{MAX_KEYS_PER_USER}")
            akid, secret = ids.new_access_key()
            self.db["access_keys"].insert({"access_key": akid, "sealed_secret": self.box.seal(secret, akid),
                                           "user_id": user_id, "account_id": user["account_id"],
                                           "status": "Active", "created": ids.now()})
        return Credentials(akid, secret, user["account_id"], user_id)

    def access_key(self, user_id: str, access_key: str) -> dict:
        rows = list(self.db["access_keys"].rows_where("access_key = ? AND user_id = ?", [access_key, user_id]))
        if not rows:
            raise IdentityError("NoSuchEntity", f"The Access Key with id {access_key} cannot be found.")
        return rows[0]

    def update_access_key(self, user_id: str, access_key: str, status: str) -> None:
        if status not in ("Active", "Inactive"):
            raise IdentityError("ValidationError", f"Invalid status {status!r}: Active or Inactive")
        with self.store.atomic():
            self.access_key(user_id, access_key)
            self.db["access_keys"].update(access_key, {"status": status})

    def delete_access_key(self, user_id: str, access_key: str) -> None:
        with self.store.atomic():
            self.access_key(user_id, access_key)
            self.db["access_keys"].delete(access_key)

    # -- passwords ---------------------------------------------------------

    def login_profile(self, user_id: str) -> dict:
        rows = list(self.db["login_profiles"].rows_where("user_id = ?", [user_id]))
        if not rows:
            raise IdentityError("NoSuchEntity", "The user has no login profile.")
        return rows[0]

    def set_login_profile(self, user_id: str, password: str, create: bool) -> dict:
        if not password or len(password) > 128:
            raise IdentityError("PasswordPolicyViolation", "The password must be 1 to 128 characters.")
        with self.store.atomic():
            exists = self.db["login_profiles"].count_where("user_id = ?", [user_id])
            if create and exists:
                raise IdentityError("EntityAlreadyExists", "The user already has a login profile.")
            if not create and not exists:
                raise IdentityError("NoSuchEntity", "The user has no login profile.")
            row = {"user_id": user_id, "password_hash": hash_password(password), "created": ids.now()}
            self.db["login_profiles"].upsert(row, pk="user_id")
        return row

    def delete_login_profile(self, user_id: str) -> None:
        with self.store.atomic():
            self.login_profile(user_id)
            self.db["login_profiles"].delete(user_id)

    # -- policies ----------------------------------------------------------

    def put_policy(self, owner_type: str, owner_id: str, name: str, document: str) -> None:
        """Attach (or replace) the named inline policy of a user, group or account."""
        assert owner_type in OWNER_TYPES
        _check_name("policy", name)
        try:
            parsed = policy.parse(document)
        except policy.PolicyError as e:
            raise IdentityError("MalformedPolicyDocument", str(e)) from None
        if owner_type != "account" and any(s.effect == "Limit" for s in parsed.statements):
            raise IdentityError("MalformedPolicyDocument", "Limit statements (quotas) belong in account "
                                "policies only")
        with self.store.atomic():
            self.db["policies"].upsert({"owner_type": owner_type, "owner_id": owner_id, "name": name,
                                        "document": document, "created": ids.now()},
                                       pk=("owner_type", "owner_id", "name"))

    def policy(self, owner_type: str, owner_id: str, name: str) -> dict:
        rows = list(self.db["policies"].rows_where("owner_type = ? AND owner_id = ? AND name = ?",
                                                   [owner_type, owner_id, name]))
        if not rows:
            raise IdentityError("NoSuchEntity", f"The {owner_type} policy with name {name} cannot be found.")
        return rows[0]

    def policies(self, owner_type: str, owner_id: str) -> list[dict]:
        return list(self.db["policies"].rows_where("owner_type = ? AND owner_id = ?", [owner_type, owner_id],
                                                   order_by="name"))

    def delete_policy(self, owner_type: str, owner_id: str, name: str) -> None:
        with self.store.atomic():
            self.policy(owner_type, owner_id, name)
            self.db.execute("DELETE FROM policies WHERE owner_type = ? AND owner_id = ? AND name = ?",
                            [owner_type, owner_id, name])
