"""Accounts, users and access keys: who signed a request, and the cloud's first account."""

from eucacore import ids
from eucacore.awsapi.auth import Credentials
from eucacore.db import Store

ADMIN_ACCOUNT = "eucalyptus"
ADMIN_USER = "admin"


class Identity:
    """Looks up and creates accounts, users and access keys in the CLC's store."""

    def __init__(self, store: Store):
        self.store = store

    def lookup(self, access_key: str) -> Credentials | None:
        """The active credentials of ``access_key``, or None (unknown or inactive keys sign nothing)."""
        rows = list(self.store.db["access_keys"].rows_where("access_key = ? AND status = 'Active'", [access_key]))
        if not rows:
            return None
        row = rows[0]
        return Credentials(access_key=row["access_key"], secret_key=row["secret_key"],
                           account_id=row["account_id"], user_id=row["user_id"])

    def account(self, name: str) -> dict | None:
        rows = list(self.store.db["accounts"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def account_name(self, account_id: str) -> str:
        rows = list(self.store.db["accounts"].rows_where("account_id = ?", [account_id]))
        return rows[0]["name"] if rows else ""

    def create_account(self, name: str, admin_user: str = ADMIN_USER) -> tuple[dict, Credentials]:
        """A new account with its admin user and one access key; returns (account, credentials)."""
        account = {"account_id": ids.new_account_number(), "name": name, "created": ids.now()}
        user = {"user_id": "AID" + ids.new_access_key()[0][3:], "account_id": account["account_id"],
                "name": admin_user, "created": ids.now()}
        akid, secret = ids.new_access_key()
        with self.store.atomic():
            self.store.db["accounts"].insert(account)
            self.store.db["users"].insert(user)
            self.store.db["access_keys"].insert({"access_key": akid, "secret_key": secret,
                                                 "user_id": user["user_id"], "account_id": account["account_id"],
                                                 "status": "Active", "created": ids.now()})
        return account, Credentials(akid, secret, account["account_id"], user["user_id"])

    def admin_credentials(self) -> Credentials | None:
        """An active access key of the cloud admin (account ``eucalyptus``, user ``admin``)."""
        account = self.account(ADMIN_ACCOUNT)
        if not account:
            return None
        return self.account_credentials(account["account_id"])

    def account_credentials(self, account_id: str) -> Credentials | None:
        """An active access key of the account's admin user (the CLC acts for the account with it)."""
        rows = list(self.store.db.query(
            "SELECT k.* FROM access_keys k JOIN users u ON u.user_id = k.user_id "
            "WHERE k.account_id = ? AND k.status = 'Active' ORDER BY u.name = ? DESC, k.created LIMIT 1",
            [account_id, ADMIN_USER]))
        if not rows:
            return None
        r = rows[0]
        return Credentials(r["access_key"], r["secret_key"], r["account_id"], r["user_id"])
