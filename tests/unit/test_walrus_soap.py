"""Walrus's S3 SOAP endpoint driven by zeep over a real socket (eucacore.httpserver on loopback), beside
the REST endpoint on the same store, cross-checked with boto3."""

import json
from datetime import datetime, timedelta, timezone

import boto3
import botocore.config
import pytest
import requests
import zeep
from lxml import etree

from eucacore.principal import Principal
from walrus import soapapi
from walrus.api import WalrusApp
from walrus.store import WalrusStore
from tests.unit.test_walrus_api import serving

ALICE = Principal("AKIAALICE0000000000A", "alice-secret/key+0000000000000000000000", "111111111111",
                  is_account_admin=True)
BOB = Principal("AKIABOB00000000000BB", "bob-secret/key+00000000000000000000000000", "222222222222",
                is_account_admin=True)
READER = Principal("AKIAREADER00000000RR", "reader-secret/key+0000000000000000000000", "111111111111",
                   user_name="reader", policies=(json.dumps({"Version": "2012-10-17", "Statement": [
                       {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}),))
SMALL = Principal("AKIASMALL000000000SS", "small-secret/key+00000000000000000000000", "444444444444",
                  is_account_admin=True, quotas={"bucket-storage-mib": 0})
KEYS = {p.access_key: p for p in (ALICE, BOB, READER, SMALL)}
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
XSD = "{http://www.w3.org/2001/XMLSchema}"
ENVELOPE = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><soap:Body>{}</soap:Body></soap:Envelope>')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("walrus")
    store = WalrusStore(root / "bukkits", root / "walrus.db")
    rest = WalrusApp(store, KEYS.get)
    soap = soapapi.soap_application(rest)

    def route(environ, start_response):
        return (soap if soapapi.is_soap_request(environ) else rest)(environ, start_response)

    with serving(route) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def client(server):
    return zeep.Client(f"{server}/soap?wsdl")


@pytest.fixture(scope="module")
def s3(server):
    return rest_client(server, ALICE)


def rest_client(endpoint, creds):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=creds.access_key,
                        aws_secret_access_key=creds.secret_key, region_name="eucalyptus",
                        config=botocore.config.Config(s3={"addressing_style": "path"},
                                                      retries={"max_attempts": 1}))


def signed(operation, creds=ALICE, *, when=None, secret=None):
    """The AWSAccessKeyId, Timestamp and Signature elements of a request signed by ``creds``."""
    when = when or datetime.now(timezone.utc)
    timestamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return {"AWSAccessKeyId": creds.access_key, "Timestamp": timestamp,
            "Signature": soapapi.sign(secret or creds.secret_key, operation, timestamp)}


def call(client, operation, creds=ALICE, **fields):
    return getattr(client.service, operation)(**fields, **signed(operation, creds))


def fault(client, operation, creds=ALICE, **fields):
    """The faultcode (prefix dropped) and fault of a call that must fail."""
    with pytest.raises(zeep.exceptions.Fault) as exc:
        call(client, operation, creds, **fields)
    return exc.value.code.split(":")[-1], exc.value


def acl(client, *grants):
    """An AccessControlList of (grantee, permission); a grantee is an account id or a group URI."""
    user, group = client.get_type("ns0:CanonicalUser"), client.get_type("ns0:Group")
    return {"Grant": [{"Grantee": group(URI=who) if who.startswith("http") else user(ID=who),
                       "Permission": permission} for who, permission in grants]}


def get(client, bucket, key, creds=ALICE, **fields):
    return call(client, "GetObject", creds, Bucket=bucket, Key=key, GetMetadata=True, GetData=True,
                InlineData=True, **fields)


def put(client, bucket, key, data, creds=ALICE, **fields):
    return call(client, "PutObjectInline", creds, Bucket=bucket, Key=key, Data=data,
                ContentLength=len(data), **fields)


_counter = iter(range(10**6))


@pytest.fixture
def bucket(client):
    name = f"soap-bucket-{next(_counter)}"
    call(client, "CreateBucket", Bucket=name)
    return name


# ---------------------------------------------------------------- the WSDL

def _sequence(schema, type_name):
    node = schema.find(f"{XSD}complexType[@name='{type_name}']")
    return [e.get("name") for e in node.iter(f"{XSD}element")]


def test_wsdl_follows_the_2006_03_01_schema(server):
    wsdl = etree.fromstring(requests.get(f"{server}/soap?wsdl", timeout=10).content)
    schema = wsdl.find(f".//{XSD}schema[@targetNamespace='{soapapi.NS}']")
    operations = {o.get("name") for o in wsdl.iter("{http://schemas.xmlsoap.org/wsdl/}operation")}
    assert operations == set(soapapi.REST_OPERATIONS)
    signature = ["AWSAccessKeyId", "Timestamp", "Signature", "Credential"]
    assert _sequence(schema, "PutObjectInline") == [
        "Bucket", "Key", "Metadata", "Data", "ContentLength", "AccessControlList", "StorageClass", *signature]
    assert _sequence(schema, "GetObjectExtended") == [
        "Bucket", "Key", "GetMetadata", "GetData", "InlineData", "ByteRangeStart", "ByteRangeEnd",
        "IfModifiedSince", "IfUnmodifiedSince", "IfMatch", "IfNoneMatch",
        "ReturnCompleteObjectOnConditionFailure", *signature]
    assert _sequence(schema, "ListAllMyBuckets") == signature[:3]
    assert _sequence(schema, "ListAllMyBucketsResult") == ["Owner", "Buckets"]
    assert _sequence(schema, "ListAllMyBucketsEntry") == ["Name", "CreationDate"]
    assert _sequence(schema, "AccessControlPolicy") == ["Owner", "AccessControlList"]
    assert _sequence(schema, "Grant") == ["Grantee", "Permission"]
    assert _sequence(schema, "GetObjectResult") == ["Metadata", "Data", "LastModified", "ETag"]
    bases = {t.get("name"): t.find(f".//{XSD}extension").get("base").split(":")[-1]
             for t in schema.iterfind(f"{XSD}complexType") if t.find(f".//{XSD}extension") is not None}
    assert bases == {"User": "Grantee", "CanonicalUser": "User", "AmazonCustomerByEmail": "User",
                     "Group": "Grantee", "GetObjectResult": "Result"}


@pytest.mark.parametrize("method, path, query, headers, expected", [
    ("POST", "/soap", "", {"HTTP_SOAPACTION": '""', "CONTENT_TYPE": "text/xml"}, True),
    ("POST", "/soap", "", {"CONTENT_TYPE": "text/xml; charset=utf-8"}, True),
    ("POST", "/soap", "", {"HTTP_SOAPACTION": "GetObject"}, True),
    ("GET", "/soap", "wsdl", {}, True),
    ("POST", "/soap", "delete", {"CONTENT_TYPE": "text/xml"}, False),  # DeleteObjects on bucket "soap"
    ("POST", "/soap", "", {"CONTENT_TYPE": "multipart/form-data; boundary=x"}, False),  # a POST upload
    ("GET", "/soap", "", {}, False),
    ("PUT", "/soap", "", {"HTTP_SOAPACTION": '""'}, False),
    ("POST", "/soap/key", "", {"HTTP_SOAPACTION": '""'}, False),
    ("POST", "/", "", {"HTTP_SOAPACTION": '""'}, False),
])
def test_is_soap_request(method, path, query, headers, expected):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, **headers}
    assert soapapi.is_soap_request(environ) is expected


