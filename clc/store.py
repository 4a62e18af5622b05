"""The CLC's database: schema and its migrations, and the instance types' defaults."""

from eucacore.db import Store

#: The original's default instance types: name -> (cores, memory MB, disk GB).
DEFAULT_INSTANCE_TYPES = {
    "m1.small": (1, 256, 5),
    "c1.medium": (1, 256, 5),
    "m1.large": (2, 512, 10),
    "m1.xlarge": (2, 1024, 10),
    "c1.xlarge": (2, 2048, 10),
}


def _schema_v1(db):
    db["accounts"].create({"account_id": str, "name": str, "created": float}, pk="account_id")
    db["accounts"].create_index(["name"], unique=True)
    db["users"].create({"user_id": str, "account_id": str, "name": str, "created": float}, pk="user_id")
    db["users"].create_index(["account_id", "name"], unique=True)
    db["access_keys"].create({"access_key": str, "secret_key": str, "user_id": str, "account_id": str,
                              "status": str, "created": float}, pk="access_key")
    db["components"].create({"kind": str, "name": str, "partition": str, "host": str, "port": int,
                             "state": str, "last_seen": float, "registered": float}, pk=("kind", "name"))
    db["instance_types"].create({"name": str, "cores": int, "memory": int, "disk": int}, pk="name")
    for name, (cores, memory, disk) in DEFAULT_INSTANCE_TYPES.items():
        db["instance_types"].insert({"name": name, "cores": cores, "memory": memory, "disk": disk})
    db["keypairs"].create({"account_id": str, "name": str, "fingerprint": str, "public_key": str,
                           "key_pair_id": str, "created": float}, pk=("account_id", "name"))
    db["images"].create({"image_id": str, "account_id": str, "location": str, "name": str,
                         "description": str, "architecture": str, "image_type": str, "state": str,
                         "kernel_id": str, "ramdisk_id": str, "is_public": int, "size": int,
                         "created": float}, pk="image_id")
    db["instances"].create({"instance_id": str, "reservation_id": str, "account_id": str, "user_id": str,
                            "image_id": str, "kernel_id": str, "ramdisk_id": str, "instance_type": str,
                            "key_name": str, "zone": str, "state": str, "reason": str,
                            "launch_time": float, "launch_index": int, "user_data": str, "mac": str,
                            "private_ip": str, "public_ip": str, "node": str, "groups": str,
                            "updated": float}, pk="instance_id")
    db["instances"].create_index(["account_id"])
    db["instances"].create_index(["reservation_id"])


def _schema_v2(db):
    """Accounts issue: users in groups, policies, passwords, properties, usage, sealed secrets."""
    db["access_keys"].transform(rename={"secret_key": "sealed_secret"})
    db["users"].add_column("path", str, not_null_default="/")
    db["groups"].create({"group_id": str, "account_id": str, "name": str, "path": str,
                         "created": float}, pk="group_id")
    db["groups"].create_index(["account_id", "name"], unique=True)
    db["group_members"].create({"group_id": str, "user_id": str}, pk=("group_id", "user_id"),
                               foreign_keys=[("group_id", "groups", "group_id"),
                                             ("user_id", "users", "user_id")])
    db["group_members"].create_index(["user_id"])
    # owner_type: 'user' | 'group' | 'account' (account policies carry the quotas: Effect Limit)
    db["policies"].create({"owner_type": str, "owner_id": str, "name": str, "document": str,
                           "created": float}, pk=("owner_type", "owner_id", "name"))
    db["login_profiles"].create({"user_id": str, "password_hash": str, "created": float}, pk="user_id")
    db["properties"].create({"name": str, "value": str, "modified": float}, pk="name")
    # Usage, recorded as it happens.  An interval is one resource's life: an
    # instance (quantity 1, subtype = instance type), a volume or a snapshot
    # (quantity = GiB); ``end`` is NULL while it lives.
    db["usage_intervals"].create({"id": int, "account_id": str, "kind": str, "resource_id": str,
                                  "subtype": str, "quantity": float, "start": float, "end": float},
                                 pk="id", not_null={"account_id", "kind", "resource_id", "start"})
    db["usage_intervals"].create_index(["kind", "resource_id"])
    db["usage_intervals"].create_index(["account_id", "start"])
    # S3 usage reported by Walrus: one row per (source, seq), so a batch sent twice counts once.
    # stored_delta / buckets_delta: change of the account's stored bytes / bucket count at
    # ``time``; bytes_in/out: transfer.
    db["usage_s3"].create({"source": str, "seq": int, "account_id": str, "time": float,
                           "stored_delta": int, "buckets_delta": int, "bytes_in": int, "bytes_out": int},
                          pk=("source", "seq"))
    db["usage_s3"].create_index(["account_id", "time"])


