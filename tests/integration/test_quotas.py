"""Per-account quotas (Limit account policies) against the live CLC and Walrus."""

import time

import botocore.exceptions
import pytest

from eucacore.policy import quota_policy
from tests.cloudharness import register_image, wait_for
from walrus.__main__ import CREDENTIAL_TTL

pytestmark = pytest.mark.integration

MIB = 2**20
LIVE = ("pending", "running")


def _code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def _live_ids(ec2) -> set[str]:
    described = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": list(LIVE)}])
    return {i["InstanceId"] for r in described["Reservations"] for i in r["Instances"]}


def _all_ids(ec2) -> set[str]:
    """Every instance of the account DescribeInstances knows, terminated ones included."""
    return {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}


def _wait_terminated(ec2, instance_ids: list[str]) -> None:
    def states():
        described = ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]
        return {i["State"]["Name"] for r in described for i in r["Instances"]}

    wait_for(lambda: states() == {"terminated"}, timeout=60, what=f"{instance_ids} terminated")


def _set_quota(cloud, account: str, **values: int) -> None:
    values = {name.replace("_", "-"): v for name, v in values.items()}
    cloud.client("euare").put_account_policy(AccountName=account, PolicyName="quota",
                                             PolicyDocument=quota_policy(values))


def _quotas(client, account: str | None = None) -> dict[str, dict]:
    listed = client.list_account_quotas(**({"AccountName": account} if account else {}))["Quotas"]
    return {q["Name"]: q for q in listed}


class Launcher:
    """An account with an image of its own, able to run instances and to clean up after itself."""

    def __init__(self, tenant, image_id: str):
        self.tenant, self.image_id = tenant, image_id
        self.ec2 = tenant.client("ec2")

    def run(self, min_count: int = 1, max_count: int | None = None, instance_type: str = "m1.small") -> list[str]:
        reservation = self.ec2.run_instances(ImageId=self.image_id, MinCount=min_count,
                                             MaxCount=max_count or min_count, InstanceType=instance_type)
        return [i["InstanceId"] for i in reservation["Instances"]]

    def refused(self, **kwargs) -> str:
        """The error code of a run that must fail, after checking it created no instance at all."""
        before = _all_ids(self.ec2)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            self.run(**kwargs)
        assert _all_ids(self.ec2) == before
        return _code(e)

    def terminate_all(self) -> None:
        """Terminate every live instance of the account and wait until they are gone, so the
        node's capacity (shared by every test) is free again."""
        live = sorted(_live_ids(self.ec2))
        if live:
            self.ec2.terminate_instances(InstanceIds=live)
            _wait_terminated(self.ec2, live)


@pytest.fixture(scope="module")
def launcher(cloud):
    tenant = cloud.new_account("quota-ec2")
    image_id = register_image(tenant.client("ec2"), tenant.client("s3"), "quota-ec2-images", "quota-image")
    launcher = Launcher(tenant, image_id)
    yield launcher
    launcher.terminate_all()


@pytest.fixture
def clean(launcher):
    """The launcher, with every instance it started terminated afterwards."""
    try:
        yield launcher
    finally:
        launcher.terminate_all()


def test_instances_quota(cloud, clean):
    _set_quota(cloud, "quota-ec2", instances=2)
    # All or nothing when MinCount cannot be met.
    assert clean.refused(min_count=3, max_count=3) == "InstanceLimitExceeded"
    # As many as fit when MaxCount cannot.
    started = clean.run(min_count=1, max_count=3)
    assert len(started) == 2 and _live_ids(clean.ec2) == set(started)
    assert clean.refused(min_count=1) == "InstanceLimitExceeded"
    # Terminating (shutting-down is enough) gives the quota back at once.
    clean.ec2.terminate_instances(InstanceIds=started[:1])
    assert len(clean.run()) == 1


def test_cores_quota(cloud, clean):
    _set_quota(cloud, "quota-ec2", cores=3)
    assert len(clean.run(instance_type="m1.large")) == 1  # 2 cores
    assert clean.refused(instance_type="m1.large") == "InstanceLimitExceeded"
    assert len(clean.run(instance_type="m1.small")) == 1  # 3 cores
    assert clean.refused(instance_type="m1.small") == "InstanceLimitExceeded"


def test_memory_quota(cloud, clean):
    _set_quota(cloud, "quota-ec2", memory=768)
    assert len(clean.run(min_count=1, max_count=5, instance_type="m1.small")) == 3  # 3 * 256 MiB
    assert clean.refused(instance_type="m1.small") == "InstanceLimitExceeded"
    clean.terminate_all()
    assert len(clean.run(instance_type="m1.large")) == 1  # 512 MiB
    assert clean.refused(min_count=2, instance_type="m1.small") == "InstanceLimitExceeded"
    assert len(clean.run(instance_type="m1.small")) == 1  # 768 MiB


def test_instances_quota_in_list_account_quotas(cloud, clean):
    _set_quota(cloud, "quota-ec2", instances=2, cores=10)
    clean.run()
    quotas = _quotas(cloud.client("euare"), "quota-ec2")
    assert (quotas["instances"]["Limit"], quotas["instances"]["Used"]) == (2, 1)
    assert (quotas["cores"]["Limit"], quotas["cores"]["Used"]) == (10, 1)
    assert (quotas["memory"]["Limit"], quotas["memory"]["Used"]) == (-1, 256)
    assert quotas["instances"]["Key"] == "ec2:quota-vminstancenumber"
    assert quotas["instances"]["AccountId"] == clean.tenant.account_id


