"""clc.ec2.images in-process: registration of image objects and bundle manifests, launch
permissions and visibility across accounts, DescribeImages' filters and pages, through the EC2
wire layer both ways.  Walrus is a small fake that answers as botocore's S3 client does and
lets each account read only its own buckets."""

import io
from types import SimpleNamespace

import botocore.exceptions
import pytest
import requests
import zeep.exceptions

from clc.ec2 import images, manifests
from clc.poller import ClusterPoller
from eucacore import ids
from eucacore.awsapi.errors import AWSError
from tests.unit.ec2wire import ALICE, BOB, Ec2

CAROL, ADMIN = "333333333333", "999999999999"


class FakeWalrus:
    """Objects by (bucket, key); a bucket belongs to the account that first wrote to it."""

    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}
        self.owners: dict[str, str] = {}
        self.max_buckets = 100  # per account

    def owned(self, account_id: str) -> list[str]:
        return [b for b, owner in self.owners.items() if owner == account_id]

    def put(self, account_id: str, bucket: str, key: str, data: bytes) -> None:
        self.owners.setdefault(bucket, account_id)
        self.objects[(bucket, key)] = data

    def client(self, creds):
        return _FakeS3(self, creds.account_id)


class _FakeS3:
    def __init__(self, walrus: FakeWalrus, account_id: str):
        self.walrus, self.account_id = walrus, account_id

    def _object(self, operation: str, bucket: str, key: str) -> bytes:
        if bucket in self.walrus.owners and self.walrus.owners[bucket] != self.account_id:
            status = 403
        elif (bucket, key) not in self.walrus.objects:
            status = 404
        else:
            return self.walrus.objects[(bucket, key)]
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": str(status), "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)

    def head_object(self, Bucket, Key):
        return {"ContentLength": len(self._object("HeadObject", Bucket, Key))}

    def get_object(self, Bucket, Key):
        data = self._object("GetObject", Bucket, Key)
        return {"ContentLength": len(data), "Body": io.BytesIO(data)}

    def head_bucket(self, Bucket):
        owner = self.walrus.owners.get(Bucket)
        if owner != self.account_id:
            status = 404 if owner is None else 403
            raise botocore.exceptions.ClientError({"Error": {"Code": str(status), "Message": ""},
                                                   "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadBucket")
        return {}

    def create_bucket(self, Bucket):
        if Bucket not in self.walrus.owners and len(self.walrus.owned(self.account_id)) >= self.walrus.max_buckets:
            code, status = "TooManyBuckets", 400
        elif Bucket in self.walrus.owners:
            code, status = "BucketAlreadyExists", 409
        else:
            self.walrus.owners[Bucket] = self.account_id
            return {}
        raise botocore.exceptions.ClientError({"Error": {"Code": code, "Message": ""},
                                               "ResponseMetadata": {"HTTPStatusCode": status}}, "CreateBucket")

    def generate_presigned_url(self, operation, Params, ExpiresIn):
        assert operation == "put_object"
        return f"http://walrus/{Params['Bucket']}/{Params['Key']}?put-by={self.account_id}&expires={ExpiresIn}"


@pytest.fixture
def walrus(cloud):
    w = FakeWalrus()
    cloud.s3 = w.client
    return w


@pytest.fixture
def ec2s(cloud, walrus):
    return Ec2(cloud, ALICE), Ec2(cloud, BOB), Ec2(cloud, CAROL)


def manifest(image_type="machine", parts=("img.part.0", "img.part.1"), architecture="x86_64", kernel="",
             ramdisk="", bundled_size=None, size=4096, prolog="", extra_image="", key="0a1b2c", iv="3d4e5f") -> bytes:
    config = f"<architecture>{architecture}</architecture>" if architecture else ""
    config += f"<kernel_id>{kernel}</kernel_id>" if kernel else ""
    config += f"<ramdisk_id>{ramdisk}</ramdisk_id>" if ramdisk else ""
    listed = "".join(f'<part index="{i}"><filename>{p}</filename><digest algorithm="SHA1">00</digest></part>'
                     for i, p in enumerate(parts))
    type_element = f"<type>{image_type}</type>" if image_type else ""
    bundled = f"<bundled_size>{bundled_size}</bundled_size>" if bundled_size is not None else ""
    return (f'<?xml version="1.0"?>{prolog}<manifest><version>2007-10-10</version>'
            f"<bundler><name>test</name><version>1</version><release>1</release></bundler>"
            f"<machine_configuration>{config}</machine_configuration>"
            f"<image><name>img</name><user>{ALICE}</user>{type_element}<digest algorithm=\"SHA1\">00</digest>"
            f"<size>{size}</size>{bundled}<ec2_encrypted_key algorithm=\"AES-128-CBC\">{key}</ec2_encrypted_key>"
            f"<user_encrypted_key>ab</user_encrypted_key><ec2_encrypted_iv>{iv}</ec2_encrypted_iv>"
            f"<user_encrypted_iv>cd</user_encrypted_iv>{extra_image}"
            f'<parts count="{len(parts)}">{listed}</parts></image><signature>00</signature></manifest>').encode()


def upload_bundle(walrus, account_id, bucket, name, data=None, parts=("p.0", "p.1"), **kwargs) -> str:
    """A manifest and its parts in ``bucket``; the manifest's location."""
    folder = "bundles/"
    for part in parts:
        walrus.put(account_id, bucket, folder + part, b"x" * 10)
    walrus.put(account_id, bucket, f"{folder}{name}.manifest.xml", data or manifest(parts=parts, **kwargs))
    return f"{bucket}/{folder}{name}.manifest.xml"


def raw_image(ec2, walrus, name, key=None, **params) -> str:
    bucket = f"bucket-{ec2.account_id}"
    walrus.put(ec2.account_id, bucket, key or f"{name}.img", b"\0" * 512)
    return ec2("RegisterImage", ImageLocation=f"{bucket}/{key or name + '.img'}", Name=name, **params)["ImageId"]


def described(ec2, **params) -> list[str]:
    return [i["ImageId"] for i in ec2("DescribeImages", **params)["Images"]]


# -- manifests ----------------------------------------------------------------------------------------

def test_a_well_formed_manifest_is_read():
    m = manifests.parse_manifest(manifest(parts=("a.part.0", "a.part.1", "a.part.2"), kernel="eki-12345678",
                                       ramdisk="eri-12345678", bundled_size=30, size=1000))
    assert m == manifests.Manifest(image_type="machine", architecture="x86_64", kernel_id="eki-12345678",
                                ramdisk_id="eri-12345678", size=1000, bundled_size=30,
                                parts=("a.part.0", "a.part.1", "a.part.2"))


def test_parts_are_taken_in_index_order():
    data = manifest(parts=("b", "a")).replace(b'index="0"', b'index="X"').replace(b'index="1"', b'index="0"') \
        .replace(b'index="X"', b'index="1"')
    assert manifests.parse_manifest(data).parts == ("a", "b")


@pytest.mark.parametrize("kernel, ramdisk, expected",
                         [("true", "", "kernel"), ("", "true", "ramdisk"), ("", "", "machine")])
def test_eucalyptus_markers_give_the_type_when_the_manifest_has_none(kernel, ramdisk, expected):
    m = manifests.parse_manifest(manifest(image_type="", kernel=kernel, ramdisk=ramdisk))
    assert (m.image_type, m.kernel_id, m.ramdisk_id) == (expected, "", "")


XXE = '<!DOCTYPE manifest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS = '<!DOCTYPE manifest [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'


@pytest.mark.parametrize("data", [
    b"not xml at all", b"<manifest><image>", b"<other/>", b"<manifest/>",
    manifest(prolog=XXE).replace(b"<name>img</name>", b"<name>&xxe;</name>"),
    manifest(prolog=LAUGHS).replace(b"<name>img</name>", b"<name>&b;</name>"),
    manifest(prolog='<!DOCTYPE manifest SYSTEM "http://127.0.0.1:1/evil.dtd">'),
    manifest(image_type="windows"), manifest(image_type="machine", kernel="true"),
    manifest(architecture="sparc"), manifest(parts=()), manifest(parts=("a", "a")), manifest(parts=("../a",)),
    manifest(parts=("dir/a",)), manifest(size=-1), manifest(size=""), manifest(key=""), manifest(iv="not-hex"),
    manifest(bundled_size="many"),
    manifest().replace(b'count="2"', b'count="3"'), manifest().replace(b'index="1"', b'index="0"'),
    manifest().replace(b'index="1"', b'index="7"'),
])
def test_a_bad_manifest_is_invalid(data):
    with pytest.raises(AWSError) as e:
        manifests.parse_manifest(data)
    assert e.value.code == "InvalidManifest"


def test_an_external_entity_is_never_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("SECRET")
    data = manifest(prolog=f'<!DOCTYPE manifest [<!ENTITY xxe SYSTEM "file://{secret}">]>') \
        .replace(b"<name>img</name>", b"<name>&xxe;</name>")
    with pytest.raises(AWSError) as e:
        manifests.parse_manifest(data)
    assert "SECRET" not in e.value.message


# -- RegisterImage ------------------------------------------------------------------------------------

def test_bundles_register_as_emi_eki_eri_by_their_type(ec2s, walrus):
    alice = ec2s[0]
    found = {}
    for image_type in ("kernel", "ramdisk", "machine"):
        location = upload_bundle(walrus, ALICE, "bundles", image_type, image_type=image_type, architecture="i386")
        found[image_type] = alice("RegisterImage", ImageLocation=location, Name=f"b-{image_type}")["ImageId"]
    assert [found[t][:4] for t in ("machine", "kernel", "ramdisk")] == ["emi-", "eki-", "eri-"]
    image = alice("DescribeImages", ImageIds=[found["kernel"]])["Images"][0]
    assert (image["ImageType"], image["Architecture"], image["ImageLocation"]) == \
        ("kernel", "i386", "bundles/bundles/kernel.manifest.xml")
    assert "RootDeviceName" not in image and image["VirtualizationType"] == "paravirtual"


def test_a_machine_bundle_boots_the_manifests_kernel_unless_told_otherwise(ec2s, walrus):
    alice = ec2s[0]
    kernel = raw_image(alice, walrus, "vmlinuz-a", key="vmlinuz-6.1")
    other_kernel = raw_image(alice, walrus, "vmlinuz-b", key="vmlinuz-6.2")
    ramdisk = raw_image(alice, walrus, "initrd-a", key="initrd.img-6.1")
    location = upload_bundle(walrus, ALICE, "bundles", "mach", kernel=kernel, ramdisk=ramdisk)
    first = alice("RegisterImage", ImageLocation=location, Name="mach-1")["ImageId"]
    second = alice("RegisterImage", ImageLocation=location, Name="mach-2", KernelId=other_kernel)["ImageId"]
    got = {i["ImageId"]: i for i in alice("DescribeImages", ImageIds=[first, second])["Images"]}
    assert (got[first]["KernelId"], got[first]["RamdiskId"]) == (kernel, ramdisk)
    assert (got[second]["KernelId"], got[second]["RamdiskId"]) == (other_kernel, ramdisk)
    assert got[first]["VirtualizationType"] == "paravirtual" and got[first]["RootDeviceName"] == "/dev/sda1"


def test_a_bundle_with_a_part_missing_or_short_is_invalid(ec2s, walrus):
    alice = ec2s[0]
    location = upload_bundle(walrus, ALICE, "bundles", "gap")
    del walrus.objects[("bundles", "bundles/p.1")]
    assert alice.error("RegisterImage", ImageLocation=location, Name="gap") == "InvalidManifest"
    location = upload_bundle(walrus, ALICE, "bundles", "short", bundled_size=21)
    assert alice.error("RegisterImage", ImageLocation=location, Name="short") == "InvalidManifest"
    location = upload_bundle(walrus, ALICE, "bundles", "exact", bundled_size=20)
    assert alice("RegisterImage", ImageLocation=location, Name="exact")["ImageId"].startswith("emi-")
    assert described(alice) == [alice("DescribeImages")["Images"][0]["ImageId"]]


def test_manifests_and_objects_are_read_with_the_callers_own_credentials(ec2s, walrus):
    alice, bob, _ = ec2s
    location = upload_bundle(walrus, ALICE, "alices", "private")
    walrus.put(ALICE, "alices", "disk.img", b"\0")
    assert bob.error("RegisterImage", ImageLocation=location, Name="stolen") == "InvalidManifest"
    assert bob.error("RegisterImage", ImageLocation="alices/disk.img", Name="stolen") == "InvalidManifest"
    assert bob.error("RegisterImage", ImageLocation="alices/none.manifest.xml", Name="none") == "InvalidManifest"
    assert described(bob) == []


def test_a_bundle_of_another_type_than_the_request_says_is_refused(ec2s, walrus):
    alice = ec2s[0]
    location = upload_bundle(walrus, ALICE, "bundles", "mach")
    assert alice.error("RegisterImage", ImageLocation=location, Name="mach", KernelId="true") == "InvalidParameterValue"
    assert alice.error("RegisterImage", ImageLocation=location, Name="mach", Architecture="i386") == \
        "InvalidParameterValue"


@pytest.mark.parametrize("key, params, image_type", [
    ("disk.img", {}, "machine"), ("vmlinuz-6.1", {}, "kernel"), ("boot/vmlinuz", {}, "kernel"),
    ("initrd.img-6.1", {}, "ramdisk"), ("initramfs-6.1.img", {}, "ramdisk"), ("ramdisk.gz", {}, "ramdisk"),
    ("kernel.bin", {"KernelId": "true"}, "kernel"), ("rd.bin", {"RamdiskId": "true"}, "ramdisk"),
])
def test_raw_images_take_their_type_from_markers_or_file_names(ec2s, walrus, key, params, image_type):
    image_id = raw_image(ec2s[0], walrus, "raw", key=key, **params)
    assert image_id.startswith(images._PREFIX[image_type] + "-")
    assert ec2s[0]("DescribeImages", ImageIds=[image_id])["Images"][0]["ImageType"] == image_type


def test_kernel_and_ramdisk_must_be_visible_images_of_their_type(ec2s, walrus):
    alice, bob, _ = ec2s
    kernel, ramdisk = raw_image(alice, walrus, "kern", key="vmlinuz"), raw_image(alice, walrus, "rdisk", key="initrd")
    walrus.put(BOB, "bobs", "disk.img", b"\0")
    walrus.put(ALICE, f"bucket-{ALICE}", "disk.img", b"\0")
    register = dict(ImageLocation="bobs/disk.img", Name="bobs-machine")
    assert bob.error("RegisterImage", KernelId=kernel, **register) == "InvalidAMIID.NotFound"
    alices_disk = {"ImageLocation": f"bucket-{ALICE}/disk.img", "Name": "alices-machine"}
    assert alice.error("RegisterImage", KernelId=ramdisk, **alices_disk) == "InvalidParameterValue"
    assert alice.error("RegisterImage", RamdiskId=kernel, **alices_disk) == "InvalidParameterValue"
    alice("ModifyImageAttribute", ImageId=kernel, LaunchPermission={"Add": [{"UserId": BOB}]})
    alice("ModifyImageAttribute", ImageId=ramdisk, LaunchPermission={"Add": [{"Group": "all"}]})
    machine = bob("RegisterImage", KernelId=kernel, RamdiskId=ramdisk, **register)["ImageId"]
    got = bob("DescribeImages", ImageIds=[machine])["Images"][0]
    assert (got["KernelId"], got["RamdiskId"], got["VirtualizationType"]) == (kernel, ramdisk, "paravirtual")


def test_a_kernel_boots_no_kernel(ec2s, walrus):
    alice = ec2s[0]
    kernel = raw_image(alice, walrus, "kern", key="vmlinuz")
    assert alice.error("RegisterImage", ImageLocation=f"bucket-{ALICE}/vmlinuz", Name="kern-2", RamdiskId="true",
                       KernelId=kernel) == "InvalidParameterValue"
    assert alice.error("RegisterImage", ImageLocation=f"bucket-{ALICE}/vmlinuz", Name="kern-2", KernelId="true",
                       RamdiskId="true") == "InvalidParameterValue"


@pytest.mark.parametrize("params, error", [
    ({"Name": "ab"}, "InvalidAMIName.Malformed"), ({"Name": "x" * 129}, "InvalidAMIName.Malformed"),
    ({"Name": "bad*name"}, "InvalidAMIName.Malformed"), ({"Description": "d" * 256}, "InvalidParameterValue"),
    ({"Architecture": "arm64"}, "InvalidParameterValue"),
    ({"VirtualizationType": "paravirtual"}, "InvalidParameterValue"),
    ({"RootDeviceName": "/dev/xvda"}, "InvalidParameterValue"), ({"EnaSupport": True}, "InvalidParameterValue"),
    ({"BootMode": "uefi"}, "InvalidParameterValue"), ({"ImageLocation": "nokey"}, "InvalidParameterValue"),
    ({"ImageLocation": "b/missing.img"}, "InvalidManifest"), ({"DryRun": True}, "DryRunOperation"),
    ({"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}]},
     "InvalidParameterValue"),
])
def test_register_refuses_what_aws_refuses(ec2s, walrus, params, error):
    walrus.put(ALICE, "b", "disk.img", b"\0")
    request = {"ImageLocation": "b/disk.img", "Name": "good (name) [1] ./-'@_", **params}
    assert ec2s[0].error("RegisterImage", **request) == error
    assert described(ec2s[0]) == []


def test_names_are_unique_per_account_while_registered(ec2s, walrus):
    alice, bob, _ = ec2s
    first = raw_image(alice, walrus, "same")
    assert alice.error("RegisterImage", ImageLocation=f"bucket-{ALICE}/same.img", Name="same") == \
        "InvalidAMIName.Duplicate"
    raw_image(bob, walrus, "same")
    alice("DeregisterImage", ImageId=first)
    assert raw_image(alice, walrus, "same") != first


def test_register_with_tags_and_description(ec2s, walrus):
    alice = ec2s[0]
    image_id = raw_image(alice, walrus, "tagged", Description="a disk", Architecture="i386",
                         TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "role", "Value": "web"}]}])
    got = alice("DescribeImages", ImageIds=[image_id])["Images"][0]
    assert got["Tags"] == [{"Key": "role", "Value": "web"}]
    assert (got["Description"], got["Architecture"], got["VirtualizationType"]) == ("a disk", "i386", "hvm")


