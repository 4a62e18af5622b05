"""clc.ec2.volumes in-process: volumes and snapshots over a real store, through the EC2 wire
layer both ways, with the zone's SC a real sc.volumes.StorageController behind the real SC
SOAP service, reached by zeep over an in-process transport."""

import io

import botocore.parsers
import botocore.serialize
import pytest
import requests
import zeep
import zeep.transports
from requests.structures import CaseInsensitiveDict

from clc.cloud import Cloud
from clc.ec2 import volumes
from eucacore import ids, soap
from eucacore.awsapi.ec2 import Ec2Protocol
from eucacore.awsapi.errors import AWSError
from eucacore.config import default_config
from sc.service import application as sc_application
from sc.volumes import StorageController
from tests.unit.ec2wire import Ec2  # noqa: F401 (test_ec2_addresses imports it from here)

ALICE, BOB, ADMIN = "111111111111", "222222222222", "999999999999"
ZONE, OTHER_ZONE, NO_SC_ZONE = "zone-a", "zone-b", "zone-c"
PROTOCOL = Ec2Protocol()
SERIALIZER = botocore.serialize.create_serializer("ec2", include_validation=True)
PARSER = botocore.parsers.create_parser("ec2")


class InProcessTransport(zeep.transports.Transport):
    """zeep's transport posting to a WSGI app in-process; ``down`` makes it unreachable."""

    def __init__(self, app):
        super().__init__()
        self.app, self.down = app, False

    def post(self, address, message, headers):
        if self.down:
            raise requests.exceptions.ConnectionError(f"{address} is down")
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/services/Storage", "QUERY_STRING": "",
                   "SERVER_NAME": "localhost", "SERVER_PORT": "8773", "SERVER_PROTOCOL": "HTTP/1.1",
                   "CONTENT_TYPE": headers.get("Content-Type", "text/xml; charset=utf-8"),
                   "CONTENT_LENGTH": str(len(message)), "HTTP_SOAPACTION": headers.get("SOAPAction", ""),
                   "wsgi.input": io.BytesIO(message), "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "https",
                   "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
                   "wsgi.run_once": False}
        started = []
        chunks = self.app(environ, lambda status, head, exc=None: started.append((status, head)))
        response = requests.Response()
        response.status_code = int(started[0][0].split()[0])
        response.headers = CaseInsensitiveDict(started[0][1])
        response._content = b"".join(chunks)
        response.encoding = "utf-8"
        return response


def register(cloud, kind, name, zone, port=1):
    with cloud.store.atomic() as db:
        db["components"].insert({"kind": kind, "name": name, "partition": zone, "host": "127.0.0.1", "port": port,
                                 "state": "ENABLED", "last_seen": ids.now(), "registered": ids.now()})


def add_instance(cloud, account_id, state="running", zone=ZONE, private_ip="172.16.0.5"):
    instance_id, now = ids.new_id("i"), ids.now()
    with cloud.store.atomic() as db:
        db["instances"].insert({"instance_id": instance_id, "reservation_id": ids.new_id("r"),
                                "account_id": account_id, "user_id": "", "image_id": "emi-1", "kernel_id": "",
                                "ramdisk_id": "", "instance_type": "m1.small", "key_name": "", "zone": zone,
                                "state": state, "reason": "", "launch_time": now, "launch_index": 0,
                                "user_data": "", "mac": "", "private_ip": private_ip, "public_ip": "", "node": "",
                                "groups": "default", "updated": now})
    return instance_id


@pytest.fixture
def cloud(tmp_path):
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path)))
    with cloud.store.atomic() as db:
        db["accounts"].insert_all([{"account_id": a, "name": n, "created": ids.now()}
                                   for a, n in ((ALICE, "alice"), (BOB, "bob"), (ADMIN, "eucalyptus"))])
    for zone in (ZONE, OTHER_ZONE, NO_SC_ZONE):
        register(cloud, "cluster", zone, zone)
    register(cloud, "sc", f"sc-{ZONE}", ZONE, port=8773)
    register(cloud, "sc", f"sc-{OTHER_ZONE}", OTHER_ZONE, port=8774)
    yield cloud
    cloud.store.close()


