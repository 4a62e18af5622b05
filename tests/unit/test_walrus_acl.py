"""Walrus access control lists over real boto3 and unsigned requests, held to what S3 answers:
canned ACLs, grant headers, AccessControlPolicy documents, and who each one lets in."""

import pytest
from botocore.exceptions import ClientError

from tests.unit.walrus_fixtures import (  # noqa: F401 (fixtures)
    ALICE, BOB, anonymous, bucket, code, error_code, new_bucket, s3, s3_bob, s3_reader, server, signed,
    status)

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
A, B = ALICE.account_id, BOB.account_id
OWNER = ("CanonicalUser", A, "FULL_CONTROL")


def grants(acl: dict) -> set:
    """An ACL's grants as (grantee type, id or uri, permission)."""
    return {(g["Grantee"]["Type"], g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"])
            for g in acl["Grants"]}


def allowed(call, **kwargs) -> bool:
    """Whether a call succeeds; an AccessDenied answer is False, any other error fails the test."""
    try:
        call(**kwargs)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("AccessDenied", "403"), exc.response["Error"]
        return False
    return True


def refused(call, **kwargs):
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc


# ---------------------------------------------------------------- canned ACLs

CANNED_GRANTS = {
    "private": set(),
    "public-read": {("Group", ALL_USERS, "READ")},
    "public-read-write": {("Group", ALL_USERS, "READ"), ("Group", ALL_USERS, "WRITE")},
    "authenticated-read": {("Group", AUTHENTICATED_USERS, "READ")},
    "bucket-owner-read": set(),  # the owner is the bucket owner: nothing to add
    "bucket-owner-full-control": set(),
}


@pytest.mark.parametrize("canned", list(CANNED_GRANTS) + ["log-delivery-write"])
def test_canned_bucket_acls(s3, canned):
    expected = {OWNER} | CANNED_GRANTS.get(canned, {("Group", LOG_DELIVERY, "WRITE"),
                                                    ("Group", LOG_DELIVERY, "READ_ACP")})
    name = new_bucket(s3, ACL=canned)
    acl = s3.get_bucket_acl(Bucket=name)
    assert acl["Owner"]["ID"] == A and grants(acl) == expected
    other = new_bucket(s3)
    s3.put_bucket_acl(Bucket=other, ACL=canned)
    assert grants(s3.get_bucket_acl(Bucket=other)) == expected


@pytest.mark.parametrize("canned", CANNED_GRANTS)
def test_canned_object_acls(s3, bucket, canned):
    s3.put_object(Bucket=bucket, Key="put", Body=b"x", ACL=canned)
    acl = s3.get_object_acl(Bucket=bucket, Key="put")
    assert acl["Owner"]["ID"] == A and grants(acl) == {OWNER} | CANNED_GRANTS[canned]
    s3.put_object(Bucket=bucket, Key="later", Body=b"x")
    assert grants(s3.get_object_acl(Bucket=bucket, Key="later")) == {OWNER}
    s3.put_object_acl(Bucket=bucket, Key="later", ACL=canned)
    assert grants(s3.get_object_acl(Bucket=bucket, Key="later")) == {OWNER} | CANNED_GRANTS[canned]


def test_aws_exec_read_gives_the_owner_full_control(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="aws-exec-read")
    assert OWNER in grants(s3.get_object_acl(Bucket=bucket, Key="k"))


def test_unknown_canned_acl(server, bucket):
    response = signed(server[0], "PUT", f"/{bucket}/k", body=b"x", headers={"x-amz-acl": "everyone-please"})
    assert response.status_code == 400 and error_code(response) == "InvalidArgument"


@pytest.mark.parametrize("canned, bob_lists, bob_writes, anyone_lists, anyone_writes", [
    ("private", False, False, False, False),
    ("public-read", True, False, True, False),
    ("public-read-write", True, True, True, True),
    ("authenticated-read", True, False, False, False),
])
def test_who_a_canned_bucket_acl_lets_in(server, s3, s3_bob, canned, bob_lists, bob_writes, anyone_lists,
                                         anyone_writes):
    name = new_bucket(s3, ACL=canned)
    s3.put_object(Bucket=name, Key="existing", Body=b"x")
    assert allowed(s3_bob.list_objects_v2, Bucket=name) is bob_lists
    assert allowed(s3_bob.list_objects, Bucket=name) is bob_lists
    assert allowed(s3_bob.put_object, Bucket=name, Key="from-bob", Body=b"b") is bob_writes
    assert allowed(s3_bob.delete_object, Bucket=name, Key="existing") is bob_writes
    listing = anonymous("GET", f"{server[0]}/{name}")
    assert listing.status_code == (200 if anyone_lists else 403)
    put = anonymous("PUT", f"{server[0]}/{name}/from-anyone", data=b"a")
    assert put.status_code == (200 if anyone_writes else 403)
    assert allowed(s3_bob.get_bucket_acl, Bucket=name) is False
    assert allowed(s3_bob.put_bucket_acl, Bucket=name, ACL="public-read-write") is False


@pytest.mark.parametrize("canned, bob_reads, anyone_reads", [
    ("private", False, False), ("public-read", True, True), ("public-read-write", True, True),
    ("authenticated-read", True, False), ("bucket-owner-read", False, False),
    ("bucket-owner-full-control", False, False),
])
def test_who_a_canned_object_acl_lets_in(server, s3, s3_bob, bucket, canned, bob_reads, anyone_reads):
    s3.put_object(Bucket=bucket, Key="k", Body=b"guarded", ACL=canned)
    assert allowed(s3_bob.get_object, Bucket=bucket, Key="k") is bob_reads
    assert allowed(s3_bob.head_object, Bucket=bucket, Key="k") is bob_reads
    response = anonymous("GET", f"{server[0]}/{bucket}/k")
    assert response.status_code == (200 if anyone_reads else 403)
    assert response.content == b"guarded" if anyone_reads else error_code(response) == "AccessDenied"
    assert allowed(s3_bob.get_object_acl, Bucket=bucket, Key="k") is False
    assert allowed(s3_bob.put_object_acl, Bucket=bucket, Key="k", ACL="public-read") is False


# ---------------------------------------------------------------- objects another account writes

@pytest.fixture
def shared(s3):
    """A bucket of ALICE's that BOB may write to (a WRITE grant)."""
    return new_bucket(s3, GrantWrite=f'id="{B}"', GrantFullControl=f'id="{A}"')


def test_the_writer_owns_what_it_writes_into_another_accounts_bucket(s3, s3_bob, shared):
    s3_bob.put_object(Bucket=shared, Key="bobs", Body=b"by bob")
    assert s3_bob.get_object(Bucket=shared, Key="bobs")["Body"].read() == b"by bob"
    assert s3_bob.get_object_acl(Bucket=shared, Key="bobs")["Owner"]["ID"] == B
    assert allowed(s3.get_object, Bucket=shared, Key="bobs") is False
    assert allowed(s3.get_object_acl, Bucket=shared, Key="bobs") is False
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=shared)["Contents"]] == ["bobs"]
    s3.delete_object(Bucket=shared, Key="bobs")  # the bucket owner may always delete
    assert "Contents" not in s3.list_objects_v2(Bucket=shared)


