"""Tenant isolation: two accounts, each with a resource of every kind the cloud has so far.

Every Describe/List of one shows nothing of the other; every call of one on the
other's ids answers exactly as it does for an id that does not exist; the cloud
admin sees both.  S3 bucket names are global, so a bucket of another account
answers AccessDenied, as S3 does, and answers it the same whether or not the key
exists.
"""

import json

import botocore.exceptions
import pytest

from tests.cloudharness import wait_for

pytestmark = pytest.mark.integration


def _error(call, *args, **kwargs):
    """(code, HTTP status) of a call expected to fail."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _answer(call, *args, **kwargs):
    """What a call answers, success or error, without request ids and dates."""
    try:
        response = call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return ("error", e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
    response.pop("ResponseMetadata", None)
    return ("ok", json.dumps(response, default=str, sort_keys=True))


class Estate:
    """One account and one of everything it owns."""

    def __init__(self, cloud, name):
        self.tenant = cloud.new_account(name)
        self.ec2, self.s3, self.iam = (self.tenant.client(s) for s in ("ec2", "s3", "iam"))
        self.keypair = f"{name}-key"
        self.ec2.create_key_pair(KeyName=self.keypair)
        self.group, self.user = f"{name}-group", f"{name}-user"
        self.iam.create_group(GroupName=self.group)
        self.iam.create_user(UserName=self.user)
        self.bucket = f"{name}-bucket"
        self.s3.create_bucket(Bucket=self.bucket)
        self.s3.put_object(Bucket=self.bucket, Key="secret.txt", Body=b"only mine")
        self.s3.put_object(Bucket=self.bucket, Key="disk.img", Body=b"\0" * 4096)
        self.image = self.ec2.register_image(ImageLocation=f"{self.bucket}/disk.img", Name=f"{name}-image")["ImageId"]
        run = self.ec2.run_instances(ImageId=self.image, MinCount=1, MaxCount=1, KeyName=self.keypair)
        self.instance = run["Instances"][0]["InstanceId"]


@pytest.fixture(scope="module")
def estates(cloud):
    a, b = Estate(cloud, "iso-a"), Estate(cloud, "iso-b")
    for estate in (a, b):
        wait_for(lambda e=estate: e.ec2.describe_instances(InstanceIds=[e.instance])["Reservations"][0]
                 ["Instances"][0]["State"]["Name"] == "running", timeout=60, what=f"{estate.instance} running")
    yield a, b
    for estate in (a, b):
        estate.ec2.terminate_instances(InstanceIds=[estate.instance])


def _everything_listed(e: Estate) -> str:
    """Every Describe/List the account can make, as one text to search for the other's names."""
    listed = [
        e.ec2.describe_key_pairs(), e.ec2.describe_images(), e.ec2.describe_images(Owners=["self"]),
        e.ec2.describe_images(ExecutableUsers=["self"]), e.ec2.describe_instances(), e.iam.list_users(),
        e.iam.list_groups(), e.iam.get_account_summary(), e.s3.list_buckets(),
    ]
    return json.dumps(listed, default=str)


def test_describe_and_list_show_nothing_of_the_other(estates):
    for mine, theirs in (estates, estates[::-1]):
        text = _everything_listed(mine)
        for name in (theirs.keypair, theirs.image, theirs.instance, theirs.user, theirs.group, theirs.bucket,
                     theirs.tenant.account_id):
            assert name not in text, f"{mine.tenant.name} sees {name}"
        for name in (mine.keypair, mine.image, mine.instance, mine.user, mine.group, mine.bucket):
            assert name in text


