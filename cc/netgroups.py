"""The security groups' rules the CLC pushes to the CC (ConfigureNetwork): the whole current
rule set of each (account, group), in ``network_groups``, durable like everything else in the
CC's database, for the networking layer to enforce."""

import json
import logging

from eucacore import ids
from eucacore.db import Store

log = logging.getLogger("eucalyptus.cc")

#: ConfigureNetwork's rule types and protocols (the original's, "all" for every protocol).
RULE_TYPES = ("firewall-open",)
RULE_PROTOCOLS = ("tcp", "udp", "icmp", "all")


class InvalidRules(Exception):
    """A ConfigureNetwork that cannot be stored as it is: nothing of it was stored."""


class NetworkGroups:
    """The stored rule sets of the cluster's security groups."""

    def __init__(self, store: Store):
        self.store = store

    def configure(self, account_id: str, rules: list[dict], group_names: list[str] | None = None,
                  deleted: list[str] = (), complete: bool = False) -> None:
        """Store the whole current rule set of the account's groups ``group_names`` (each
        group's rules are those of ``rules`` that name it as their destination; without
        ``group_names``, the groups the rules name), forget the groups ``deleted``, and with
        ``complete`` every other group of the account too. All of it, or InvalidRules and
        none of it."""
        if not account_id:
            raise InvalidRules("accountId is required")
        by_group: dict[str, list[dict]] = {name: [] for name in group_names or []}
        for rule in rules:
            rule = _checked_rule(rule, account_id)
            if group_names and rule["destName"] not in by_group:
                raise InvalidRules(f"rule for group {rule['destName']} which the message does not carry")
            by_group.setdefault(rule["destName"], []).append(rule)
        if set(by_group) & set(deleted):
            both = ", ".join(sorted(set(by_group) & set(deleted)))
            raise InvalidRules(f"a group is both carried and deleted: {both}")
        now = ids.now()
        with self.store.atomic() as db:
            if complete:
                db.execute("DELETE FROM network_groups WHERE account_id = ? AND name NOT IN "
                           "(SELECT value FROM json_each(?))", [account_id, json.dumps(list(by_group))])
            for name in deleted:
                db.execute("DELETE FROM network_groups WHERE account_id = ? AND name = ?", [account_id, name])
            for name, group_rules in by_group.items():
                db["network_groups"].upsert({"account_id": account_id, "name": name,
                                             "rules": json.dumps(group_rules), "updated": now},
                                            pk=("account_id", "name"))
        log.info("network rules of account %s: %d group(s) set, %d deleted%s", account_id, len(by_group),
                 len(deleted), " (complete)" if complete else "")

    def groups(self, account_ids: list[str] | None = None) -> list[dict]:
        """The stored groups: {"userName" (account id), "netName" (group name), "rules"}, by
        account and name."""
        rows = self.store.db["network_groups"].rows_where(order_by="account_id, name")
        return [{"userName": r["account_id"], "netName": r["name"], "rules": json.loads(r["rules"])}
                for r in rows if not account_ids or r["account_id"] in account_ids]


def _checked_rule(rule: dict, account_id: str) -> dict:
    """A ConfigureNetwork rule in its stored form (lists present, ports integers), or InvalidRules."""
    rule = dict(rule)
    rule.setdefault("destUserName", account_id)
    if rule["destUserName"] != account_id:
        raise InvalidRules(f"rule for account {rule['destUserName']} in a message of account {account_id}")
    if not rule.get("destName"):
        raise InvalidRules("a rule without destName")
    if rule.get("type") not in RULE_TYPES:
        raise InvalidRules(f"rule type {rule.get('type')!r} is not one of {', '.join(RULE_TYPES)}")
    if rule.get("protocol") not in RULE_PROTOCOLS:
        raise InvalidRules(f"protocol {rule.get('protocol')!r} is not one of {', '.join(RULE_PROTOCOLS)}")
    for key in ("sourceNames", "userNames", "sourceNets"):
        rule[key] = list(rule.get(key) or [])
    if len(rule["sourceNames"]) != len(rule["userNames"]):
        raise InvalidRules("sourceNames and userNames must pair up")
    if not rule["sourceNames"] and not rule["sourceNets"]:
        raise InvalidRules(f"a rule of {rule['destName']} opens to no source")
    for key in ("portRangeMin", "portRangeMax"):
        rule[key] = int(rule[key]) if rule.get(key) is not None else -1
    return {key: rule[key] for key in ("type", "destUserName", "destName", "protocol", "portRangeMin",
                                       "portRangeMax", "sourceNets", "sourceNames", "userNames")}
