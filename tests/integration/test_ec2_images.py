"""Images across accounts on the running cloud: launch permissions by account id and by the
group ``all``, bundle manifests in Walrus registered as emi/eki/eri, kernels and ramdisks
booted by a machine image, deregistration (CreateImage: test_ec2_create_image.py)."""

import botocore.exceptions
import pytest

from tests.cloudharness import wait_for

pytestmark = pytest.mark.integration


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"]


def _state(ec2, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def _manifest(image_type: str, parts: list[str], bundled_size: int, kernel: str = "", ramdisk: str = "") -> bytes:
    """A hand-made manifest as euca-bundle-image writes one (keys and digests are stand-ins)."""
    config = "<architecture>x86_64</architecture>"
    config += f"<kernel_id>{kernel}</kernel_id>" if kernel else ""
    config += f"<ramdisk_id>{ramdisk}</ramdisk_id>" if ramdisk else ""
    listed = "".join(f'<part index="{i}"><filename>{name}</filename><digest algorithm="SHA1">'
                     f'{"0" * 40}</digest></part>' for i, name in enumerate(parts))
    return (f'<?xml version="1.0" encoding="UTF-8"?><manifest><version>2007-10-10</version>'
            f"<bundler><name>euca-tools</name><version>3.4</version><release>0</release></bundler>"
            f"<machine_configuration>{config}</machine_configuration>"
            f"<image><name>{image_type}.img</name><user>000000000000</user><type>{image_type}</type>"
            f'<digest algorithm="SHA1">{"0" * 40}</digest><size>{bundled_size * 2}</size>'
            f"<bundled_size>{bundled_size}</bundled_size>"
            f'<ec2_encrypted_key algorithm="AES-128-CBC">{"ab" * 128}</ec2_encrypted_key>'
            f'<user_encrypted_key algorithm="AES-128-CBC">{"cd" * 128}</user_encrypted_key>'
            f'<ec2_encrypted_iv>{"ef" * 128}</ec2_encrypted_iv><user_encrypted_iv>{"01" * 128}</user_encrypted_iv>'
            f'<parts count="{len(parts)}">{listed}</parts></image><signature>{"23" * 128}</signature>'
            f"</manifest>").encode()


class Account:
    """An account with a bucket of its own and a raw machine image in it."""

    def __init__(self, cloud, name: str):
        self.tenant = cloud.new_account(name)
        self.account_id = self.tenant.account_id
        self.ec2, self.s3 = self.tenant.client("ec2"), self.tenant.client("s3")
        self.bucket = f"{name}-bucket"
        self.s3.create_bucket(Bucket=self.bucket)

    def raw_image(self, key: str, name: str, **params) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"\0" * 4096)
        return self.ec2.register_image(ImageLocation=f"{self.bucket}/{key}", Name=name, **params)["ImageId"]

    def bundle(self, prefix: str, image_type: str, parts: int = 2, **manifest) -> str:
        names = [f"{prefix}.part.{i}" for i in range(parts)]
        for name in names:
            self.s3.put_object(Bucket=self.bucket, Key=f"bundles/{name}", Body=b"\x5a" * 1000)
        key = f"bundles/{prefix}.manifest.xml"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=_manifest(image_type, names, 1000 * parts, **manifest))
        return f"{self.bucket}/{key}"


@pytest.fixture(scope="module")
def accounts(cloud):
    return Account(cloud, "img-a"), Account(cloud, "img-b"), Account(cloud, "img-c")


def _ids(ec2, **params) -> list[str]:
    return [i["ImageId"] for i in ec2.describe_images(**params)["Images"]]