@pytest.fixture
def sc(tmp_path, monkeypatch):
    """The SCs of zone-a and zone-b (one StorageController), reached as soap.client would reach them."""
    controller = StorageController(default_config(EUCALYPTUS=str(tmp_path / "sc")))
    transport = InProcessTransport(soap.wsgi_app(sc_application(controller)))
    reached = []

    def client(service, host, port, keys, timeout=30):
        assert service == "EucalyptusSC"
        reached.append(port)
        proxy = zeep.Client(str(soap.WSDL_DIR / "EucalyptusSC.wsdl"), transport=transport)
        return proxy.create_service(f"{{{soap.TNS}}}EucalyptusSC", f"https://{host}:{port}/services/Storage")

    monkeypatch.setattr(soap, "client", client)
    controller.transport, controller.reached = transport, reached
    yield controller
    controller.store.close()


@pytest.fixture
def alice(cloud, sc):
    return Ec2(cloud, ALICE)


@pytest.fixture
def bob(cloud, sc):
    return Ec2(cloud, BOB)


def usage_rows(cloud, kind, resource_id):
    return list(cloud.store.db["usage_intervals"].rows_where("kind = ? AND resource_id = ?", [kind, resource_id]))


def set_quota(cloud, account_id, **values):
    from eucacore.policy import quota_policy
    with cloud.store.atomic() as db:
        db["policies"].insert({"owner_type": "account", "owner_id": account_id, "name": "quota",
                               "document": quota_policy({k.replace("_", "-"): v for k, v in values.items()}),
                               "created": ids.now()}, replace=True)


def volume_ids(ec2, **params):
    return [v["VolumeId"] for v in ec2("DescribeVolumes", **params)["Volumes"]]


# -- CreateVolume -----------------------------------------------------------------------------------

def test_create_volume_records_it_and_has_the_zones_sc_create_it(cloud, sc, alice):
    volume = alice("CreateVolume", Size=2, AvailabilityZone=ZONE)
    volume_id = volume["VolumeId"]
    assert volume_id.startswith("vol-") and len(volume_id) == 12
    assert (volume["Size"], volume["AvailabilityZone"], volume["State"]) == (2, ZONE, "available")
    assert (volume["VolumeType"], volume["Encrypted"], volume["Attachments"]) == ("standard", False, [])
    assert sc.volume(volume_id)["size"] == 2 and sc.reached == [8773]
    assert (sc.volumes_dir / volume_id).stat().st_size == 2 * 2**30
    [interval] = usage_rows(cloud, "volume", volume_id)
    assert (interval["account_id"], interval["quantity"], interval["end"]) == (ALICE, 2.0, None)
    [described] = alice("DescribeVolumes", VolumeIds=[volume_id])["Volumes"]
    assert described == volume


def test_create_volume_by_zone_id(alice):
    assert alice("CreateVolume", Size=1, AvailabilityZoneId=f"eucalyptus-{ZONE}")["AvailabilityZone"] == ZONE


@pytest.mark.parametrize("params,code", [
    ({"Size": 0, "AvailabilityZone": ZONE}, "InvalidParameterValue"),
    ({"Size": 1025, "AvailabilityZone": ZONE}, "InvalidParameterValue"),
    ({"AvailabilityZone": ZONE}, "MissingParameter"),
    ({"Size": 1}, "MissingParameter"),
    ({"Size": 1, "AvailabilityZone": "nowhere"}, "InvalidZone.NotFound"),
    ({"Size": 1, "AvailabilityZoneId": "eucalyptus-nowhere"}, "InvalidZone.NotFound"),
    ({"Size": 1, "AvailabilityZone": NO_SC_ZONE}, "InsufficientVolumeCapacity"),
    ({"Size": 1, "AvailabilityZone": ZONE, "VolumeType": "gp3"}, "InvalidParameterValue"),
    ({"Size": 1, "AvailabilityZone": ZONE, "Iops": 3000}, "InvalidParameterValue"),
    ({"Size": 1, "AvailabilityZone": ZONE, "Encrypted": True}, "InvalidParameterValue"),
    ({"Size": 1, "AvailabilityZone": ZONE, "SnapshotId": "snap-00000000"}, "InvalidSnapshot.NotFound"),
    ({"Size": 1, "AvailabilityZone": ZONE,
      "TagSpecifications": [{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}]},
     "InvalidParameterValue"),
    ({"Size": 1, "AvailabilityZone": ZONE, "DryRun": True}, "DryRunOperation"),
])
def test_create_volume_refusals_record_nothing(cloud, sc, alice, params, code):
    assert alice.error("CreateVolume", **params) == code
    assert cloud.store.db["volumes"].count == 0 and sc.volumes() == []
    assert cloud.store.db["usage_intervals"].count == 0