def _schema_v3(db):
    """The rest of the EC2 API: security groups, tags, volumes, snapshots, addresses, and the
    instance fields of Run/Stop/Start/attributes."""
    db["security_groups"].create({"group_id": str, "account_id": str, "name": str, "description": str,
                                  "created": float}, pk="group_id")
    db["security_groups"].create_index(["account_id", "name"], unique=True)
    # One row per permission: protocol 'tcp'|'udp'|'icmp'|'-1' (all); exactly one of cidr and
    # source_group_id is set; ports are -1 where the protocol has none.
    db["security_group_rules"].create({"id": int, "group_id": str, "direction": str, "protocol": str,
                                       "from_port": int, "to_port": int, "cidr": str, "source_group_id": str,
                                       "source_account_id": str, "description": str},
                                      pk="id", not_null={"group_id", "direction", "protocol"})
    db["security_group_rules"].create_index(["group_id"])
    # Tags of every resource kind; resource_type as DescribeTags reports it ('instance', 'image'...).
    db["tags"].create({"resource_id": str, "account_id": str, "resource_type": str, "key": str, "value": str},
                      pk=("resource_id", "key"))
    db["tags"].create_index(["account_id", "key"])
    db["volumes"].create({"volume_id": str, "account_id": str, "size": int, "snapshot_id": str, "zone": str,
                          "state": str, "created": float, "instance_id": str, "device": str,
                          "attach_state": str, "attach_time": float, "delete_on_termination": int},
                         pk="volume_id")
    db["volumes"].create_index(["account_id"])
    db["snapshots"].create({"snapshot_id": str, "account_id": str, "volume_id": str, "volume_size": int,
                            "state": str, "progress": str, "description": str, "created": float},
                           pk="snapshot_id")
    db["snapshots"].create_index(["account_id"])
    # createVolumePermission of a snapshot: an account id, or 'all' for public.
    db["snapshot_permissions"].create({"snapshot_id": str, "grantee": str}, pk=("snapshot_id", "grantee"))
    # launchPermission of an image: an account id, or 'all' (images.is_public stays the fast path).
    db["image_permissions"].create({"image_id": str, "grantee": str}, pk=("image_id", "grantee"))
    db["addresses"].create({"public_ip": str, "allocation_id": str, "account_id": str, "zone": str,
                            "instance_id": str, "association_id": str, "allocated": float}, pk="public_ip")
    db["addresses"].create_index(["account_id"])
    for column, kind, default in (("client_token", str, ""), ("disable_api_termination", int, 0),
                                  ("kernel_url", str, ""), ("ramdisk_url", str, "")):
        db["instances"].add_column(column, kind, not_null_default=default)
    db["instances"].create_index(["account_id", "client_token"])


def _schema_v4(db):
    """What an instance does when its guest shuts itself down: 'stop' (EC2's default) or 'terminate'."""
    db["instances"].add_column("shutdown_behavior", str, not_null_default="stop")


def _schema_v5(db):
    """CreateImage: why an image failed (its StateReason, 'Code: message') and the instance it
    was made of; security-group rules in the clusters: a cluster that missed a push of them
    (network_resync 1) and when it last got all of them (network_synced)."""
    db["images"].add_column("state_reason", str, not_null_default="")
    db["images"].add_column("source_instance_id", str, not_null_default="")
    db["images"].create_index(["state"])
    db["components"].add_column("network_resync", int, not_null_default=0)
    db["components"].add_column("network_synced", float, not_null_default=0)


def _schema_v6(db):
    """DescribeInstances reads an account's instances in page order from an index, not a sort
    (the expression must stay the same as clc.ec2.instances._PAGE_ORDER, or SQLite sorts again)."""
    db.execute("CREATE INDEX idx_instances_page ON instances "
               "(account_id, printf('%020.6f', launch_time), launch_index, instance_id)")


MIGRATIONS = [_schema_v1, _schema_v2, _schema_v3, _schema_v4, _schema_v5, _schema_v6]


def open_store(config) -> Store:
    """The CLC's store at ``$EUCALYPTUS/var/lib/eucalyptus/clc.db``, migrated."""
    return Store(config.state_dir() / "clc.db", MIGRATIONS)