def test_an_image_shared_by_account_id_is_launchable_until_the_grant_is_removed(accounts):
    a, b, c = accounts
    image_id = a.raw_image("shared.img", "img-shared")
    assert _code(b.ec2.describe_images, ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    a.ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": b.account_id}]})
    image = b.ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert (image["OwnerId"], image["Public"]) == (a.account_id, False)
    assert _ids(b.ec2, ExecutableUsers=["self"]) == [image_id]
    assert image_id not in _ids(c.ec2)
    permissions = a.ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert permissions["LaunchPermissions"] == [{"UserId": b.account_id}]
    instance_id = b.ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    try:
        wait_for(lambda: _state(b.ec2, instance_id) == "running", timeout=120, what=f"{instance_id} running")
    finally:
        b.ec2.terminate_instances(InstanceIds=[instance_id])
    a.ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"UserId": b.account_id}]})
    assert _code(b.ec2.describe_images, ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    assert _code(b.ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=1) == "InvalidAMIID.NotFound"
    wait_for(lambda: _state(b.ec2, instance_id) == "terminated", timeout=120, what=f"{instance_id} terminated")


def test_group_all_makes_an_image_public_and_only_its_owner_changes_it(accounts):
    a, b, c = accounts
    image_id = a.raw_image("public.img", "img-public", Description="for everyone")
    a.ec2.modify_image_attribute(ImageId=image_id, Attribute="launchPermission", OperationType="add",
                                 UserGroups=["all"])
    for other in (b, c):
        image = other.ec2.describe_images(ImageIds=[image_id])["Images"][0]
        assert image["Public"] is True and "Tags" not in image
        assert image_id in _ids(other.ec2, ExecutableUsers=["all"])
        assert _code(other.ec2.describe_image_attribute, ImageId=image_id, Attribute="description") == "AuthFailure"
        assert _code(other.ec2.modify_image_attribute, ImageId=image_id,
                     LaunchPermission={"Remove": [{"Group": "all"}]}) == "AuthFailure"
        assert _code(other.ec2.deregister_image, ImageId=image_id) == "AuthFailure"
    assert a.ec2.describe_image_attribute(ImageId=image_id, Attribute="description")["Description"] == \
        {"Value": "for everyone"}
    a.ec2.reset_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert _code(c.ec2.describe_images, ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    assert _code(c.ec2.describe_image_attribute, ImageId=image_id, Attribute="description") == \
        "InvalidAMIID.NotFound"


def test_bundles_register_by_their_manifests_type(accounts):
    a, b, _ = accounts
    found = {t: a.ec2.register_image(ImageLocation=a.bundle(f"b-{t}", t), Name=f"img-bundle-{t}")["ImageId"]
             for t in ("machine", "kernel", "ramdisk")}
    assert [found[t].split("-")[0] for t in ("machine", "kernel", "ramdisk")] == ["emi", "eki", "eri"]
    images = {i["ImageId"]: i for i in a.ec2.describe_images(ImageIds=list(found.values()))["Images"]}
    assert {images[found[t]]["ImageType"] for t in found} == {"machine", "kernel", "ramdisk"}
    assert images[found["machine"]]["ImageLocation"] == f"{a.bucket}/bundles/b-machine.manifest.xml"
    # A part missing, another account's manifest, an XXE attempt: all refused.
    location = a.bundle("b-gap", "machine", parts=3)
    a.s3.delete_object(Bucket=a.bucket, Key="bundles/b-gap.part.1")
    assert _code(a.ec2.register_image, ImageLocation=location, Name="img-gap") == "InvalidManifest"
    assert _code(b.ec2.register_image, ImageLocation=a.bundle("b-theirs", "machine"), Name="img-theirs") == \
        "InvalidManifest"
    evil = _manifest("machine", ["b-machine.part.0", "b-machine.part.1"], 2000).replace(
        b"<manifest>", b'<!DOCTYPE manifest [<!ENTITY x SYSTEM "file:///etc/passwd">]><manifest>', 1) \
        .replace(b"<name>machine.img</name>", b"<name>&x;</name>")
    a.s3.put_object(Bucket=a.bucket, Key="bundles/evil.manifest.xml", Body=evil)
    assert _code(a.ec2.register_image, ImageLocation=f"{a.bucket}/bundles/evil.manifest.xml", Name="img-evil") == \
        "InvalidManifest"


def test_a_machine_image_boots_a_registered_kernel_and_ramdisk(accounts):
    a, b, _ = accounts
    kernel = a.raw_image("vmlinuz-6.1.0", "img-kernel")
    ramdisk = a.raw_image("initrd.img-6.1.0", "img-ramdisk")
    assert (kernel[:4], ramdisk[:4]) == ("eki-", "eri-")
    machine = a.raw_image("root.img", "img-paravirtual", KernelId=kernel, RamdiskId=ramdisk)
    image = a.ec2.describe_images(ImageIds=[machine])["Images"][0]
    assert (image["KernelId"], image["RamdiskId"], image["VirtualizationType"]) == (kernel, ramdisk, "paravirtual")
    assert a.ec2.describe_image_attribute(ImageId=machine, Attribute="kernel")["KernelId"] == {"Value": kernel}
    from_bundle = a.ec2.register_image(ImageLocation=a.bundle("b-booted", "machine", kernel=kernel,
                                                              ramdisk=ramdisk), Name="img-bundle-booted")["ImageId"]
    assert a.ec2.describe_images(ImageIds=[from_bundle])["Images"][0]["KernelId"] == kernel
    assert _ids(a.ec2, Filters=[{"Name": "kernel-id", "Values": [kernel]}]) == sorted([machine, from_bundle])
    # Bob cannot boot Alice's private kernel, nor register a machine image with her ramdisk as its kernel.
    b.s3.put_object(Bucket=b.bucket, Key="root.img", Body=b"\0" * 4096)
    assert _code(b.ec2.register_image, ImageLocation=f"{b.bucket}/root.img", Name="img-b-root",
                 KernelId=kernel) == "InvalidAMIID.NotFound"
    assert _code(a.ec2.register_image, ImageLocation=f"{a.bucket}/root.img", Name="img-wrong",
                 KernelId=ramdisk) == "InvalidParameterValue"


def test_deregister(accounts):
    a, b, _ = accounts
    image_id = a.raw_image("gone.img", "img-gone")
    a.ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": b.account_id}]})
    a.ec2.create_tags(Resources=[image_id], Tags=[{"Key": "k", "Value": "v"}])
    assert _code(b.ec2.deregister_image, ImageId=image_id) == "AuthFailure"
    a.ec2.deregister_image(ImageId=image_id)
    assert _code(b.ec2.describe_images, ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    assert _code(a.ec2.describe_images, ImageIds=[image_id]) == "InvalidAMIID.NotFound"
    assert a.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}])["Tags"] == []


def test_describe_images_pages(accounts):
    _, _, c = accounts
    made = sorted(c.raw_image(f"page-{i}.img", f"img-page-{i}") for i in range(6))
    first = c.ec2.describe_images(Owners=["self"], MaxResults=5)
    second = c.ec2.describe_images(Owners=["self"], MaxResults=5, NextToken=first["NextToken"])
    assert [i["ImageId"] for i in first["Images"] + second["Images"]] == made
    assert "NextToken" not in second
    assert _code(c.ec2.describe_images, ImageIds=made[:1], MaxResults=5) == "InvalidParameterCombination"