@pytest.mark.parametrize("canned, bucket_owner_gets", [("bucket-owner-read", "READ"),
                                                       ("bucket-owner-full-control", "FULL_CONTROL")])
def test_bucket_owner_canned_acls(s3, s3_bob, shared, canned, bucket_owner_gets):
    s3_bob.put_object(Bucket=shared, Key="bobs", Body=b"by bob", ACL=canned)
    acl = s3_bob.get_object_acl(Bucket=shared, Key="bobs")
    assert grants(acl) == {("CanonicalUser", B, "FULL_CONTROL"), ("CanonicalUser", A, bucket_owner_gets)}
    assert s3.get_object(Bucket=shared, Key="bobs")["Body"].read() == b"by bob"
    assert allowed(s3.put_object_acl, Bucket=shared, Key="bobs", ACL="bucket-owner-full-control") is (
        bucket_owner_gets == "FULL_CONTROL")


# ---------------------------------------------------------------- grant headers

@pytest.mark.parametrize("header, permission", [("GrantRead", "READ"), ("GrantWrite", "WRITE"),
                                                ("GrantReadACP", "READ_ACP"), ("GrantWriteACP", "WRITE_ACP"),
                                                ("GrantFullControl", "FULL_CONTROL")])
def test_bucket_grant_headers(s3, s3_bob, header, permission):
    name = new_bucket(s3, **{header: f'id="{B}"'})
    assert grants(s3.get_bucket_acl(Bucket=name)) == {("CanonicalUser", B, permission)}
    s3.put_object(Bucket=name, Key="existing", Body=b"x")  # the owner needs no grant of its own
    reads, writes = permission in ("READ", "FULL_CONTROL"), permission in ("WRITE", "FULL_CONTROL")
    reads_acl, writes_acl = permission in ("READ_ACP", "FULL_CONTROL"), permission in ("WRITE_ACP", "FULL_CONTROL")
    assert allowed(s3_bob.list_objects_v2, Bucket=name) is reads
    assert allowed(s3_bob.put_object, Bucket=name, Key="from-bob", Body=b"b") is writes
    assert allowed(s3_bob.delete_object, Bucket=name, Key="existing") is writes
    assert allowed(s3_bob.get_bucket_acl, Bucket=name) is reads_acl
    assert allowed(s3_bob.put_bucket_acl, Bucket=name, GrantFullControl=f'id="{B}"') is writes_acl
    assert allowed(s3_bob.delete_bucket, Bucket=name) is False