# -- launch permissions and visibility ----------------------------------------------------------------

def test_an_image_shared_by_account_id_is_visible_and_launchable_until_unshared(ec2s, walrus):
    alice, bob, carol = ec2s
    image_id = raw_image(alice, walrus, "shared")
    assert bob.error("DescribeImages", ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    with pytest.raises(AWSError):
        images.visible_image(bob.ctx, image_id)
    alice("ModifyImageAttribute", ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]})
    assert described(bob, ImageIds=[image_id]) == [image_id] and described(bob) == [image_id]
    assert images.visible_image(bob.ctx, image_id)["image_id"] == image_id
    assert bob("DescribeImages")["Images"][0]["Public"] is False
    assert described(carol) == [] and carol.error("DescribeImages", ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    assert alice("DescribeImageAttribute", ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"] == \
        [{"UserId": BOB}]
    alice("ModifyImageAttribute", ImageId=image_id, LaunchPermission={"Remove": [{"UserId": BOB}]})
    assert bob.error("DescribeImages", ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    with pytest.raises(AWSError) as e:
        images.visible_image(bob.ctx, image_id)
    assert e.value.code == "InvalidAMIID.NotFound"


def test_group_all_makes_an_image_public_and_the_old_flat_form_works(ec2s, walrus):
    alice, bob, carol = ec2s
    image_id = raw_image(alice, walrus, "public")
    alice("ModifyImageAttribute", ImageId=image_id, Attribute="launchPermission", OperationType="add",
          UserGroups=["all"], UserIds=[CAROL])
    assert described(bob) == [image_id] and bob("DescribeImages")["Images"][0]["Public"] is True
    assert described(alice, Filters=[{"Name": "is-public", "Values": ["true"]}]) == [image_id]
    permissions = alice("DescribeImageAttribute", ImageId=image_id, Attribute="launchPermission")
    assert permissions["LaunchPermissions"] == [{"Group": "all"}, {"UserId": CAROL}]
    alice("ModifyImageAttribute", ImageId=image_id, Attribute="launchPermission", OperationType="remove",
          UserGroups=["all"])
    assert described(bob) == [] and described(carol) == [image_id]
    alice("ResetImageAttribute", ImageId=image_id, Attribute="launchPermission")
    assert described(carol) == []
    assert alice("DescribeImageAttribute", ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"] == []


def test_executable_users_names_explicit_grants(ec2s, walrus):
    alice, bob, carol = ec2s
    mine = raw_image(alice, walrus, "mine")
    to_bob, to_carol, public = (raw_image(alice, walrus, n) for n in ("to-bob", "to-carol", "pub"))
    alice("ModifyImageAttribute", ImageId=to_bob, LaunchPermission={"Add": [{"UserId": BOB}]})
    alice("ModifyImageAttribute", ImageId=to_carol, LaunchPermission={"Add": [{"UserId": CAROL}]})
    alice("ModifyImageAttribute", ImageId=public, LaunchPermission={"Add": [{"Group": "all"}, {"UserId": CAROL}]})
    assert described(bob, ExecutableUsers=["self"]) == [to_bob]
    assert described(bob, ExecutableUsers=["all"]) == [public]
    assert sorted(described(bob)) == sorted([to_bob, public])
    # Alice sees whom she granted; Bob does not learn Alice's grants to Carol.
    assert sorted(described(alice, ExecutableUsers=[CAROL])) == sorted([to_carol, public])
    assert described(bob, ExecutableUsers=[CAROL]) == []
    assert mine not in described(alice, ExecutableUsers=["self", "all"])
    assert bob.error("DescribeImages", ExecutableUsers=["bob"]) == "InvalidUserID.Malformed"


@pytest.mark.parametrize("change, error", [
    ({"LaunchPermission": {"Add": [{"UserId": "bob"}]}}, "InvalidAMIAttributeItemValue"),
    ({"LaunchPermission": {"Add": [{"Group": "everyone"}]}}, "InvalidAMIAttributeItemValue"),
    ({"LaunchPermission": {"Add": [{"UserId": BOB, "Group": "all"}]}}, "InvalidParameterValue"),
    ({"LaunchPermission": {"Add": [{"OrganizationArn": "arn:aws:organizations::1:organization/o-1"}]}},
     "InvalidParameterValue"),
    ({"UserIds": [BOB]}, "MissingParameter"), ({"UserIds": [BOB], "OperationType": "share"}, "InvalidParameterValue"),
    ({}, "MissingParameter"), ({"Attribute": "kernel", "Value": "eki-1"}, "InvalidParameterValue"),
    ({"Attribute": "description"}, "MissingParameter"),
    ({"Description": {"Value": "d"}, "LaunchPermission": {"Add": [{"UserId": BOB}]}}, "InvalidParameterCombination"),
    ({"Description": {"Value": "d" * 256}}, "InvalidParameterValue"),
    ({"ProductCodes": ["abc"]}, "InvalidParameterValue"),
    ({"LaunchPermission": {"Add": [{"UserId": BOB}]}, "DryRun": True}, "DryRunOperation"),
])
def test_modify_refuses_what_aws_refuses(ec2s, walrus, change, error):
    alice = ec2s[0]
    image_id = raw_image(alice, walrus, "img")
    assert alice.error("ModifyImageAttribute", ImageId=image_id, **change) == error
    assert alice("DescribeImageAttribute", ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"] == []


def test_only_the_owner_touches_attributes_others_get_authfailure_or_notfound(ec2s, walrus):
    alice, bob, carol = ec2s
    image_id = raw_image(alice, walrus, "owned")
    alice("ModifyImageAttribute", ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]})
    grant = {"LaunchPermission": {"Add": [{"UserId": CAROL}]}}
    for action, params in (("ModifyImageAttribute", grant), ("DescribeImageAttribute", {"Attribute": "description"}),
                           ("ResetImageAttribute", {"Attribute": "launchPermission"}), ("DeregisterImage", {})):
        assert bob.error(action, ImageId=image_id, **params) == "AuthFailure"
        assert carol.error(action, ImageId=image_id, **params) == "InvalidAMIID.NotFound"
        assert carol.error(action, ImageId="emi-00000000", **params) == "InvalidAMIID.NotFound"
    assert described(carol) == []


def test_describe_and_modify_the_other_attributes(ec2s, walrus):
    alice = ec2s[0]
    kernel, ramdisk = raw_image(alice, walrus, "kern", key="vmlinuz"), raw_image(alice, walrus, "rdisk", key="initrd")
    image_id = raw_image(alice, walrus, "mach", KernelId=kernel, RamdiskId=ramdisk)

    def attribute(name):
        out = alice("DescribeImageAttribute", ImageId=image_id, Attribute=name)
        assert out.pop("ImageId") == image_id
        return out
    assert attribute("description") == {"Description": {}}
    alice("ModifyImageAttribute", ImageId=image_id, Description={"Value": "new words"})
    assert attribute("description") == {"Description": {"Value": "new words"}}
    alice("ModifyImageAttribute", ImageId=image_id, Attribute="description", Value="flat words")
    assert attribute("description") == {"Description": {"Value": "flat words"}}
    assert attribute("kernel") == {"KernelId": {"Value": kernel}}
    assert attribute("ramdisk") == {"RamdiskId": {"Value": ramdisk}}
    assert attribute("productCodes") == {"ProductCodes": []}
    assert attribute("blockDeviceMapping") == {"BlockDeviceMappings": []}
    assert attribute("sriovNetSupport") == {}
    assert alice.error("DescribeImageAttribute", ImageId=image_id, Attribute="colour") == "InvalidParameterValue"
    assert alice.error("ResetImageAttribute", ImageId=image_id, Attribute="description") == "InvalidParameterValue"
    assert alice.error("DescribeImageAttribute", ImageId=image_id, Attribute="kernel", DryRun=True) == \
        "DryRunOperation"


# -- DeregisterImage, CreateImage ---------------------------------------------------------------------

def test_deregister_forgets_permissions_and_tags(ec2s, walrus, cloud):
    alice, bob, _ = ec2s
    image_id = raw_image(alice, walrus, "gone")
    alice("ModifyImageAttribute", ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}, {"Group": "all"}]})
    alice("CreateTags", Resources=[image_id], Tags=[{"Key": "k", "Value": "v"}])
    assert alice.error("DeregisterImage", ImageId=image_id, DryRun=True) == "DryRunOperation"
    assert alice("DeregisterImage", ImageId=image_id)["Return"] is True
    assert alice.error("DescribeImages", ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    assert bob.error("DescribeImages", ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    assert alice.error("DeregisterImage", ImageId=image_id) == "InvalidAMIID.NotFound"
    assert list(cloud.store.db["image_permissions"].rows) == []
    assert list(cloud.store.db["tags"].rows) == []


def add_instance(cloud, account_id: str, image_id: str) -> str:
    instance_id, now = ids.new_id("i"), ids.now()
    with cloud.store.atomic() as db:
        db["instances"].insert({"instance_id": instance_id, "reservation_id": ids.new_id("r"),
                                "account_id": account_id, "user_id": "", "image_id": image_id, "kernel_id": "",
                                "ramdisk_id": "", "instance_type": "m1.small", "key_name": "", "zone": "z",
                                "state": "running", "reason": "", "launch_time": now, "launch_index": 0,
                                "user_data": "", "mac": "", "private_ip": "", "public_ip": "", "node": "",
                                "groups": "default", "updated": now})
    return instance_id


def test_an_image_in_use_can_be_deregistered_and_shows_when_it_was_last_launched(ec2s, walrus, cloud):
    alice = ec2s[0]
    image_id = raw_image(alice, walrus, "busy")
    assert alice("DescribeImageAttribute", ImageId=image_id, Attribute="lastLaunchedTime")["LastLaunchedTime"] == {}
    add_instance(cloud, ALICE, image_id)
    assert alice("DescribeImageAttribute", ImageId=image_id,
                 Attribute="lastLaunchedTime")["LastLaunchedTime"]["Value"]
    alice("DeregisterImage", ImageId=image_id)
    assert described(alice) == []


class ImagingCluster:
    """The zone's cluster controller as CreateImage and the poller use it: records CreateImage,
    answers ``fault`` (a code) or is ``down``; reports each of ``instances`` Extant, with the
    image tasks ``tasks`` (instance id -> [(image id, state, bytes, message)]) says."""

    def __init__(self):
        self.asked, self.tasks, self.instances, self.fault, self.down = [], {}, [], None, False

    def CreateImage(self, **request):
        if self.down:
            raise requests.exceptions.ConnectionError("cluster down")
        if self.fault:
            raise zeep.exceptions.Fault("the node refused", code=f"soap11env:Client.{self.fault}")
        self.asked.append(request)

    def DescribeInstances(self, **request):
        return SimpleNamespace(instances=[SimpleNamespace(
            instanceId=i, stateName="Extant", statusMessage=None, serviceTag="node-1",
            createImageTasks=[SimpleNamespace(imageId=t[0], stateName=t[1], bytes=t[2], statusMessage=t[3])
                              for t in self.tasks.get(i, [])]) for i in self.instances])

    def DescribeNetworks(self, **request):
        return SimpleNamespace(groups=[])

    def ConfigureNetwork(self, **request):
        pass


@pytest.fixture
def imaging(cloud, walrus, monkeypatch):
    """Zone ``z``'s cluster (an ImagingCluster), and the accounts' admins acting in Walrus."""
    fake = ImagingCluster()
    with cloud.store.atomic() as db:
        db["components"].insert({"kind": "cluster", "name": "cc-z", "partition": "z", "host": "127.0.0.1",
                                 "port": 1, "state": "ENABLED", "last_seen": ids.now(), "registered": ids.now()})
    cloud.cc = lambda cluster: fake
    monkeypatch.setattr(cloud.identity, "account_credentials",
                        lambda account_id: SimpleNamespace(account_id=account_id))
    return fake


def image_of(ec2, image_id) -> dict:
    return ec2("DescribeImages", ImageIds=[image_id])["Images"][0]


def imaged(cloud, ec2, fake, **params) -> tuple[str, str]:
    """(instance id, image id) of a CreateImage of a new running instance of the caller's."""
    instance_id = add_instance(cloud, ec2.account_id, "emi-00000000")
    fake.instances.append(instance_id)
    return instance_id, ec2("CreateImage", InstanceId=instance_id, **params)["ImageId"]


def test_create_image_is_pending_until_the_node_has_uploaded_the_disk(ec2s, walrus, cloud, imaging):
    alice = ec2s[0]
    instance_id, image_id = imaged(cloud, alice, imaging, Name="my snap", Description="from a running instance",
                                   TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}])
    image = image_of(alice, image_id)
    assert image_id.startswith("emi-")
    assert (image["State"], image["Name"], image["Description"], image["SourceInstanceId"]) == \
        ("pending", "my snap", "from a running instance", instance_id)
    assert (image["ImageLocation"], image["OwnerId"], image["ImageType"]) == \
        (f"{ALICE}-images/{image_id}.img", ALICE, "machine")
    assert image["Tags"] == [{"Key": "k", "Value": "v"}] and "StateReason" not in image
    assert walrus.owners[f"{ALICE}-images"] == ALICE  # made for the account
    (asked,) = imaging.asked
    assert (asked["instanceId"], asked["imageId"], asked["noReboot"]) == (instance_id, image_id, False)
    assert asked["imageURL"] == f"http://walrus/{ALICE}-images/{image_id}.img?put-by={ALICE}&expires=14400"

    imaging.tasks[instance_id] = [(image_id, "creating", 0, None)]
    ClusterPoller(cloud).poll_once()
    assert image_of(alice, image_id)["State"] == "pending"
    imaging.tasks[instance_id] = [(image_id, "succeeded", 65536, None)]
    ClusterPoller(cloud).poll_once()
    assert image_of(alice, image_id)["State"] == "available"
    assert cloud.store.db["images"].get(image_id)["size"] == 65536
    assert described(alice, Filters=[{"Name": "source-instance-id", "Values": [instance_id]}]) == [image_id]

    second = alice("CreateImage", InstanceId=instance_id, Name="second", NoReboot=True)["ImageId"]  # same bucket
    assert imaging.asked[-1]["noReboot"] is True and imaging.asked[-1]["imageId"] == second


