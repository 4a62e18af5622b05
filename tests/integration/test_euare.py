"""The Euare (IAM) endpoint with stock boto3 IAM clients and our euare client, against the live CLC."""

import json

import botocore.exceptions
import pytest

pytestmark = pytest.mark.integration


def _code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def tenant(cloud):
    return cloud.new_account("euare-tenant")


def test_accounts_are_the_cloud_admins(cloud, tenant):
    euare = cloud.client("euare")
    names = {a["AccountName"]: a["AccountId"] for a in euare.list_accounts()["Accounts"]}
    assert names["euare-tenant"] == tenant.account_id and "eucalyptus" in names
    with pytest.raises(botocore.exceptions.ClientError) as e:
        euare.create_account(AccountName="euare-tenant")
    assert _code(e) == "EntityAlreadyExists"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        euare.create_account(AccountName="Not_Valid")
    assert _code(e) == "ValidationError"
    # An account's admin is not the cloud admin.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        tenant.client("euare").list_accounts()
    assert _code(e) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        tenant.client("euare").create_user(UserName="x", DelegateAccount="eucalyptus")
    assert _code(e) == "AccessDenied"


def test_users_groups_keys_and_passwords_with_stock_boto3(tenant):
    iam = tenant.client("iam")
    user = iam.create_user(UserName="alice", Path="/dev/")["User"]
    assert user["Arn"] == f"arn:aws:iam::{tenant.account_id}:user/dev/alice"
    assert iam.get_user(UserName="alice")["User"]["UserId"] == user["UserId"]
    assert iam.get_user()["User"]["UserName"] == "admin"  # no name: the caller
    assert [u["UserName"] for u in iam.list_users(PathPrefix="/dev/")["Users"]] == ["alice"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_user(UserName="alice")
    assert _code(e) == "EntityAlreadyExists"

    iam.create_group(GroupName="devs")
    iam.add_user_to_group(GroupName="devs", UserName="alice")
    assert [u["UserName"] for u in iam.get_group(GroupName="devs")["Users"]] == ["alice"]
    assert [g["GroupName"] for g in iam.list_groups()["Groups"]] == ["devs"]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="alice")["Groups"]] == ["devs"]

    key = iam.create_access_key(UserName="alice")["AccessKey"]
    assert key["Status"] == "Active" and len(key["SecretAccessKey"]) == 40
    listed = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key["AccessKeyId"], "Active")]
    assert "SecretAccessKey" not in listed[0]
    iam.update_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert iam.list_access_keys(UserName="alice")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    iam.create_access_key(UserName="alice")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_access_key(UserName="alice")
    assert _code(e) == "LimitExceeded"

    iam.create_login_profile(UserName="alice", Password="s3cret-Passw0rd")
    assert iam.get_login_profile(UserName="alice")["LoginProfile"]["UserName"] == "alice"

    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*",
                                                        "Resource": "*"}]}
    iam.put_user_policy(UserName="alice", PolicyName="describe", PolicyDocument=json.dumps(document))
    assert iam.list_user_policies(UserName="alice")["PolicyNames"] == ["describe"]
    assert iam.get_user_policy(UserName="alice", PolicyName="describe")["PolicyDocument"] == document
    iam.put_group_policy(GroupName="devs", PolicyName="g", PolicyDocument=json.dumps(document))
    assert iam.list_group_policies(GroupName="devs")["PolicyNames"] == ["g"]

    # A user with keys, policies, a group and a password cannot simply be deleted...
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.delete_user(UserName="alice")
    assert _code(e) == "DeleteConflict"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.delete_group(GroupName="devs")
    assert _code(e) == "DeleteConflict"
    # ...until each is removed, as in AWS.
    for k in iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="alice", AccessKeyId=k["AccessKeyId"])
    iam.delete_user_policy(UserName="alice", PolicyName="describe")
    iam.delete_login_profile(UserName="alice")
    iam.remove_user_from_group(GroupName="devs", UserName="alice")
    iam.delete_user(UserName="alice")
    iam.delete_group_policy(GroupName="devs", PolicyName="g")
    iam.delete_group(GroupName="devs")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.get_user(UserName="alice")
    assert _code(e) == "NoSuchEntity"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("document, message", [
    ("not json", "Syntax errors"),
    (json.dumps({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}), "Effect"),
    (json.dumps({"Version": "2012-10-17"}), "Statement"),
])
def test_malformed_policies_are_refused(tenant, document, message):
    iam = tenant.client("iam")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.put_user_policy(UserName="admin", PolicyName="bad", PolicyDocument=document)
    assert _code(e) == "MalformedPolicyDocument" and message in e.value.response["Error"]["Message"]


def test_bad_input_gets_iam_errors(tenant):
    iam = tenant.client("iam")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_user(UserName="x" * 65)
    assert _code(e) == "ValidationError"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.delete_user(UserName="admin")
    assert _code(e) == "DeleteConflict"


def test_cloud_admin_acts_inside_an_account(cloud, tenant):
    euare = cloud.client("euare")
    euare.create_user(UserName="made-by-admin", DelegateAccount="euare-tenant")
    assert "made-by-admin" in [u["UserName"] for u in tenant.client("iam").list_users()["Users"]]
    assert "made-by-admin" not in [u["UserName"] for u in cloud.client("iam").list_users()["Users"]]
    euare.delete_user(UserName="made-by-admin", DelegateAccount="euare-tenant")


def test_delete_account(cloud):
    doomed = cloud.new_account("doomed")
    doomed.client("iam").create_user(UserName="someone")
    euare = cloud.client("euare")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        euare.delete_account(AccountName="doomed")
    assert _code(e) == "DeleteConflict"
    euare.delete_account(AccountName="doomed", Recursive=True)
    assert "doomed" not in [a["AccountName"] for a in euare.list_accounts()["Accounts"]]
    # Its keys died with it, at once.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        doomed.client("ec2").describe_instances()
    assert _code(e) == "AuthFailure"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        euare.delete_account(AccountName="eucalyptus")
    assert _code(e) == "DeleteConflict"