@pytest.fixture(scope="module")
def storage_tenant(cloud):
    return cloud.new_account("quota-s3")


def test_buckets_quota(cloud, storage_tenant):
    s3 = storage_tenant.client("s3")
    _set_quota(cloud, "quota-s3", buckets=2)
    s3.create_bucket(Bucket="quota-s3-one")
    s3.create_bucket(Bucket="quota-s3-two")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="quota-s3-three")
    assert _code(e) == "TooManyBuckets"
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["quota-s3-one", "quota-s3-two"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket="quota-s3-three")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bucket_storage_quota(cloud, storage_tenant):
    s3 = storage_tenant.client("s3")
    _set_quota(cloud, "quota-s3", buckets=2, bucket_storage_mib=1)
    time.sleep(CREDENTIAL_TTL)  # Walrus reuses a key's quotas that long
    s3.put_object(Bucket="quota-s3-one", Key="a", Body=b"a" * (768 * 1024))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="quota-s3-two", Key="b", Body=b"b" * (512 * 1024))
    assert _code(e) == "EntityTooLarge"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket="quota-s3-two", Key="b")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Replacing an object frees its size first: the full MiB fits in place of the 768 KiB.
    s3.put_object(Bucket="quota-s3-one", Key="a", Body=b"c" * MIB)
    assert s3.head_object(Bucket="quota-s3-one", Key="a")["ContentLength"] == MIB
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="quota-s3-one", Key="tiny", Body=b"x")
    assert _code(e) == "EntityTooLarge"


def test_storage_usage_in_list_account_quotas(cloud, storage_tenant):
    """Buckets and storage used arrive with Walrus' usage reports; the account admin sees its own."""
    own = storage_tenant.client("euare")

    def reported():
        quotas = _quotas(own)
        return quotas if (quotas["buckets"]["Used"], quotas["bucket-storage-mib"]["Used"]) == (2, 1) else None

    quotas = wait_for(reported, timeout=30, what="Walrus' usage in ListAccountQuotas")
    assert {q["AccountName"] for q in quotas.values()} == {"quota-s3"}
    assert (quotas["buckets"]["Limit"], quotas["bucket-storage-mib"]["Limit"]) == (2, 1)
    assert quotas["bucket-storage-mib"]["Key"] == "s3:quota-buckettotalsize"
    assert _quotas(cloud.client("euare"), "quota-s3") == quotas
    with pytest.raises(botocore.exceptions.ClientError) as e:
        own.list_account_quotas(AccountName="quota-ec2")
    assert _code(e) == "AccessDenied"
    # A user of the account who is not its admin does not see them either.
    user = storage_tenant.user("quota-reader", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        user.client("euare").list_account_quotas()
    assert _code(e) == "AccessDenied"


def test_only_the_cloud_admin_sets_quotas(storage_tenant):
    euare = storage_tenant.client("euare")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        euare.put_account_policy(AccountName="quota-s3", PolicyName="quota",
                                 PolicyDocument=quota_policy({"buckets": 100}))
    assert _code(e) == "AccessDenied"
    # Limit statements belong in account policies only.
    iam = storage_tenant.client("iam")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.put_user_policy(UserName="admin", PolicyName="q", PolicyDocument=quota_policy({"instances": 100}))
    assert _code(e) == "MalformedPolicyDocument"
    iam.create_group(GroupName="quota-group")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.put_group_policy(GroupName="quota-group", PolicyName="q", PolicyDocument=quota_policy({"buckets": 100}))
    assert _code(e) == "MalformedPolicyDocument"
    assert iam.list_user_policies(UserName="admin")["PolicyNames"] == []
    assert iam.list_group_policies(GroupName="quota-group")["PolicyNames"] == []


@pytest.fixture
def admin_image(cloud, ec2, s3):
    return register_image(ec2, s3, "quota-admin-images", "quota-image")


def test_default_quota_property(cloud, ec2, admin_image):
    tenant = cloud.new_account("quota-default")
    image_id = register_image(tenant.client("ec2"), tenant.client("s3"), "quota-default-images", "quota-image")
    launcher = Launcher(tenant, image_id)
    properties = cloud.client("properties")
    admin_instances = []
    try:
        properties.modify_property_value(Name="cloud.quota.default.instances", Value="0")
        assert _quotas(cloud.client("euare"), "quota-default")["instances"]["Limit"] == 0
        assert launcher.refused() == "InstanceLimitExceeded"
        # An account's own quota wins over the default.
        _set_quota(cloud, "quota-default", instances=1)
        assert len(launcher.run()) == 1
        launcher.terminate_all()
        cloud.client("euare").delete_account_policy(AccountName="quota-default", PolicyName="quota")
        assert launcher.refused() == "InstanceLimitExceeded"
        # The cloud admin's account has no quotas at all.
        admin_instances = [i["InstanceId"] for i in ec2.run_instances(ImageId=admin_image, MinCount=1,
                                                                      MaxCount=1)["Instances"]]
        assert {q["Limit"] for q in _quotas(cloud.client("euare"), "eucalyptus").values()} == {-1}
    finally:
        reset = properties.modify_property_value(Name="cloud.quota.default.instances", Reset=True)
        launcher.terminate_all()
        if admin_instances:
            ec2.terminate_instances(InstanceIds=admin_instances)
            _wait_terminated(ec2, admin_instances)
    assert reset["Value"] == "-1" and reset["OldValue"] == "0"
    try:
        assert len(launcher.run()) == 1
    finally:
        launcher.terminate_all()