@pytest.mark.parametrize("header, permission", [("GrantRead", "READ"), ("GrantReadACP", "READ_ACP"),
                                                ("GrantWriteACP", "WRITE_ACP"), ("GrantFullControl", "FULL_CONTROL")])
def test_object_grant_headers(s3, s3_bob, bucket, header, permission):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", **{header: f'id="{B}"'})
    assert grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {("CanonicalUser", B, permission)}
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    assert allowed(s3_bob.get_object, Bucket=bucket, Key="k") is (permission in ("READ", "FULL_CONTROL"))
    assert allowed(s3_bob.get_object_acl, Bucket=bucket, Key="k") is (permission in ("READ_ACP", "FULL_CONTROL"))
    assert allowed(s3_bob.put_object_acl, Bucket=bucket, Key="k", GrantRead=f'id="{B}"') is (
        permission in ("WRITE_ACP", "FULL_CONTROL"))
    assert allowed(s3_bob.put_object, Bucket=bucket, Key="k", Body=b"overwrite") is False


def test_one_grant_header_names_many_grantees(server, s3, s3_bob, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x",
                  GrantRead=f'id="{B}", uri="{ALL_USERS}"', GrantReadACP=f'uri="{AUTHENTICATED_USERS}"')
    assert grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {
        ("CanonicalUser", B, "READ"), ("Group", ALL_USERS, "READ"), ("Group", AUTHENTICATED_USERS, "READ_ACP")}
    assert anonymous("GET", f"{server[0]}/{bucket}/k").status_code == 200
    assert allowed(s3_bob.get_object_acl, Bucket=bucket, Key="k")


def test_authenticated_users_group(server, s3, s3_bob, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead=f'uri="{AUTHENTICATED_USERS}"')
    assert s3_bob.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    assert anonymous("GET", f"{server[0]}/{bucket}/k").status_code == 403


@pytest.mark.parametrize("call", ["create_bucket", "put_bucket_acl", "put_object", "put_object_acl",
                                  "create_multipart_upload"])
def test_canned_acl_and_grant_headers_together(s3, bucket, call):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    args = {"create_bucket": {"Bucket": "never-made"}, "put_bucket_acl": {"Bucket": bucket},
            "put_object": {"Bucket": bucket, "Key": "k2", "Body": b"x"},
            "put_object_acl": {"Bucket": bucket, "Key": "k"},
            "create_multipart_upload": {"Bucket": bucket, "Key": "k3"}}[call]
    exc = refused(getattr(s3, call), ACL="public-read", GrantRead=f'id="{B}"', **args)
    assert code(exc) == "InvalidRequest" and status(exc) == 400
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {OWNER}
    assert grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {OWNER}


@pytest.mark.parametrize("value, error", [
    ('uri="http://acs.amazonaws.com/groups/global/Everybody"', "InvalidArgument"),
    ('uri="http://example.com/group"', "InvalidArgument"),
    ('emailAddress="bob@example.com"', "UnresolvableGrantByEmailAddress"),
    ("just nonsense", "InvalidArgument"),
    ('id=""', "InvalidArgument"),
])
def test_bad_grant_headers(s3, bucket, value, error):
    for call, args in ((s3.put_bucket_acl, {"Bucket": bucket}),
                       (s3.put_object, {"Bucket": bucket, "Key": "k", "Body": b"x"}),
                       (s3.create_bucket, {"Bucket": "never-made-either"})):
        exc = refused(call, GrantRead=value, **args)
        assert code(exc) == error and status(exc) == 400
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {OWNER} and "Contents" not in s3.list_objects_v2(Bucket=bucket)


# ---------------------------------------------------------------- AccessControlPolicy documents