def test_volume_quotas_are_checked_when_recording(cloud, sc, alice):
    set_quota(cloud, ALICE, volumes=2, volume_gib=3)
    alice("CreateVolume", Size=2, AvailabilityZone=ZONE)
    assert alice.error("CreateVolume", Size=2, AvailabilityZone=ZONE) == "VolumeLimitExceeded"  # 4 GiB > 3
    alice("CreateVolume", Size=1, AvailabilityZone=ZONE)
    assert alice.error("CreateVolume", Size=1, AvailabilityZone=ZONE) == "VolumeLimitExceeded"  # 3 volumes > 2
    assert len(sc.volumes()) == 2 == cloud.store.db["volumes"].count


def test_a_volume_the_sc_cannot_create_is_in_error_and_holds_no_storage(cloud, sc, alice):
    sc.transport.down = True
    volume = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)
    assert volume["State"] == "error"
    [interval] = usage_rows(cloud, "volume", volume["VolumeId"])
    assert interval["end"] is not None
    [status] = alice("DescribeVolumeStatus", VolumeIds=[volume["VolumeId"]])["VolumeStatuses"]
    assert status["VolumeStatus"]["Status"] == "impaired"
    # It can be deleted, although the SC (back again) never had it.
    sc.transport.down = False
    alice("DeleteVolume", VolumeId=volume["VolumeId"])
    assert alice("DescribeVolumes")["Volumes"] == []


def test_tag_specifications_tag_the_new_volume(alice):
    tags = [{"Key": "Name", "Value": "data"}]
    volume = alice("CreateVolume", Size=1, AvailabilityZone=ZONE,
                   TagSpecifications=[{"ResourceType": "volume", "Tags": tags}])
    assert volume["Tags"] == tags
    alice("CreateVolume", Size=1, AvailabilityZone=ZONE)
    assert volume_ids(alice, Filters=[{"Name": "tag:Name", "Values": ["da*"]}]) == [volume["VolumeId"]]


# -- DeleteVolume -----------------------------------------------------------------------------------

def test_delete_volume_removes_it_everywhere(cloud, sc, alice):
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE,
                      TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])["VolumeId"]
    assert alice.error("DeleteVolume", VolumeId=volume_id, DryRun=True) == "DryRunOperation"
    alice("DeleteVolume", VolumeId=volume_id)
    assert sc.volume(volume_id) is None and not (sc.volumes_dir / volume_id).exists()
    assert cloud.store.db["volumes"].get(volume_id)["state"] == "deleted"
    assert usage_rows(cloud, "volume", volume_id)[0]["end"] is not None
    assert cloud.store.db["tags"].count == 0
    assert alice("DescribeVolumes")["Volumes"] == []
    assert alice.error("DescribeVolumes", VolumeIds=[volume_id]) == "InvalidVolume.NotFound"
    assert alice.error("DeleteVolume", VolumeId=volume_id) == "InvalidVolume.NotFound"