def test_an_image_the_node_could_not_make_fails_with_its_reason(ec2s, walrus, cloud, imaging):
    alice = ec2s[0]
    instance_id, image_id = imaged(cloud, alice, imaging, Name="broken")
    imaging.tasks[instance_id] = [(image_id, "failed", 0, "upload failed: HTTP 403: expired")]
    ClusterPoller(cloud).poll_once()
    image = image_of(alice, image_id)
    assert image["State"] == "failed"
    assert image["StateReason"] == {"Code": "Server.InternalError",
                                    "Message": "Server.InternalError: upload failed: HTTP 403: expired"}
    assert described(alice, Filters=[{"Name": "state-reason-code", "Values": ["Server.InternalError"]}]) == [image_id]
    assert alice.error("CreateImage", InstanceId=instance_id, Name="broken") == "InvalidAMIName.Duplicate"
    alice("DeregisterImage", ImageId=image_id)
    alice("CreateImage", InstanceId=instance_id, Name="broken")  # the name is free again


def test_an_image_the_cluster_refuses_or_cannot_be_asked_for_fails_at_once(ec2s, walrus, cloud, imaging):
    alice = ec2s[0]
    imaging.fault = "IncorrectInstanceState"
    _, refused = imaged(cloud, alice, imaging, Name="refused")
    assert image_of(alice, refused)["StateReason"]["Code"] == "Client.IncorrectInstanceState"
    imaging.fault, imaging.down = None, True
    _, unanswered = imaged(cloud, alice, imaging, Name="unanswered")
    image = image_of(alice, unanswered)
    assert (image["State"], image["StateReason"]["Code"]) == ("failed", "Server.InternalError")