def test_their_ids_answer_as_nonexistent_ids(estates):
    a, b = estates
    absent_instance, absent_image = "i-00000000", "emi-00000000"
    pairs = [
        (a.ec2.describe_instances, {"InstanceIds": [b.instance]}, {"InstanceIds": [absent_instance]}),
        (a.ec2.terminate_instances, {"InstanceIds": [b.instance]}, {"InstanceIds": [absent_instance]}),
        (a.ec2.describe_images, {"ImageIds": [b.image]}, {"ImageIds": [absent_image]}),
        (a.ec2.deregister_image, {"ImageId": b.image}, {"ImageId": absent_image}),
        (a.ec2.run_instances, {"ImageId": b.image, "MinCount": 1, "MaxCount": 1},
         {"ImageId": absent_image, "MinCount": 1, "MaxCount": 1}),
        (a.ec2.describe_key_pairs, {"KeyNames": [b.keypair]}, {"KeyNames": ["no-such-key"]}),
        (a.ec2.run_instances, {"ImageId": a.image, "MinCount": 1, "MaxCount": 1, "KeyName": b.keypair},
         {"ImageId": a.image, "MinCount": 1, "MaxCount": 1, "KeyName": "no-such-key"}),
        (a.iam.get_user, {"UserName": b.user}, {"UserName": "no-such-user"}),
        (a.iam.delete_user, {"UserName": b.user}, {"UserName": "no-such-user"}),
        (a.iam.get_group, {"GroupName": b.group}, {"GroupName": "no-such-group"}),
        (a.iam.add_user_to_group, {"GroupName": b.group, "UserName": a.user},
         {"GroupName": "no-such-group", "UserName": a.user}),
        (a.s3.get_object, {"Bucket": b.bucket, "Key": "secret.txt"}, {"Bucket": b.bucket, "Key": "absent.txt"}),
        (a.s3.delete_object, {"Bucket": b.bucket, "Key": "secret.txt"}, {"Bucket": b.bucket, "Key": "absent"}),
    ]
    for call, theirs, absent in pairs:
        got, expected = _answer(call, **theirs), _answer(call, **absent)
        assert got == expected, f"{call.__name__}({theirs}) answered {got}, not {expected}"
        assert got[0] == "error"
    # Deleting a key pair succeeds whether or not it exists (as in AWS), and leaves B's alone.
    a.ec2.delete_key_pair(KeyName=b.keypair)
    assert [k["KeyName"] for k in b.ec2.describe_key_pairs()["KeyPairs"]] == [b.keypair]


def test_their_buckets_refuse_every_operation(estates):
    a, b = estates
    assert _error(a.s3.list_objects_v2, Bucket=b.bucket) == ("AccessDenied", 403)
    assert _error(a.s3.head_bucket, Bucket=b.bucket)[1] == 403
    assert _error(a.s3.put_object, Bucket=b.bucket, Key="intruder", Body=b"x") == ("AccessDenied", 403)
    assert _error(a.s3.delete_bucket, Bucket=b.bucket) == ("AccessDenied", 403)
    assert _error(a.s3.create_bucket, Bucket=b.bucket)[0] == "BucketAlreadyExists"
    assert b.s3.get_object(Bucket=b.bucket, Key="secret.txt")["Body"].read() == b"only mine"
    assert "intruder" not in [o["Key"] for o in b.s3.list_objects_v2(Bucket=b.bucket).get("Contents", [])]


def test_nothing_of_theirs_changed(estates):
    a, b = estates
    state = b.ec2.describe_instances(InstanceIds=[b.instance])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "running"
    assert b.ec2.describe_images(ImageIds=[b.image])["Images"][0]["State"] == "available"
    assert b.iam.get_user(UserName=b.user)["User"]["UserName"] == b.user


def test_the_cloud_admin_sees_both(cloud, estates):
    a, b = estates
    ec2, s3, euare = cloud.client("ec2"), cloud.client("s3"), cloud.client("euare")
    # Without asking, the admin sees its own account only, as any account does...
    own = json.dumps(ec2.describe_instances(), default=str)
    assert a.instance not in own and b.instance not in own
    # ...and everything with "verbose" or an owner filter, as in the original.
    verbose = json.dumps(ec2.describe_instances(InstanceIds=["verbose"]), default=str)
    assert a.instance in verbose and b.instance in verbose
    by_owner = ec2.describe_instances(Filters=[{"Name": "owner-id", "Values": [b.tenant.account_id]}])
    assert [i["InstanceId"] for r in by_owner["Reservations"] for i in r["Instances"]] == [b.instance]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs(KeyNames=["verbose"])["KeyPairs"]]
    assert a.keypair in keys and b.keypair in keys
    images = [i["ImageId"] for i in ec2.describe_images(Owners=[a.tenant.account_id, b.tenant.account_id])["Images"]]
    assert sorted(images) == sorted([a.image, b.image])
    buckets = [x["Name"] for x in s3.list_buckets()["Buckets"]]
    assert a.bucket in buckets and b.bucket in buckets
    assert s3.get_object(Bucket=b.bucket, Key="secret.txt")["Body"].read() == b"only mine"
    for estate in estates:
        users = [u["UserName"] for u in euare.list_users(DelegateAccount=estate.tenant.name)["Users"]]
        assert estate.user in users
    names = [x["AccountName"] for x in euare.list_accounts()["Accounts"]]
    assert "iso-a" in names and "iso-b" in names