def _policy(owner=A, *entries):
    return {"Owner": {"ID": owner}, "Grants": [
        {"Grantee": grantee, "Permission": permission} for grantee, permission in entries]}


def _user(account_id):
    return {"Type": "CanonicalUser", "ID": account_id}


def _group(uri):
    return {"Type": "Group", "URI": uri}


def test_bucket_access_control_policy_round_trip(s3, s3_bob, bucket):
    policy = _policy(A, (_user(A), "FULL_CONTROL"), (_user(B), "READ"), (_group(AUTHENTICATED_USERS), "READ_ACP"),
                     (_group(LOG_DELIVERY), "WRITE"))
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] == A and grants(acl) == {
        OWNER, ("CanonicalUser", B, "READ"), ("Group", AUTHENTICATED_USERS, "READ_ACP"),
        ("Group", LOG_DELIVERY, "WRITE")}
    assert all(g["Grantee"].get("DisplayName") for g in acl["Grants"] if g["Grantee"]["Type"] == "CanonicalUser")
    assert allowed(s3_bob.list_objects_v2, Bucket=bucket)
    assert grants(s3_bob.get_bucket_acl(Bucket=bucket)) == grants(acl)
    as_read = {name: acl[name] for name in ("Owner", "Grants")}
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=as_read)
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == grants(acl)


def test_object_access_control_policy_round_trip(server, s3, s3_bob, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=_policy(
        A, (_user(A), "FULL_CONTROL"), (_user(B), "WRITE_ACP"), (_group(ALL_USERS), "READ")))
    assert grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {
        OWNER, ("CanonicalUser", B, "WRITE_ACP"), ("Group", ALL_USERS, "READ")}
    assert anonymous("GET", f"{server[0]}/{bucket}/k").content == b"x"
    s3_bob.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=_policy(A, (_user(B), "READ")))
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert acl["Owner"]["ID"] == A and grants(acl) == {("CanonicalUser", B, "READ")}
    assert anonymous("GET", f"{server[0]}/{bucket}/k").status_code == 403


