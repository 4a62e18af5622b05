"""POST Object: browser form uploads signed by a policy, through WalrusApp on a real socket."""

import pytest
import requests

from tests.unit.test_walrus_api import client, server  # noqa: F401 (server is a fixture)

_counter = iter(range(10**6))


@pytest.fixture(params=["s3v4", "s3"])
def signed(request, server):  # noqa: F811
    s3 = client(server[0], signature_version=request.param)
    bucket = f"post-{request.param.replace('3v4', 'v4')}-{next(_counter)}"
    s3.create_bucket(Bucket=bucket)
    return server[0], s3, bucket


def _post(url, fields, data=b"hello form", filename="hello.txt"):
    session = requests.Session()
    session.trust_env = False
    return session.post(url, data=fields, files={"file": (filename, data)})


def test_signed_form_upload_with_filename_acl_and_metadata(signed):
    endpoint, s3, bucket = signed
    form = s3.generate_presigned_post(
        bucket, "up/${filename}", Fields={"acl": "public-read", "x-amz-meta-color": "blue",
                                          "Content-Type": "text/plain", "success_action_status": "201"},
        Conditions=[{"acl": "public-read"}, {"x-amz-meta-color": "blue"}, ["starts-with", "$Content-Type", "text/"],
                    {"success_action_status": "201"}, ["content-length-range", 1, 100]])
    response = _post(form["url"], form["fields"])
    assert response.status_code == 201, response.content
    assert b"<Key>up/hello.txt</Key>" in response.content
    head = s3.head_object(Bucket=bucket, Key="up/hello.txt")
    assert head["Metadata"] == {"color": "blue"} and head["ContentType"] == "text/plain"
    assert head["ETag"] == response.headers["ETag"]
    # public-read: anyone may read it without signing
    assert requests.get(f"{endpoint}/{bucket}/up/hello.txt").content == b"hello form"


def test_policy_length_range_and_conditions_are_enforced(signed):
    _, s3, bucket = signed
    form = s3.generate_presigned_post(bucket, "k", Conditions=[["content-length-range", 1, 100]])
    too_big = _post(form["url"], form["fields"], data=b"x" * 101)
    assert too_big.status_code == 400 and b"<Code>EntityTooLarge</Code>" in too_big.content
    tampered = dict(form["fields"], key="other")
    denied = _post(form["url"], tampered)
    assert denied.status_code == 403 and b"<Code>AccessDenied</Code>" in denied.content
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_wrong_secret_and_anonymous_form_are_refused(server):  # noqa: F811
    s3 = client(server[0])
    bucket = f"post-anon-{next(_counter)}"
    s3.create_bucket(Bucket=bucket)
    forged = client(server[0], secret="not-the-secret").generate_presigned_post(bucket, "k")
    response = _post(forged["url"], forged["fields"])
    assert response.status_code == 403 and b"SignatureDoesNotMatch" in response.content
    anonymous = _post(f"{server[0]}/{bucket}", {"key": "k"})
    assert anonymous.status_code == 403 and b"AccessDenied" in anonymous.content
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert _post(f"{server[0]}/{bucket}", {"key": "k"}).status_code == 204
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello form"