def test_an_image_whose_copy_is_never_reported_fails(ec2s, walrus, cloud, imaging, monkeypatch):
    alice = ec2s[0]
    _, image_id = imaged(cloud, alice, imaging, Name="lost")
    ClusterPoller(cloud).poll_once()
    assert image_of(alice, image_id)["State"] == "pending"
    monkeypatch.setattr(images, "TASK_REPORT_TIMEOUT", -1)
    ClusterPoller(cloud).poll_once()
    assert image_of(alice, image_id)["State"] == "failed"


def test_a_deregistered_pending_image_stays_deregistered(ec2s, walrus, cloud, imaging):
    alice = ec2s[0]
    instance_id, image_id = imaged(cloud, alice, imaging, Name="changed my mind")
    alice("DeregisterImage", ImageId=image_id)
    imaging.tasks[instance_id] = [(image_id, "succeeded", 10, None)]
    ClusterPoller(cloud).poll_once()
    assert cloud.store.db["images"].get(image_id)["state"] == "deregistered"


def test_create_image_refusals(ec2s, walrus, cloud, imaging):
    alice, bob, _ = ec2s
    instance_id = add_instance(cloud, ALICE, "emi-00000000")
    assert bob.error("CreateImage", InstanceId=instance_id, Name="snap") == "InvalidInstanceID.NotFound"
    assert alice.error("CreateImage", InstanceId=instance_id, Name="x") == "InvalidAMIName.Malformed"
    assert alice.error("CreateImage", InstanceId=instance_id) == "MissingParameter"
    assert alice.error("CreateImage", InstanceId=instance_id, Name="snap",
                       BlockDeviceMappings=[{"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]) == \
        "InvalidParameterValue"
    assert alice.error("CreateImage", InstanceId=instance_id, Name="snap",
                       TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}]) == \
        "InvalidParameterValue"
    assert alice.error("CreateImage", InstanceId=instance_id, Name="snap", DryRun=True) == "DryRunOperation"
    with cloud.store.atomic() as db:
        db["instances"].update(instance_id, {"state": "pending"})
    assert alice.error("CreateImage", InstanceId=instance_id, Name="snap") == "IncorrectInstanceState"
    with cloud.store.atomic() as db:
        db["instances"].update(instance_id, {"state": "stopped"})
    walrus.max_buckets = len(walrus.owned(ALICE))
    assert alice.error("CreateImage", InstanceId=instance_id, Name="snap") == "ResourceLimitExceeded"
    walrus.owners[f"{ALICE}-images"] = BOB  # someone else holds the bucket's name
    assert alice.error("CreateImage", InstanceId=instance_id, Name="snap") == "InternalError"
    assert imaging.asked == [] and described(alice) == []


# -- DescribeImages: owners, filters, pages -----------------------------------------------------------

@pytest.fixture
def estate(ec2s, walrus):
    """Alice's kernel, ramdisk, a paravirtual and an hvm machine (public), and Bob's machine."""
    alice, bob, _ = ec2s
    kernel, ramdisk = raw_image(alice, walrus, "kern", key="vmlinuz"), raw_image(alice, walrus, "rdisk", key="initrd")
    para = raw_image(alice, walrus, "para", KernelId=kernel, RamdiskId=ramdisk, Description="with a kernel")
    hvm = raw_image(alice, walrus, "hvm", Architecture="i386")
    alice("ModifyImageAttribute", ImageId=hvm, LaunchPermission={"Add": [{"Group": "all"}]})
    alice("CreateTags", Resources=[para], Tags=[{"Key": "role", "Value": "web"}])
    bobs = raw_image(bob, walrus, "bobs")
    return {"kernel": kernel, "ramdisk": ramdisk, "para": para, "hvm": hvm, "bobs": bobs}


@pytest.mark.parametrize("name, values, expected", [
    ("architecture", ["i386"], ["hvm"]), ("image-type", ["kernel", "ramdisk"], ["kernel", "ramdisk"]),
    ("is-public", ["false"], ["kernel", "ramdisk", "para"]), ("kernel-id", ["eki-*"], ["para"]),
    ("ramdisk-id", ["eri-*"], ["para"]), ("name", ["p*"], ["para"]), ("description", ["with*"], ["para"]),
    ("virtualization-type", ["hvm"], ["hvm"]), ("root-device-name", ["/dev/sda1"], ["para", "hvm"]),
    ("root-device-type", ["instance-store"], ["kernel", "ramdisk", "para", "hvm"]),
    ("hypervisor", ["kvm"], ["kernel", "ramdisk", "para", "hvm"]),
    ("state", ["available"], ["kernel", "ramdisk", "para", "hvm"]),
    ("manifest-location", [f"bucket-{ALICE}/hvm.img"], ["hvm"]), ("owner-id", [BOB], []),
    ("block-device-mapping.device-name", ["*"], []), ("platform", ["windows"], []), ("owner-alias", ["amazon"], []),
    ("state-reason-code", ["*"], []), ("tag:role", ["web"], ["para"]), ("tag-key", ["role"], ["para"]),
    ("tag-value", ["w?b"], ["para"]),
])
def test_filters(ec2s, estate, name, values, expected):
    got = described(ec2s[0], Owners=["self"], Filters=[{"Name": name, "Values": values}])
    assert sorted(got) == sorted(estate[e] for e in expected)


def test_an_unknown_filter_is_invalid(ec2s, estate):
    assert ec2s[0].error("DescribeImages", Filters=[{"Name": "colour", "Values": ["red"]}]) == "InvalidParameterValue"


def test_owners(ec2s, estate, cloud):
    alice, bob, _ = ec2s
    assert sorted(described(bob)) == sorted([estate["bobs"], estate["hvm"]])
    assert described(bob, Owners=["self"]) == [estate["bobs"]]
    assert described(bob, Owners=[ALICE]) == [estate["hvm"]]
    assert described(bob, Owners=["amazon"]) == []
    assert bob.error("DescribeImages", Owners=["someone"]) == "InvalidUserID.Malformed"
    assert bob.error("DescribeImages", ImageIds=[estate["para"]]) == "InvalidAMIID.NotFound"
    admin = Ec2(cloud, ADMIN, cloud_admin=True)
    assert sorted(described(admin, Owners=[ALICE])) == sorted(estate[k] for k in ("kernel", "ramdisk", "para", "hvm"))
    assert estate["para"] in described(admin, ImageIds=["verbose"])
    assert described(admin) == [estate["hvm"]]


def test_tags_are_the_owners_own(ec2s, estate):
    alice, bob, _ = ec2s
    alice("CreateTags", Resources=[estate["hvm"]], Tags=[{"Key": "secret", "Value": "x"}])
    assert "Tags" in alice("DescribeImages", ImageIds=[estate["hvm"]])["Images"][0]
    assert "Tags" not in bob("DescribeImages", ImageIds=[estate["hvm"]])["Images"][0]
    assert described(bob, Filters=[{"Name": "tag-key", "Values": ["secret"]}]) == []


def test_pages(ec2s, walrus):
    alice = ec2s[0]
    made = sorted(raw_image(alice, walrus, f"page-{i}") for i in range(7))
    first = alice("DescribeImages", MaxResults=5, IncludeDeprecated=True)
    assert [i["ImageId"] for i in first["Images"]] == made[:5]
    second = alice("DescribeImages", MaxResults=5, NextToken=first["NextToken"])
    assert [i["ImageId"] for i in second["Images"]] == made[5:] and "NextToken" not in second
    assert alice.error("DescribeImages", MaxResults=5, ImageIds=[made[0]]) == "InvalidParameterCombination"
    assert alice.error("DescribeImages", MaxResults=4) == "InvalidParameterValue"
    assert alice.error("DescribeImages", NextToken="garbage") == "InvalidPaginationToken"
    assert alice.error("DescribeImages", DryRun=True) == "DryRunOperation"