def test_an_access_control_policy_cannot_change_the_owner(s3, s3_bob, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for call, args in ((s3.put_bucket_acl, {"Bucket": bucket}), (s3.put_object_acl, {"Bucket": bucket, "Key": "k"})):
        exc = refused(call, AccessControlPolicy=_policy(B, (_user(B), "FULL_CONTROL")), **args)
        assert code(exc) == "AccessDenied" and status(exc) == 403
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {OWNER}
    assert s3.get_object_acl(Bucket=bucket, Key="k")["Owner"]["ID"] == A


@pytest.mark.parametrize("grantee, error", [
    ({"Type": "AmazonCustomerByEmail", "EmailAddress": "bob@example.com"}, "UnresolvableGrantByEmailAddress"),
    ({"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/Everybody"}, "InvalidArgument"),
])
def test_bad_grantees_in_an_access_control_policy(s3, bucket, grantee, error):
    exc = refused(s3.put_bucket_acl, Bucket=bucket, AccessControlPolicy=_policy(A, (grantee, "READ")))
    assert code(exc) == error and status(exc) == 400
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {OWNER}


def test_an_unknown_permission_is_malformed(s3, bucket):
    exc = refused(s3.put_bucket_acl, Bucket=bucket, AccessControlPolicy=_policy(A, (_user(B), "EVERYTHING")))
    assert code(exc) == "MalformedACLError" and status(exc) == 400


def test_a_multipart_upload_takes_its_acl_from_its_creation(server, s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL="public-read")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert grants(s3.get_object_acl(Bucket=bucket, Key="mp")) == {OWNER} | CANNED_GRANTS["public-read"]
    assert anonymous("GET", f"{server[0]}/{bucket}/mp").content == b"x"


def test_a_copy_gets_its_own_acl_not_the_sources(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", ACL="public-read")
    s3.copy_object(Bucket=bucket, Key="plain", CopySource={"Bucket": bucket, "Key": "src"})
    s3.copy_object(Bucket=bucket, Key="granted", CopySource={"Bucket": bucket, "Key": "src"},
                   GrantRead=f'id="{B}"')
    assert grants(s3.get_object_acl(Bucket=bucket, Key="plain")) == {OWNER}
    assert grants(s3.get_object_acl(Bucket=bucket, Key="granted")) == {("CanonicalUser", B, "READ")}


# ---------------------------------------------------------------- anonymous requests

def test_anonymous_reads_only_what_all_users_may(server, s3):
    public = new_bucket(s3, ACL="public-read")
    s3.put_object(Bucket=public, Key="open", Body=b"open", ACL="public-read")
    s3.put_object(Bucket=public, Key="closed", Body=b"closed")
    url = f"{server[0]}/{public}"
    assert anonymous("GET", f"{url}/open").content == b"open"
    assert anonymous("HEAD", f"{url}/open").status_code == 200
    closed = anonymous("GET", f"{url}/closed")
    assert closed.status_code == 403 and error_code(closed) == "AccessDenied"
    listing = anonymous("GET", url)
    assert listing.status_code == 200 and b"<Key>closed</Key>" in listing.content
    assert anonymous("GET", f"{url}?acl").status_code == 403
    assert anonymous("PUT", f"{url}/new", data=b"x").status_code == 403
    assert anonymous("DELETE", f"{url}/open").status_code == 403
    assert anonymous("GET", "http://" + server[0].split("//")[1] + "/").status_code == 403


def test_anonymous_cannot_list_a_private_bucket(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    response = anonymous("GET", f"{server[0]}/{bucket}")
    assert response.status_code == 403 and error_code(response) == "AccessDenied"
    assert anonymous("GET", f"{server[0]}/{bucket}/k").content == b"x"


def test_anonymous_writes_to_a_public_read_write_bucket(server, s3):
    name = new_bucket(s3, ACL="public-read-write")
    put = anonymous("PUT", f"{server[0]}/{name}/dropped", data=b"from anyone")
    assert put.status_code == 200
    assert s3.get_object(Bucket=name, Key="dropped")["Body"].read() == b"from anyone"
    assert anonymous("DELETE", f"{server[0]}/{name}/dropped").status_code == 204
    assert "Contents" not in s3.list_objects_v2(Bucket=name)


# ---------------------------------------------------------------- missing keys

def test_a_missing_key_is_no_such_key_only_to_who_may_list(server, s3, s3_bob, bucket):
    exc = refused(s3_bob.get_object, Bucket=bucket, Key="absent")
    assert code(exc) == "AccessDenied" and status(exc) == 403
    assert status(refused(s3_bob.head_object, Bucket=bucket, Key="absent")) == 403
    assert code(refused(s3_bob.get_object_acl, Bucket=bucket, Key="absent")) == "AccessDenied"
    assert anonymous("GET", f"{server[0]}/{bucket}/absent").status_code == 403
    exc = refused(s3.get_object, Bucket=bucket, Key="absent")
    assert code(exc) == "NoSuchKey" and status(exc) == 404
    listable = new_bucket(s3, ACL="public-read")
    exc = refused(s3_bob.get_object, Bucket=listable, Key="absent")
    assert code(exc) == "NoSuchKey" and status(exc) == 404
    assert status(refused(s3_bob.head_object, Bucket=listable, Key="absent")) == 404
    response = anonymous("GET", f"{server[0]}/{listable}/absent")
    assert response.status_code == 404 and error_code(response) == "NoSuchKey"


# ---------------------------------------------------------------- IAM policies and ACLs together

def test_a_users_policy_limits_it_within_its_account(s3, s3_reader, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3_reader.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    assert [o["Key"] for o in s3_reader.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    for call, args in ((s3_reader.put_object, {"Bucket": bucket, "Key": "k2", "Body": b"y"}),
                       (s3_reader.delete_object, {"Bucket": bucket, "Key": "k"}),
                       (s3_reader.get_bucket_acl, {"Bucket": bucket}),
                       (s3_reader.put_bucket_acl, {"Bucket": bucket, "ACL": "public-read"}),
                       (s3_reader.get_object_acl, {"Bucket": bucket, "Key": "k"}),
                       (s3_reader.put_object_acl, {"Bucket": bucket, "Key": "k", "ACL": "public-read"})):
        assert allowed(call, **args) is False
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {OWNER}


def test_a_users_policy_does_not_open_another_accounts_objects(s3_bob, s3_reader):
    theirs = new_bucket(s3_bob)
    s3_bob.put_object(Bucket=theirs, Key="open", Body=b"open", ACL="public-read")
    s3_bob.put_object(Bucket=theirs, Key="closed", Body=b"closed")
    assert s3_reader.get_object(Bucket=theirs, Key="open")["Body"].read() == b"open"
    assert allowed(s3_reader.get_object, Bucket=theirs, Key="closed") is False
    assert allowed(s3_reader.list_objects_v2, Bucket=theirs) is False