def test_a_rest_bucket_named_soap_still_works(s3):
    s3.create_bucket(Bucket="soap")
    s3.put_object(Bucket="soap", Key="k", Body=b"rest")
    assert [o["Key"] for o in s3.list_objects(Bucket="soap")["Contents"]] == ["k"]
    assert s3.delete_objects(Bucket="soap", Delete={"Objects": [{"Key": "k"}]})["Deleted"] == [{"Key": "k"}]
    s3.delete_bucket(Bucket="soap")


# ---------------------------------------------------------------- buckets

def test_bucket_lifecycle_seen_by_rest(client, s3):
    assert call(client, "CreateBucket", Bucket="soap-life") == "soap-life"
    listing = call(client, "ListAllMyBuckets")
    assert listing.Owner.ID == ALICE.account_id
    assert "soap-life" in [b.Name for b in listing.Buckets.Bucket]
    assert "soap-life" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    status = call(client, "DeleteBucket", Bucket="soap-life")
    assert (status.Code, status.Description) == (204, "No Content")
    assert "soap-life" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_list_all_my_buckets_shows_only_the_callers(client, bucket):
    call(client, "CreateBucket", BOB, Bucket="soap-bobs")
    assert "soap-bobs" not in [b.Name for b in call(client, "ListAllMyBuckets").Buckets.Bucket]
    assert [b.Name for b in call(client, "ListAllMyBuckets", BOB).Buckets.Bucket] == ["soap-bobs"]