def test_a_volume_the_sc_cannot_delete_stays(cloud, sc, alice):
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    sc.transport.down = True
    assert alice.error("DeleteVolume", VolumeId=volume_id) == "InternalError"
    assert alice("DescribeVolumes", VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    assert usage_rows(cloud, "volume", volume_id)[0]["end"] is None


def test_a_volume_left_deleting_can_be_deleted_again(cloud, sc, alice):
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    sc.delete_volume(volume_id)  # the SC did it, but the CLC stopped before recording it
    with cloud.store.atomic() as db:
        db["volumes"].update(volume_id, {"state": "deleting"})
    alice("DeleteVolume", VolumeId=volume_id)
    assert cloud.store.db["volumes"].get(volume_id)["state"] == "deleted"


def test_deleted_volumes_give_their_quota_back(cloud, alice):
    set_quota(cloud, ALICE, volumes=1)
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    alice("DeleteVolume", VolumeId=volume_id)
    alice("CreateVolume", Size=1, AvailabilityZone=ZONE)


def test_another_accounts_volume_answers_as_missing(alice, bob):
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    instance_id = add_instance(bob.ctx.cloud, BOB)
    for some_volume in (volume_id, "vol-00000000"):
        for action, params in (("DescribeVolumes", {"VolumeIds": [some_volume]}),
                               ("DescribeVolumeStatus", {"VolumeIds": [some_volume]}),
                               ("DeleteVolume", {"VolumeId": some_volume}),
                               ("AttachVolume", {"VolumeId": some_volume, "InstanceId": instance_id,
                                                 "Device": "/dev/sdf"}),
                               ("DetachVolume", {"VolumeId": some_volume}),
                               ("CreateSnapshot", {"VolumeId": some_volume})):
            with pytest.raises(AWSError) as e:
                bob(action, **params)
            assert (e.value.code, e.value.message) == \
                ("InvalidVolume.NotFound", f"The volume '{some_volume}' does not exist"), action
    assert bob("DescribeVolumes")["Volumes"] == []


# -- DescribeVolumes ----------------------------------------------------------------------------------

def test_describe_volumes_filters(cloud, alice):
    small = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    big = alice("CreateVolume", Size=5, AvailabilityZone=OTHER_ZONE)["VolumeId"]
    instance_id = add_instance(cloud, ALICE, zone=OTHER_ZONE)
    alice("AttachVolume", VolumeId=big, InstanceId=instance_id, Device="/dev/sdf")

    def only(name, *values):
        return sorted(volume_ids(alice, Filters=[{"Name": name, "Values": list(values)}]))

    assert only("size", "5") == [big]
    assert only("availability-zone", ZONE) == [small]
    assert only("status", "available") == [small] and only("status", "in-use") == [big]
    assert only("attachment.instance-id", instance_id) == [big]
    assert only("attachment.device", "/dev/sd?") == [big]
    assert only("attachment.status", "attached") == [big]
    assert only("attachment.delete-on-termination", "false") == [big]
    assert only("volume-id", small, big) == sorted([small, big])
    assert only("volume-type", "standard") == sorted([small, big])
    assert only("encrypted", "true") == []
    assert only("snapshot-id", "") == sorted([small, big])
    assert only("create-time", "20*") == sorted([small, big])
    assert alice.error("DescribeVolumes", Filters=[{"Name": "owner-id", "Values": [ALICE]}]) == \
        "InvalidParameterValue"
    assert alice.error("DescribeVolumes", VolumeIds=[small, "vol-00000000"]) == "InvalidVolume.NotFound"


def test_describe_volumes_pages(alice):
    created = sorted(alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"] for _ in range(7))
    first = alice("DescribeVolumes", MaxResults=5)
    assert [v["VolumeId"] for v in first["Volumes"]] == created[:5]
    second = alice("DescribeVolumes", MaxResults=5, NextToken=first["NextToken"])
    assert [v["VolumeId"] for v in second["Volumes"]] == created[5:] and "NextToken" not in second
    assert alice.error("DescribeVolumes", MaxResults=4) == "InvalidParameterValue"
    assert alice.error("DescribeVolumes", MaxResults=5, VolumeIds=created[:1]) == "InvalidParameterCombination"
    assert alice.error("DescribeVolumes", NextToken="!!not a token") == "InvalidPaginationToken"


def test_the_cloud_admin_sees_every_accounts_volumes_with_verbose(cloud, alice, bob):
    mine = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    theirs = bob("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    admin = Ec2(cloud, ADMIN, cloud_admin=True)
    assert admin("DescribeVolumes")["Volumes"] == []
    assert sorted(volume_ids(admin, VolumeIds=["verbose"])) == sorted([mine, theirs])
    assert volume_ids(alice, VolumeIds=["verbose"]) == [mine]  # not the cloud admin: no such view


def test_describe_volume_status(cloud, alice):
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    [status] = alice("DescribeVolumeStatus")["VolumeStatuses"]
    assert status["VolumeId"] == volume_id and status["AvailabilityZone"] == ZONE
    assert status["VolumeStatus"] == {"Status": "ok", "Details": [{"Name": "io-enabled", "Status": "passed"},
                                                                   {"Name": "io-performance",
                                                                    "Status": "not-applicable"}]}
    assert alice("DescribeVolumeStatus", Filters=[{"Name": "volume-status.status",
                                                   "Values": ["impaired"]}])["VolumeStatuses"] == []
    assert alice.error("DescribeVolumeStatus", VolumeIds=["vol-00000000"]) == "InvalidVolume.NotFound"


# -- AttachVolume / DetachVolume ------------------------------------------------------------------------

def test_attach_and_detach_are_recorded(cloud, alice):
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    instance_id = add_instance(cloud, ALICE)
    assert alice.error("AttachVolume", VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf",
                       DryRun=True) == "DryRunOperation"
    attachment = alice("AttachVolume", VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    assert (attachment["VolumeId"], attachment["InstanceId"], attachment["Device"], attachment["State"]) == \
        (volume_id, instance_id, "/dev/sdf", "attached")
    [volume] = alice("DescribeVolumes", VolumeIds=[volume_id])["Volumes"]
    assert volume["State"] == "in-use" and volume["Attachments"][0]["InstanceId"] == instance_id
    assert alice.error("DeleteVolume", VolumeId=volume_id) == "VolumeInUse"
    assert alice.error("AttachVolume", VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdg") == "VolumeInUse"
    assert alice.error("DetachVolume", VolumeId=volume_id, InstanceId="i-00000000") == "InvalidAttachment.NotFound"
    detached = alice("DetachVolume", VolumeId=volume_id, Force=True)
    assert (detached["State"], detached["InstanceId"]) == ("detached", instance_id)
    [volume] = alice("DescribeVolumes", VolumeIds=[volume_id])["Volumes"]
    assert (volume["State"], volume["Attachments"]) == ("available", [])
    assert alice.error("DetachVolume", VolumeId=volume_id) == "IncorrectState"
    alice("DeleteVolume", VolumeId=volume_id)


def test_attach_refusals(cloud, alice, bob):
    volume_id = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    other = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    running = add_instance(cloud, ALICE)

    def attach(instance_id, device="/dev/sdf", volume=volume_id):
        return alice.error("AttachVolume", VolumeId=volume, InstanceId=instance_id, Device=device)

    assert attach(add_instance(cloud, ALICE, state="pending")) == "IncorrectState"
    assert attach(add_instance(cloud, ALICE, zone=OTHER_ZONE)) == "InvalidVolume.ZoneMismatch"
    assert attach(add_instance(cloud, BOB)) == "InvalidInstanceID.NotFound"
    assert attach("i-00000000") == "InvalidInstanceID.NotFound"
    for device in ("sdf", "/dev/sda", "/dev/sdf/../x", "/dev/nvme0n1"):
        assert attach(running, device) == "InvalidParameterValue", device
    alice("AttachVolume", VolumeId=other, InstanceId=running, Device="/dev/sdf")
    assert attach(running, "/dev/sdf") == "InvalidParameterValue"  # the device is taken
    alice("AttachVolume", VolumeId=volume_id, InstanceId=running, Device="/dev/sdg")


# -- snapshots --------------------------------------------------------------------------------------

@pytest.fixture
def volume(alice):
    return alice("CreateVolume", Size=3, AvailabilityZone=ZONE)["VolumeId"]


def test_create_snapshot_completes_at_once(cloud, alice, volume):
    snapshot = alice("CreateSnapshot", VolumeId=volume, Description="nightly",
                     TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
    snapshot_id = snapshot["SnapshotId"]
    assert snapshot_id.startswith("snap-")
    assert (snapshot["State"], snapshot["Progress"], snapshot["VolumeSize"], snapshot["OwnerId"]) == \
        ("completed", "100%", 3, ALICE)
    assert (snapshot["VolumeId"], snapshot["Description"], snapshot["Tags"]) == \
        (volume, "nightly", [{"Key": "k", "Value": "v"}])
    [interval] = usage_rows(cloud, "snapshot", snapshot_id)
    assert (interval["quantity"], interval["end"]) == (3.0, None)
    assert alice("DescribeSnapshots", SnapshotIds=[snapshot_id])["Snapshots"] == [snapshot]


def test_snapshot_quota(cloud, alice, volume):
    set_quota(cloud, ALICE, snapshots=1)
    alice("CreateSnapshot", VolumeId=volume)
    assert alice.error("CreateSnapshot", VolumeId=volume) == "SnapshotLimitExceeded"
    assert cloud.store.db["snapshots"].count == 1


def test_create_snapshot_refusals(cloud, alice, volume):
    assert alice.error("CreateSnapshot", VolumeId=volume, DryRun=True) == "DryRunOperation"
    assert alice.error("CreateSnapshot", VolumeId="vol-00000000") == "InvalidVolume.NotFound"
    assert alice.error("CreateSnapshot", VolumeId=volume, Description="x" * 256) == "InvalidParameterValue"
    assert cloud.store.db["snapshots"].count == 0


def test_volume_from_snapshot(alice, volume):
    snapshot_id = alice("CreateSnapshot", VolumeId=volume)["SnapshotId"]
    restored = alice("CreateVolume", SnapshotId=snapshot_id, AvailabilityZone=ZONE)
    assert (restored["Size"], restored["SnapshotId"], restored["State"]) == (3, snapshot_id, "available")
    assert alice("CreateVolume", SnapshotId=snapshot_id, Size=4, AvailabilityZone=ZONE)["Size"] == 4
    assert alice.error("CreateVolume", SnapshotId=snapshot_id, Size=2, AvailabilityZone=ZONE) == \
        "InvalidParameterValue"
    assert volume_ids(alice, Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}]) == \
        sorted(volume_ids(alice, Filters=[{"Name": "snapshot-id", "Values": ["snap-*"]}]))


def test_delete_snapshot(cloud, alice, bob, volume):
    snapshot_id = alice("CreateSnapshot", VolumeId=volume)["SnapshotId"]
    alice("ModifySnapshotAttribute", SnapshotId=snapshot_id, CreateVolumePermission={"Add": [{"Group": "all"}]})
    assert bob.error("DeleteSnapshot", SnapshotId=snapshot_id) == "InvalidSnapshot.NotFound"  # shared, not bob's
    assert alice.error("DeleteSnapshot", SnapshotId=snapshot_id, DryRun=True) == "DryRunOperation"
    alice("DeleteSnapshot", SnapshotId=snapshot_id)
    assert alice("DescribeSnapshots")["Snapshots"] == [] == bob("DescribeSnapshots")["Snapshots"]
    assert cloud.store.db["snapshot_permissions"].count == 0
    assert usage_rows(cloud, "snapshot", snapshot_id)[0]["end"] is not None
    assert alice.error("DeleteSnapshot", SnapshotId=snapshot_id) == "InvalidSnapshot.NotFound"
    # Deleting the source volume leaves its other snapshots alone.
    kept = alice("CreateSnapshot", VolumeId=volume)["SnapshotId"]
    alice("DeleteVolume", VolumeId=volume)
    assert [s["SnapshotId"] for s in alice("DescribeSnapshots")["Snapshots"]] == [kept]


def test_a_snapshot_restoring_into_a_volume_cannot_be_deleted(cloud, alice, volume):
    snapshot_id = alice("CreateSnapshot", VolumeId=volume)["SnapshotId"]
    with cloud.store.atomic() as db:
        db["volumes"].insert({"volume_id": "vol-0000cafe", "account_id": ALICE, "size": 3, "zone": ZONE,
                              "snapshot_id": snapshot_id, "state": "creating", "created": ids.now()})
    assert alice.error("DeleteSnapshot", SnapshotId=snapshot_id) == "InvalidSnapshot.InUse"


def snapshot_ids(ec2, **params):
    return sorted(s["SnapshotId"] for s in ec2("DescribeSnapshots", **params)["Snapshots"])


def test_sharing_a_snapshot(cloud, alice, bob, volume):
    snapshot_id = alice("CreateSnapshot", VolumeId=volume)["SnapshotId"]
    assert bob.error("DescribeSnapshots", SnapshotIds=[snapshot_id]) == "InvalidSnapshot.NotFound"
    assert bob.error("CreateVolume", SnapshotId=snapshot_id, AvailabilityZone=ZONE) == "InvalidSnapshot.NotFound"
    alice("ModifySnapshotAttribute", SnapshotId=snapshot_id, CreateVolumePermission={"Add": [{"UserId": BOB}]})
    assert snapshot_ids(bob) == [snapshot_id] == snapshot_ids(bob, RestorableByUserIds=["self"])
    assert snapshot_ids(bob, OwnerIds=["self"]) == [] and snapshot_ids(bob, OwnerIds=[ALICE]) == [snapshot_id]
    assert snapshot_ids(bob, RestorableByUserIds=["all"]) == []
    assert snapshot_ids(alice, RestorableByUserIds=[BOB]) == [snapshot_id]
    restored = bob("CreateVolume", SnapshotId=snapshot_id, AvailabilityZone=ZONE)
    assert (restored["Size"], restored["State"]) == (3, "available")
    assert alice("DescribeSnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission") == \
        {"SnapshotId": snapshot_id, "CreateVolumePermissions": [{"UserId": BOB}]}
    assert bob.error("DescribeSnapshotAttribute", SnapshotId=snapshot_id,
                     Attribute="createVolumePermission") == "InvalidSnapshot.NotFound"
    assert bob.error("ModifySnapshotAttribute", SnapshotId=snapshot_id,
                     CreateVolumePermission={"Add": [{"Group": "all"}]}) == "InvalidSnapshot.NotFound"
    # The older form: OperationType with UserIds / GroupNames.
    alice("ModifySnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission",
          OperationType="remove", UserIds=[BOB])
    assert snapshot_ids(bob) == []
    alice("ModifySnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission",
          OperationType="add", GroupNames=["all"])
    assert snapshot_ids(bob) == [snapshot_id] == snapshot_ids(bob, RestorableByUserIds=["all"])
    assert snapshot_ids(bob, RestorableByUserIds=["self"]) == []
    alice("ResetSnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert snapshot_ids(bob) == []
    assert alice("DescribeSnapshotAttribute", SnapshotId=snapshot_id,
                 Attribute="createVolumePermission")["CreateVolumePermissions"] == []


@pytest.mark.parametrize("params,code", [
    ({"CreateVolumePermission": {"Add": [{"Group": "everyone"}]}}, "InvalidParameterValue"),
    ({"CreateVolumePermission": {"Add": [{"UserId": "bob"}]}}, "InvalidParameterValue"),
    ({"CreateVolumePermission": {"Add": [{"UserId": BOB, "Group": "all"}]}}, "InvalidParameterValue"),
    ({"CreateVolumePermission": {}}, "MissingParameter"),
    ({"Attribute": "productCodes", "OperationType": "add", "UserIds": [BOB]}, "InvalidParameterValue"),
    ({"UserIds": [BOB]}, "MissingParameter"),
    ({"OperationType": "replace", "UserIds": [BOB]}, "InvalidParameterValue"),
    ({"CreateVolumePermission": {"Add": [{"UserId": BOB}]}, "DryRun": True}, "DryRunOperation"),
])
def test_modify_snapshot_attribute_refusals(cloud, alice, volume, params, code):
    snapshot_id = alice("CreateSnapshot", VolumeId=volume)["SnapshotId"]
    assert alice.error("ModifySnapshotAttribute", SnapshotId=snapshot_id, **params) == code
    assert cloud.store.db["snapshot_permissions"].count == 0


def test_snapshot_attribute_names(alice, volume):
    snapshot_id = alice("CreateSnapshot", VolumeId=volume)["SnapshotId"]
    assert alice("DescribeSnapshotAttribute", SnapshotId=snapshot_id, Attribute="productCodes") == \
        {"SnapshotId": snapshot_id, "ProductCodes": []}
    assert alice.error("DescribeSnapshotAttribute", SnapshotId=snapshot_id, Attribute="bogus") == \
        "InvalidParameterValue"
    assert alice.error("ResetSnapshotAttribute", SnapshotId=snapshot_id, Attribute="productCodes") == \
        "InvalidParameterValue"


def test_describe_snapshots_filters_and_pages(cloud, alice, bob, volume):
    made = sorted(alice("CreateSnapshot", VolumeId=volume, Description=f"d{i}")["SnapshotId"] for i in range(5))
    special = alice("CreateSnapshot", VolumeId=volume, Description="special")["SnapshotId"]
    made = sorted(made + [special])
    bob_volume = bob("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    bobs = bob("CreateSnapshot", VolumeId=bob_volume)["SnapshotId"]

    def only(name, *values):
        return snapshot_ids(alice, Filters=[{"Name": name, "Values": list(values)}])

    assert snapshot_ids(alice) == made
    assert only("description", "spec*") == [special] and len(only("description", "d?")) == 5
    assert only("volume-id", volume) == made and only("volume-size", "3") == made
    assert only("status", "completed") == made and only("progress", "100%") == made
    assert only("owner-id", ALICE) == made and only("owner-id", BOB) == []
    assert only("snapshot-id", made[0]) == made[:1]
    assert only("start-time", "20*") == made
    assert alice.error("DescribeSnapshots", Filters=[{"Name": "size", "Values": ["3"]}]) == "InvalidParameterValue"
    first = alice("DescribeSnapshots", MaxResults=5)
    second = alice("DescribeSnapshots", MaxResults=5, NextToken=first["NextToken"])
    assert [s["SnapshotId"] for s in first["Snapshots"] + second["Snapshots"]] == made
    assert "NextToken" not in second
    admin = Ec2(cloud, ADMIN, cloud_admin=True)
    assert snapshot_ids(admin, SnapshotIds=["verbose"]) == sorted(made + [bobs])
    assert snapshot_ids(admin, OwnerIds=[BOB]) == [bobs]


def test_a_terminated_instances_volumes_become_available(cloud, alice):
    attached = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    other = alice("CreateVolume", Size=1, AvailabilityZone=ZONE)["VolumeId"]
    instance_id, other_instance = add_instance(cloud, ALICE), add_instance(cloud, ALICE)
    alice("AttachVolume", VolumeId=attached, InstanceId=instance_id, Device="/dev/sdf")
    alice("AttachVolume", VolumeId=other, InstanceId=other_instance, Device="/dev/sdf")
    volumes.detach_instance_volumes(cloud, instance_id)
    states = {v["VolumeId"]: (v["State"], v["Attachments"]) for v in alice("DescribeVolumes")["Volumes"]}
    assert states[attached] == ("available", [])
    assert states[other][0] == "in-use"


def test_volumes_a_killed_clc_left_creating_end_in_error_at_start(cloud):
    """A CLC killed between recording a volume and the SC's answer leaves it 'creating'; the
    next start turns it to 'error' (deletable, usage ended) before serving anything."""
    with cloud.store.atomic() as db:
        db["volumes"].insert({"volume_id": "vol-0000dead", "account_id": ALICE, "size": 2, "snapshot_id": "",
                              "zone": "zone-a", "state": "creating", "created": ids.now(), "instance_id": "",
                              "device": "", "attach_state": "", "attach_time": None, "delete_on_termination": 0})
        cloud.usage.started(ALICE, "volume", "vol-0000dead", quantity=2)
    assert volumes.fail_interrupted_creations(cloud) == ["vol-0000dead"]
    assert cloud.store.db["volumes"].get("vol-0000dead")["state"] == "error"
    assert cloud.store.db.execute('SELECT COUNT(*) FROM usage_intervals WHERE resource_id = ? AND "end" IS NULL',
                                  ["vol-0000dead"]).fetchone()[0] == 0
    assert volumes.fail_interrupted_creations(cloud) == []
