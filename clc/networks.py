"""Security groups' rules in the cluster controllers, which the networking layer enforces there.

Every cluster holds the whole current rule set of every group (the CC's ConfigureNetwork, in
the original's rule form: clc.ec2.securitygroups.rules_of). A change of a group (its rules,
its creation, its deletion) is pushed at once to every ENABLED cluster, and the groups of new
instances to the cluster that is to run them, before it runs them. A push never fails the API
call that caused it: a cluster that does not take it (or is not ENABLED) is marked
(``components.network_resync``) and gets no more single pushes until the poller has pushed it
every group, which it does for a marked cluster, for one that is ENABLED again after NOTREADY,
and every ``cloud.network.resync_interval`` seconds (the original re-sent its network state at
every poll).

Pushes are serialized in the CLC (one lock), and each reads the rules after the change it
follows committed, so the last push a cluster takes is never older than the one before it.
"""

import json
import logging
import threading
from collections import defaultdict

from eucacore import ids, soap

log = logging.getLogger("eucalyptus.clc.networks")


class NetworkRules:
    """Pushes security groups' rules to the clusters of ``cloud``."""

    def __init__(self, cloud):
        self.cloud = cloud
        self._lock = threading.Lock()

    def groups_changed(self, account_id: str, names: list[str], also: dict | None = None) -> None:
        """Push the current rules of the account's groups ``names`` (a group that no longer
        exists is pushed as deleted) to every ENABLED cluster that awaits no resync, and to the
        cluster ``also`` whatever its state; a cluster that does not take it is marked."""
        with self._lock:
            message = self._message(account_id, names)
            for cluster in self.cloud.clusters():
                if also is not None and cluster["name"] == also["name"]:
                    self._push(cluster, [message])
                elif cluster["network_resync"]:
                    log.debug("cluster %s awaits a resync: no push of %s", cluster["name"], names)
                elif cluster["state"] != "ENABLED":
                    self._mark(cluster, f"it is {cluster['state']}")
                else:
                    self._push(cluster, [message])

    def resync_if_due(self, cluster: dict, came_back: bool = False) -> bool:
        """Push every group to the polled ``cluster`` if it is marked, ``came_back`` (ENABLED
        again) or its last full push is older than cloud.network.resync_interval; whether it
        was pushed."""
        interval = self.cloud.properties.get("cloud.network.resync_interval")
        if came_back or cluster["network_resync"] or ids.now() - cluster["network_synced"] >= interval:
            return self.resync(cluster)
        return False

    def resync(self, cluster: dict) -> bool:
        """Push every group of every account to ``cluster`` (each account's as complete, so the
        cluster forgets groups deleted while it was away, also of accounts that have none left);
        clears its mark. False, and marked, if it did not take all of it."""
        with self._lock:
            by_account = defaultdict(list)
            for account_id, name in self.cloud.store.db.execute(
                    "SELECT account_id, name FROM security_groups ORDER BY account_id, name"):
                by_account[account_id].append(name)
            try:
                held = self.cloud.cc(cluster).DescribeNetworks(correlationId=ids.current_request_id.get())
            except (soap.Fault, *soap.TransportError) as e:
                self._mark(cluster, f"DescribeNetworks failed: {e}")
                return False
            for group in held.groups or []:
                by_account.setdefault(group.userName, [])
            messages = [{**self._message(account_id, names), "complete": True}
                        for account_id, names in sorted(by_account.items())]
            if not self._push(cluster, messages):
                return False
            with self.cloud.store.atomic() as db:
                db["components"].update((cluster["kind"], cluster["name"]),
                                        {"network_resync": 0, "network_synced": ids.now()})
            log.info("cluster %s: rules of %d account(s) pushed", cluster["name"], len(messages))
            return True

    def _message(self, account_id: str, names: list[str]) -> dict:
        """ConfigureNetwork of the account's groups ``names``: the existing ones with their rules,
        the others as deleted."""
        from clc.ec2.securitygroups import rules_of  # not at the top: clc.ec2 imports clc.cloud, which imports us
        names = list(dict.fromkeys(names))
        rows = {name: group_id for name, group_id in self.cloud.store.db.execute(
            "SELECT name, group_id FROM security_groups WHERE account_id = ? AND name IN "
            "(SELECT value FROM json_each(?))", [account_id, json.dumps(names)])}
        return {"accountId": account_id, "groupNames": [n for n in names if n in rows],
                "deletedGroupNames": [n for n in names if n not in rows],
                "rules": rules_of(self.cloud, list(rows.values()))}

    def _push(self, cluster: dict, messages: list[dict]) -> bool:
        """ConfigureNetwork of each message to the cluster, in order; False (and marked) at the
        first that fails."""
        try:
            cc = self.cloud.cc(cluster)
            for message in messages:
                cc.ConfigureNetwork(correlationId=ids.current_request_id.get(), **message)
            return True
        except (soap.Fault, *soap.TransportError) as e:
            self._mark(cluster, f"ConfigureNetwork failed: {getattr(e, 'message', None) or e}")
        except Exception:  # never the API call's failure; the resync will try again
            log.exception("cluster %s: ConfigureNetwork failed", cluster["name"])
            self._mark(cluster, "ConfigureNetwork failed")
        return False

    def _mark(self, cluster: dict, why: str) -> None:
        log.warning("cluster %s: security group rules to resync (%s)", cluster["name"], why)
        with self.cloud.store.atomic() as db:
            db["components"].update((cluster["kind"], cluster["name"]), {"network_resync": 1})

