"""Per-account quotas: what an account may hold, what it holds, and the refusal when it would exceed.

A quota is set by the cloud admin as an account policy with ``"Effect": "Limit"``
statements (the original's form; ``euare-accountsetquota`` writes one); an
account without one has the defaults of the ``cloud.quota.default.*``
properties.  -1 means unlimited.  The cloud admin's own account has no quotas.

A check runs inside the transaction that creates the resources, so two
concurrent requests cannot both squeeze under a limit.
"""

from eucacore import policy
from eucacore.awsapi.errors import AWSError
from eucacore.principal import parsed_policy
from clc.identity import ADMIN_ACCOUNT
from clc.properties import Properties, default_quota_property

UNLIMITED = -1
MIB = 2**20

#: The AWS error code answered when a quota would be exceeded.
ERROR_CODES = {
    "instances": "InstanceLimitExceeded", "cores": "InstanceLimitExceeded", "memory": "InstanceLimitExceeded",
    "volumes": "VolumeLimitExceeded", "volume-gib": "VolumeLimitExceeded",
    "snapshots": "SnapshotLimitExceeded", "addresses": "AddressLimitExceeded",
    "buckets": "TooManyBuckets", "bucket-storage-mib": "EntityTooLarge",
}

_LIVE = "state NOT IN ('terminated', 'shutting-down')"


class Quotas:
    def __init__(self, store, properties: Properties):
        self.store, self.properties = store, properties

    def limits(self, account_id: str) -> dict[str, int]:
        """Every quota of the account: its Limit policies' values, else the defaults."""
        if self._is_admin_account(account_id):
            return {name: UNLIMITED for name in policy.QUOTAS}
        documents = [r["document"] for r in self.store.db["policies"].rows_where(
            "owner_type = 'account' AND owner_id = ?", [account_id])]
        set_here = policy.limits([parsed_policy(d) for d in documents])
        return {name: set_here.get(name, self.properties.get(default_quota_property(name)))
                for name in policy.QUOTAS}

    def used(self, account_id: str) -> dict[str, int]:
        db = self.store.db
        instances, cores, memory = db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(t.cores), 0), COALESCE(SUM(t.memory), 0) FROM instances i "
            f"LEFT JOIN instance_types t ON t.name = i.instance_type WHERE i.account_id = ? AND {_LIVE}",
            [account_id]).fetchone()
        buckets, stored = db.execute("SELECT COALESCE(SUM(buckets_delta), 0), COALESCE(SUM(stored_delta), 0) "
                                     "FROM usage_s3 WHERE account_id = ?", [account_id]).fetchone()
        used = {"instances": instances, "cores": cores, "memory": memory, "buckets": buckets,
                "bucket-storage-mib": -(-stored // MIB)}
        tables = set(db.table_names())
        for name, sql in _LATER_RESOURCES.items():
            table = sql.split(" FROM ")[1].split()[0]
            used[name] = db.execute(sql, [account_id]).fetchone()[0] if table in tables else 0
        return used

    def check(self, account_id: str, **wanted: int) -> None:
        """AWSError (the quota's AWS code) if adding ``wanted`` (quota name -> amount) would exceed a quota."""
        wanted = {name.replace("_", "-"): amount for name, amount in wanted.items() if amount > 0}
        if not wanted or self._is_admin_account(account_id):
            return
        limits, used = self.limits(account_id), self.used(account_id)
        for name, amount in wanted.items():
            limit = limits[name]
            if limit != UNLIMITED and used[name] + amount > limit:
                quota = policy.QUOTAS[name]
                left = max(limit - used[name], 0)
                unit = "" if quota.unit == "count" else f" {quota.unit}"
                raise AWSError(ERROR_CODES[name],
                               f"Your {name} quota allows {left}{unit} more ({quota.description}: "
                               f"{used[name]}{unit} used of {limit}{unit}); the request needs {amount}{unit}.")

    def room(self, account_id: str, each: dict[str, int], wanted: int) -> int:
        """How many of ``wanted`` resources, each taking ``each`` (quota name -> amount), fit
        the account's quotas."""
        if self._is_admin_account(account_id):
            return wanted
        limits, used = self.limits(account_id), self.used(account_id)
        fits = wanted
        for name, amount in each.items():
            if limits[name] != UNLIMITED and amount > 0:
                fits = min(fits, max(limits[name] - used[name], 0) // amount)
        return fits

    def _is_admin_account(self, account_id: str) -> bool:
        rows = list(self.store.db["accounts"].rows_where("account_id = ?", [account_id]))
        return bool(rows) and rows[0]["name"] == ADMIN_ACCOUNT


#: Resources whose tables arrive with the EC2 volumes/snapshots/addresses API.
_LATER_RESOURCES = {
    "volumes": "SELECT COUNT(*) FROM volumes WHERE account_id = ? AND state NOT IN ('deleted', 'deleting')",
    "volume-gib": "SELECT COALESCE(SUM(size), 0) FROM volumes WHERE account_id = ? "
                  "AND state NOT IN ('deleted', 'deleting')",
    "snapshots": "SELECT COUNT(*) FROM snapshots WHERE account_id = ? AND state NOT IN ('deleted')",
    "addresses": "SELECT COUNT(*) FROM addresses WHERE account_id = ?",
}
