"""Identity policies decide what a user who is not its account's admin may do, on EC2, IAM and S3."""

import json

import botocore.exceptions
import pytest

pytestmark = pytest.mark.integration


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"]


def _policy(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.fixture(scope="module")
def tenant(cloud):
    tenant = cloud.new_account("policy-tenant")
    s3 = tenant.client("s3")
    for bucket in ("policy-bucket-a", "policy-bucket-b"):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="doc.txt", Body=bucket.encode())
    s3.put_object(Bucket="policy-bucket-a", Key="image.img", Body=b"\0" * 1024)
    return tenant


def test_deny_run_instances(tenant):
    image = tenant.client("ec2").register_image(ImageLocation="policy-bucket-a/image.img",
                                                Name="policy-image")["ImageId"]
    user = tenant.user("no-runner", _policy({"Effect": "Allow", "Action": "*", "Resource": "*"},
                                            {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*"}))
    ec2 = user.client("ec2")
    assert _code(ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1) == "UnauthorizedOperation"
    assert _code(ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1, DryRun=True) == "UnauthorizedOperation"
    assert tenant.client("ec2").describe_instances()["Reservations"] == []  # nothing was started
    # Everything else is allowed by the Allow *.
    ec2.describe_instances()
    ec2.describe_images(ImageIds=[image])
    assert _code(ec2.create_key_pair, KeyName="k", DryRun=True) == "DryRunOperation"
    user.client("s3").get_object(Bucket="policy-bucket-b", Key="doc.txt")


def test_only_get_object_on_one_bucket(tenant):
    user = tenant.user("reader", _policy({"Effect": "Allow", "Action": "s3:GetObject",
                                          "Resource": "arn:aws:s3:::policy-bucket-a/*"}))
    s3 = user.client("s3")
    assert s3.get_object(Bucket="policy-bucket-a", Key="doc.txt")["Body"].read() == b"policy-bucket-a"
    assert s3.head_object(Bucket="policy-bucket-a", Key="doc.txt")["ContentLength"] == 15
    assert _code(s3.get_object, Bucket="policy-bucket-b", Key="doc.txt") == "AccessDenied"
    assert _code(s3.put_object, Bucket="policy-bucket-a", Key="new.txt", Body=b"x") == "AccessDenied"
    assert _code(s3.delete_object, Bucket="policy-bucket-a", Key="doc.txt") == "AccessDenied"
    assert _code(s3.list_objects_v2, Bucket="policy-bucket-a") == "AccessDenied"
    assert _code(s3.list_buckets) == "AccessDenied"
    assert _code(s3.create_bucket, Bucket="policy-bucket-c") == "AccessDenied"
    assert _code(user.client("ec2").describe_instances) == "UnauthorizedOperation"
    assert _code(user.client("iam").list_users) == "AccessDenied"
    assert tenant.client("s3").get_object(Bucket="policy-bucket-a", Key="doc.txt")["Body"].read() == b"policy-bucket-a"


def test_group_policies_apply_to_members(tenant):
    iam = tenant.client("iam")
    member = tenant.user("member")
    ec2 = member.client("ec2")
    assert _code(ec2.describe_key_pairs) == "UnauthorizedOperation"  # no policy: implicit deny
    iam.create_group(GroupName="describers")
    iam.put_group_policy(GroupName="describers", PolicyName="describe", PolicyDocument=json.dumps(
        _policy({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"})))
    iam.add_user_to_group(GroupName="describers", UserName="member")
    ec2.describe_key_pairs()  # allowed at once, with no cache to wait out
    assert _code(ec2.create_key_pair, KeyName="nope") == "UnauthorizedOperation"
    iam.remove_user_from_group(GroupName="describers", UserName="member")
    assert _code(ec2.describe_key_pairs) == "UnauthorizedOperation"


def test_resource_level_policy_on_instances(tenant):
    """A user allowed to terminate one instance id only; ids come from the request."""
    user = tenant.user("terminator", _policy({"Effect": "Allow", "Action": "ec2:TerminateInstances",
                                              "Resource": "arn:aws:ec2:*:*:instance/i-11111111"}))
    ec2 = user.client("ec2")
    assert _code(ec2.terminate_instances, InstanceIds=["i-22222222"]) == "UnauthorizedOperation"
    # Allowed, so the answer is the EC2 one: that instance does not exist.
    assert _code(ec2.terminate_instances, InstanceIds=["i-11111111"]) == "InvalidInstanceID.NotFound"


def test_iam_policies(tenant):
    manager = tenant.user("user-manager", _policy({"Effect": "Allow", "Action": ["iam:CreateUser", "iam:GetUser"],
                                                   "Resource": "arn:aws:iam::*:user/managed/*"}))
    iam = manager.client("iam")
    iam.create_user(UserName="managed-1", Path="/managed/")
    assert _code(iam.create_user, UserName="elsewhere") == "AccessDenied"
    assert _code(iam.delete_user, UserName="managed-1") == "AccessDenied"
    assert iam.get_user(UserName="managed-1")["User"]["Path"] == "/managed/"
