"""Cloud properties: settings the cloud admin changes at run time.

``euca-describe-properties`` / ``euca-modify-property`` read and write them
through the Properties service.  A property is defined here once (type, check,
default, help); its value lives in the ``properties`` table, except the
instance types' sizes, which are the ``instance_types`` rows themselves
(``cloud.vmtypes.m1.small.cpu``...).  Readers ask at the moment of use, so a
change takes effect at once: the cluster poller reads its interval every round.
"""

from collections.abc import Callable
from dataclasses import dataclass

from eucacore import ids, policy
from eucacore.db import Store

VMTYPE_FIELDS = {"cpu": "cores", "memory": "memory", "disk": "disk"}
VMTYPE_PREFIX = "cloud.vmtypes."


class PropertyError(Exception):
    """A bad name or value: one line for the API to answer."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Property:
    name: str
    description: str
    default: Callable[[object], int]  # config -> default value
    minimum: int = 0


def _const(value: int) -> Callable[[object], int]:
    return lambda config: value


def _definitions() -> dict[str, Property]:
    props = [
        Property("cloud.cluster.polling_frequency", "Seconds between the cloud controller's polls of each "
                 "cluster", lambda config: config["CLC_POLLING_FREQUENCY"], minimum=1),
        Property("cloud.vmstate.instance_timeout", "Seconds an instance may go unreported by its cluster "
                 "before it is terminated", lambda config: config["INSTANCE_TIMEOUT"], minimum=1),
        Property("cloud.vmstate.terminated_time", "Minutes a terminated instance stays visible",
                 _const(60), minimum=0),
        Property("cloud.network.resync_interval", "Seconds between pushes of every security group's rules "
                 "to each cluster (0: at every poll); changes are pushed at once besides", _const(60), minimum=0),
        Property("walrus.storagemaxbucketsperaccount", "Default maximum number of buckets per account "
                 "(the buckets quota of accounts that have none)", _const(100), minimum=0),
        Property("walrus.storagemaxbucketsizeinmb", "Maximum size of one bucket in MiB (-1: unlimited; "
                 "the original's default was 5120)", _const(-1), minimum=-1),
        Property("walrus.storagemaxobjectsizeinmb", "Maximum size of one object in MiB (S3's 5 TiB by "
                 "default)", _const(5 * 2**20), minimum=0),
    ]
    for quota in policy.QUOTAS.values():
        if quota.name != "buckets":
            props.append(Property(f"cloud.quota.default.{quota.name}",
                                  f"Default quota: {quota.description} (-1: unlimited)", _const(-1), minimum=-1))
    return {p.name: p for p in props}


DEFINITIONS = _definitions()


def default_quota_property(quota_name: str) -> str:
    return "walrus.storagemaxbucketsperaccount" if quota_name == "buckets" else f"cloud.quota.default.{quota_name}"


class Properties:
    """The cloud's properties over the CLC's store and configuration."""

    def __init__(self, store: Store, config):
        self.store, self.config = store, config

    def get(self, name: str) -> int:
        """The current value of a property (an instance type's size, or a defined property)."""
        if name.startswith(VMTYPE_PREFIX):
            vmtype, column = self._vmtype(name)
            return vmtype[column]
        prop = self._definition(name)
        rows = list(self.store.db["properties"].rows_where("name = ?", [name]))
        return int(rows[0]["value"]) if rows else prop.default(self.config)

    def describe(self, names: list[str] | None = None) -> list[dict]:
        everything = self._all()
        if not names:
            return everything
        wanted = []
        for name in names:
            matches = [p for p in everything if p["Name"] == name or p["Name"].startswith(name.rstrip(".") + ".")]
            if not matches:
                raise PropertyError("InvalidParameterValue", f"No such property: {name}")
            wanted.extend(m for m in matches if m not in wanted)
        return wanted

    def modify(self, name: str, value: str | None, reset: bool = False) -> dict:
        """Set (or reset to its default) a property; returns Name, Value and OldValue."""
        old = self.get(name)
        if name.startswith(VMTYPE_PREFIX):
            vmtype, column = self._vmtype(name)
            if reset:
                raise PropertyError("InvalidParameterValue", "Instance type sizes have no default to reset to")
            new = _integer(name, value, 1)
            with self.store.atomic():
                self.store.db["instance_types"].update(vmtype["name"], {column: new})
            return {"Name": name, "Value": str(new), "OldValue": str(old)}
        prop = self._definition(name)
        with self.store.atomic():
            if reset:
                self.store.db.execute("DELETE FROM properties WHERE name = ?", [name])
                new = prop.default(self.config)
            else:
                new = _integer(name, value, prop.minimum)
                self.store.db["properties"].upsert({"name": name, "value": str(new), "modified": ids.now()},
                                                   pk="name")
        return {"Name": name, "Value": str(new), "OldValue": str(old)}

    def _definition(self, name: str) -> Property:
        prop = DEFINITIONS.get(name)
        if prop is None:
            raise PropertyError("InvalidParameterValue", f"No such property: {name}")
        return prop

    def _vmtype(self, name: str) -> tuple[dict, str]:
        type_name, _, field = name[len(VMTYPE_PREFIX):].rpartition(".")
        rows = list(self.store.db["instance_types"].rows_where("name = ?", [type_name]))
        if not rows or field not in VMTYPE_FIELDS:
            raise PropertyError("InvalidParameterValue", f"No such property: {name}")
        return rows[0], VMTYPE_FIELDS[field]

    def _all(self) -> list[dict]:
        out = []
        for name, prop in sorted(DEFINITIONS.items()):
            out.append({"Name": name, "Value": str(self.get(name)),
                        "DefaultValue": str(prop.default(self.config)), "Description": prop.description})
        for vmtype in self.store.db["instance_types"].rows_where(order_by="name"):
            for field, column in VMTYPE_FIELDS.items():
                unit = {"cpu": "cores", "memory": "MiB", "disk": "GiB"}[field]
                out.append({"Name": f"{VMTYPE_PREFIX}{vmtype['name']}.{field}", "Value": str(vmtype[column]),
                            "Description": f"{vmtype['name']}: {field} ({unit})"})
        return out


def _integer(name: str, value: str | None, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise PropertyError("InvalidParameterValue", f"{name} must be an integer, not {value!r}") from None
    if number < minimum:
        raise PropertyError("InvalidParameterValue", f"{name} must be at least {minimum}")
    return number