def test_list_bucket_with_prefix_delimiter_marker_and_max_keys(client, s3, bucket):
    for key in ("a/1", "a/2", "b", "c", "d"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    result = call(client, "ListBucket", Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert [p.Prefix for p in result.CommonPrefixes] == ["a/"]
    assert [c.Key for c in result.Contents] == ["b"]
    assert result.IsTruncated and result.NextMarker == "b" and result.MaxKeys == 2
    rest = call(client, "ListBucket", Bucket=bucket, Marker="b")
    assert [c.Key for c in rest.Contents] == ["c", "d"] and not rest.IsTruncated
    entry = call(client, "ListBucket", Bucket=bucket, Prefix="a/").Contents[0]
    assert (entry.Key, entry.Size, entry.Owner.ID, entry.StorageClass) == ("a/1", 3, ALICE.account_id, "STANDARD")
    assert entry.ETag == s3.head_object(Bucket=bucket, Key="a/1")["ETag"]


def test_create_bucket_with_an_acl(client, s3):
    grants = acl(client, (ALICE.account_id, "FULL_CONTROL"), (BOB.account_id, "READ"))
    call(client, "CreateBucket", Bucket="soap-shared", AccessControlList=grants)
    seen = {(g["Grantee"].get("ID"), g["Permission"]) for g in s3.get_bucket_acl(Bucket="soap-shared")["Grants"]}
    assert seen == {(ALICE.account_id, "FULL_CONTROL"), (BOB.account_id, "READ")}
    assert call(client, "ListBucket", BOB, Bucket="soap-shared").Name == "soap-shared"


# ---------------------------------------------------------------- objects

def test_put_inline_is_read_by_rest(client, s3, bucket):
    metadata = [{"Name": "Content-Type", "Value": "text/plain"}, {"Name": "family", "Value": "Muntz"}]
    result = put(client, bucket, "Nelson", b"ha-ha", Metadata=metadata)
    got = s3.get_object(Bucket=bucket, Key="Nelson")
    assert got["Body"].read() == b"ha-ha"
    assert (got["ContentType"], got["Metadata"], got["ETag"]) == ("text/plain", {"family": "Muntz"}, result.ETag)
    assert abs(result.LastModified - got["LastModified"]) <= timedelta(seconds=1)


def test_rest_put_is_read_by_soap(client, s3, bucket):
    s3.put_object(Bucket=bucket, Key="doc", Body=b"0123456789", ContentType="text/csv",
                  Metadata={"colour": "blue"}, CacheControl="no-cache")
    result = get(client, bucket, "doc")
    assert (result.Status.Code, result.Data) == (200, b"0123456789")
    assert {m.Name: m.Value for m in result.Metadata} == {
        "Content-Type": "text/csv", "Cache-Control": "no-cache", "colour": "blue"}
    assert result.ETag == s3.head_object(Bucket=bucket, Key="doc")["ETag"]
    bare = call(client, "GetObject", Bucket=bucket, Key="doc", GetMetadata=False, GetData=False, InlineData=False)
    assert (bare.Data, bare.Metadata, bare.ETag) == (None, [], result.ETag)


def test_put_inline_replaces_and_checks_its_length(client, bucket):
    put(client, bucket, "k", b"first")
    put(client, bucket, "k", b"second")
    assert get(client, bucket, "k").Data == b"second"
    assert fault(client, "PutObjectInline", Bucket=bucket, Key="k", Data=b"abc",
                 ContentLength=5)[0] == "Client.InvalidArgument"
    assert fault(client, "PutObjectInline", Bucket=bucket, Key="k", Data=b"x", ContentLength=1,
                 StorageClass="GLACIER")[0] == "Client.InvalidStorageClass"


def test_inline_data_is_limited_to_1_mib(client, s3, bucket):
    limit = soapapi.MAX_INLINE_BYTES
    put(client, bucket, "max", b"m" * limit)
    assert s3.head_object(Bucket=bucket, Key="max")["ContentLength"] == limit
    code, error = fault(client, "PutObjectInline", Bucket=bucket, Key="over", Data=b"o" * (limit + 1),
                        ContentLength=limit + 1)
    assert code == "Client.InlineDataTooLarge"
    assert error.message == "Inline data exceeds the maximum allowed size."
    s3.put_object(Bucket=bucket, Key="big", Body=b"b" * (limit + 1))
    assert fault(client, "GetObject", Bucket=bucket, Key="big", GetMetadata=False, GetData=True,
                 InlineData=True)[0] == "Client.InlineDataTooLarge"
    ranged = call(client, "GetObjectExtended", Bucket=bucket, Key="big", GetMetadata=False, GetData=True,
                  InlineData=True, ByteRangeStart=limit - 1, ByteRangeEnd=limit)
    assert ranged.Data == b"bb"


def test_a_request_too_long_for_any_inline_put(server):
    body = ENVELOPE.format(f"<s3:ListAllMyBuckets><s3:AWSAccessKeyId>{'x' * soapapi.MAX_REQUEST_BYTES}"
                           "</s3:AWSAccessKeyId></s3:ListAllMyBuckets>")
    response = requests.post(f"{server}/soap", data=body, headers={"Content-Type": "text/xml"}, timeout=30)
    assert response.status_code == 500 and b"Client.MaxMessageLengthExceeded" in response.content


def test_get_object_extended_ranges_and_conditions(client, bucket):
    etag = put(client, bucket, "r", b"0123456789").ETag

    def extended(**fields):
        return call(client, "GetObjectExtended", Bucket=bucket, Key="r", GetMetadata=False, GetData=True,
                    InlineData=True, **fields)

    part = extended(ByteRangeStart=2, ByteRangeEnd=4)
    assert (part.Status.Code, part.Status.Description, part.Data) == (206, "Partial Content", b"234")
    assert extended(ByteRangeStart=7).Data == b"789"
    assert extended(IfMatch=[etag]).Data == b"0123456789"
    code, _ = fault(client, "GetObjectExtended", Bucket=bucket, Key="r", GetMetadata=False, GetData=True,
                    InlineData=True, ByteRangeStart=2, ByteRangeEnd=4, IfMatch=['"other"'])
    assert code == "Client.PreconditionFailed"
    whole = extended(ByteRangeStart=2, ByteRangeEnd=4, IfMatch=['"other"'],
                     ReturnCompleteObjectOnConditionFailure=True)
    assert (whole.Status.Code, whole.Data) == (200, b"0123456789")
    unchanged = extended(IfNoneMatch=[etag])
    assert (unchanged.Status.Code, unchanged.Status.Description, unchanged.Data) == (304, "Not Modified", None)
    assert (unchanged.ETag, unchanged.LastModified) == (etag, part.LastModified)
    assert extended(IfModifiedSince=part.LastModified).Status.Code == 304
    assert extended(IfModifiedSince=part.LastModified - timedelta(seconds=1)).Data == b"0123456789"
    assert fault(client, "GetObjectExtended", Bucket=bucket, Key="r", GetMetadata=False, GetData=True,
                 InlineData=True, ByteRangeStart=20)[0] == "Client.InvalidRange"


def test_get_object_data_comes_inline_only(client, bucket):
    put(client, bucket, "d", b"data")
    code, _ = fault(client, "GetObject", Bucket=bucket, Key="d", GetMetadata=True, GetData=True, InlineData=False)
    assert code == "Server.NotImplemented"


def test_delete_object(client, s3, bucket):
    put(client, bucket, "gone", b"x")
    status = call(client, "DeleteObject", Bucket=bucket, Key="gone")
    assert (status.Code, status.Description) == (204, "No Content")
    assert "Contents" not in s3.list_objects(Bucket=bucket)
    assert call(client, "DeleteObject", Bucket=bucket, Key="gone").Code == 204  # idempotent, as S3


# ---------------------------------------------------------------- ACLs

def test_object_acl_set_by_soap_is_seen_by_rest_and_lets_anyone_read(client, s3, bucket):
    put(client, bucket, "public", b"hello")
    call(client, "SetObjectAccessControlPolicy", Bucket=bucket, Key="public",
         AccessControlList=acl(client, (ALICE.account_id, "FULL_CONTROL"), (ALL_USERS, "READ")))
    grants = s3.get_object_acl(Bucket=bucket, Key="public")["Grants"]
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in grants
    anonymous = client.service.GetObject(Bucket=bucket, Key="public", GetMetadata=False, GetData=True,
                                         InlineData=True)
    assert anonymous.Data == b"hello"
    assert get(client, bucket, "public", BOB).Data == b"hello"


def test_acls_set_by_rest_are_seen_by_soap(client, s3, bucket):
    put(client, bucket, "k", b"x")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    s3.put_bucket_acl(Bucket=bucket, ACL="authenticated-read")
    policy = call(client, "GetObjectAccessControlPolicy", Bucket=bucket, Key="k")
    assert policy.Owner.ID == ALICE.account_id
    assert [(getattr(g.Grantee, "ID", None) or g.Grantee.URI, g.Permission)
            for g in policy.AccessControlList.Grant] == [(ALICE.account_id, "FULL_CONTROL"), (ALL_USERS, "READ")]
    bucket_policy = call(client, "GetBucketAccessControlPolicy", Bucket=bucket)
    assert [g.Grantee.URI for g in bucket_policy.AccessControlList.Grant if hasattr(g.Grantee, "URI")] == [
        "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"]


def test_bucket_acl_set_by_soap_is_seen_by_rest(client, s3, bucket):
    assert fault(client, "ListBucket", BOB, Bucket=bucket)[0] == "Client.AccessDenied"
    call(client, "SetBucketAccessControlPolicy", Bucket=bucket,
         AccessControlList=acl(client, (ALICE.account_id, "FULL_CONTROL"), (BOB.account_id, "READ")))
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert [(g["Grantee"]["ID"], g["Permission"]) for g in grants] == [
        (ALICE.account_id, "FULL_CONTROL"), (BOB.account_id, "READ")]
    assert call(client, "ListBucket", BOB, Bucket=bucket).Name == bucket
    assert fault(client, "SetBucketAccessControlPolicy", BOB, Bucket=bucket,
                 AccessControlList=acl(client, (BOB.account_id, "FULL_CONTROL")))[0] == "Client.AccessDenied"


def test_malformed_grants(client, bucket):
    untyped = {"Grant": [{"Grantee": client.get_type("ns0:Grantee")(), "Permission": "READ"}]}
    assert fault(client, "SetBucketAccessControlPolicy", Bucket=bucket,
                 AccessControlList=untyped)[0] == "Client.MalformedACLError"
    assert fault(client, "CreateBucket", Bucket="soap-untyped", AccessControlList=untyped)[0] == \
        "Client.MalformedACLError"
    by_email = {"Grant": [{"Grantee": client.get_type("ns0:AmazonCustomerByEmail")(EmailAddress="a@b.c"),
                           "Permission": "READ"}]}
    assert fault(client, "SetBucketAccessControlPolicy", Bucket=bucket,
                 AccessControlList=by_email)[0] == "Client.UnresolvableGrantByEmailAddress"
    bad_group = acl(client, ("http://acs.amazonaws.com/groups/global/Nobody", "READ"))
    assert fault(client, "SetBucketAccessControlPolicy", Bucket=bucket,
                 AccessControlList=bad_group)[0] == "Client.InvalidArgument"


# ---------------------------------------------------------------- refusals

def test_authentication_failures(client):
    cases = {
        "Client.SignatureDoesNotMatch": signed("ListAllMyBuckets", secret="not-the-secret"),
        "Client.RequestTimeTooSkewed": signed("ListAllMyBuckets",
                                              when=datetime.now(timezone.utc) - timedelta(minutes=16)),
        "Client.InvalidAccessKeyId": {**signed("ListAllMyBuckets"), "AWSAccessKeyId": "AKIANOBODY0000000000"},
        "Client.MissingSecurityElement": {"AWSAccessKeyId": ALICE.access_key},
    }
    temporary = {**signed("ListBucket"), "Credential": "a-session-token"}
    with pytest.raises(zeep.exceptions.Fault) as exc:
        client.service.ListBucket(Bucket="any", **temporary)
    assert exc.value.code.endswith("Server.NotImplemented")
    for expected, elements in cases.items():
        with pytest.raises(zeep.exceptions.Fault) as exc:
            client.service.ListAllMyBuckets(**elements)
        assert exc.value.code.endswith(expected), expected
    # signed for another operation: the signature covers the operation name
    with pytest.raises(zeep.exceptions.Fault) as exc:
        client.service.ListAllMyBuckets(**signed("CreateBucket"))
    assert exc.value.code.endswith("Client.SignatureDoesNotMatch")


def test_a_timestamp_within_15_minutes_is_accepted(client):
    late = signed("ListAllMyBuckets", when=datetime.now(timezone.utc) - timedelta(minutes=14))
    assert client.service.ListAllMyBuckets(**late).Owner.ID == ALICE.account_id


def test_anonymous_requests_get_what_acls_allow(client, bucket):
    with pytest.raises(zeep.exceptions.Fault) as exc:
        client.service.ListAllMyBuckets()
    assert exc.value.code.endswith("Client.AccessDenied")
    with pytest.raises(zeep.exceptions.Fault) as exc:
        client.service.ListBucket(Bucket=bucket)
    assert exc.value.code.endswith("Client.AccessDenied")


def test_another_accounts_private_bucket_is_access_denied(client, bucket):
    put(client, bucket, "secret", b"s")
    for operation, fields in [("ListBucket", {}), ("DeleteBucket", {}),
                              ("GetBucketAccessControlPolicy", {}), ("DeleteObject", {"Key": "secret"}),
                              ("GetObjectAccessControlPolicy", {"Key": "secret"}),
                              ("GetObject", {"Key": "secret", "GetMetadata": True, "GetData": True,
                                             "InlineData": True}),
                              ("PutObjectInline", {"Key": "bobs", "Data": b"b", "ContentLength": 1})]:
        assert fault(client, operation, BOB, Bucket=bucket, **fields)[0] == "Client.AccessDenied", operation
    assert fault(client, "GetObject", BOB, Bucket=bucket, Key="missing", GetMetadata=True, GetData=True,
                 InlineData=True)[0] == "Client.AccessDenied"


def test_iam_policies_apply_as_over_rest(client, bucket):
    put(client, bucket, "k", b"for reading")
    assert get(client, bucket, "k", READER).Data == b"for reading"
    assert fault(client, "PutObjectInline", READER, Bucket=bucket, Key="w", Data=b"w",
                 ContentLength=1)[0] == "Client.AccessDenied"
    assert fault(client, "DeleteObject", READER, Bucket=bucket, Key="k")[0] == "Client.AccessDenied"


def test_storage_quota_applies_to_inline_puts(client):
    call(client, "CreateBucket", SMALL, Bucket="soap-small")
    assert fault(client, "PutObjectInline", SMALL, Bucket="soap-small", Key="k", Data=b"x" * 10,
                 ContentLength=10)[0] == "Client.EntityTooLarge"


def test_missing_buckets_and_keys(client, bucket):
    code, error = fault(client, "ListBucket", Bucket="soap-no-such-bucket")
    assert (code, error.message) == ("Client.NoSuchBucket", "The specified bucket does not exist")
    assert error.detail.findtext("BucketName") == "soap-no-such-bucket"
    code, error = fault(client, "GetObject", Bucket=bucket, Key="Fred", GetMetadata=True, GetData=True,
                        InlineData=True)
    assert (code, error.message) == ("Client.NoSuchKey", "The specified key does not exist.")
    assert error.detail.findtext("Key") == "Fred"
    assert fault(client, "GetObjectAccessControlPolicy", Bucket=bucket, Key="Fred")[0] == "Client.NoSuchKey"
    assert fault(client, "DeleteBucket", Bucket="soap-no-such-bucket")[0] == "Client.NoSuchBucket"


def test_bucket_not_empty_and_bucket_names(client, bucket):
    put(client, bucket, "k", b"x")
    assert fault(client, "DeleteBucket", Bucket=bucket)[0] == "Client.BucketNotEmpty"
    for name in ("ab", "Upper", "-dash", "192.168.1.2", "bad!name"):
        assert fault(client, "CreateBucket", Bucket=name)[0] == "Client.InvalidBucketName", name
    assert fault(client, "CreateBucket", BOB, Bucket=bucket)[0] == "Client.BucketAlreadyExists"


def test_malformed_soap_requests(server):
    def post(body):
        response = requests.post(f"{server}/soap", data=body, timeout=10,
                                 headers={"Content-Type": "text/xml", "SOAPAction": '""'})
        return response.status_code, etree.fromstring(response.content).findtext(".//faultcode")

    assert post(b"<not xml") == (500, "soap11env:Client.InvalidSOAPRequest")
    bad_permission = ("<s3:SetBucketAccessControlPolicy><s3:Bucket>b</s3:Bucket><s3:AccessControlList>"
                      "<s3:Grant><s3:Grantee/><s3:Permission>EVERYTHING</s3:Permission></s3:Grant>"
                      "</s3:AccessControlList></s3:SetBucketAccessControlPolicy>")
    assert post(ENVELOPE.format(bad_permission)) == (500, "soap11env:Client.InvalidSOAPRequest")
    assert post(ENVELOPE.format("<s3:NoSuchOperation/>")) == (500, "soap11env:Client.InvalidSOAPRequest")
