"""walrus.sigv4: the fast SigV4 header check accepts exactly what botocore's signer signed, and
never a request that eucacore.awsapi.auth.verify_request would refuse."""

import hmac
import os
from urllib.parse import urlsplit

import botocore.credentials
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest

from eucacore.awsapi.auth import hmac_sha256, verify_request
from eucacore.awsapi.errors import AWSError
from tests.unit.test_walrus_api import ALICE
from walrus.sigv4 import verify_header

KEYS = {ALICE.access_key: ALICE}.get


def signed(method="GET", url="http://walrus:8773/bucket/key", headers=None, data=b"",
           secret=ALICE.secret_key, signer=S3SigV4Auth, service="s3"):
    """(method, raw path, query string, lower-case headers) of a request as a server receives it."""
    request = AWSRequest(method, url, data=data, headers=headers or {})
    signer(botocore.credentials.Credentials(ALICE.access_key, secret), service, "eucalyptus").add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    sent = {name.lower(): value for name, value in prepared.headers.items()}
    sent.setdefault("host", parts.netloc)
    return method, parts.path, parts.query, sent


def full_check(method, raw_path, query, headers):
    return verify_request(service="s3", method=method, raw_path=raw_path, query_string=query, headers=headers,
                          body=None, lookup=KEYS, allow_anonymous=True)


SDK_REQUESTS = [
    {},
    {"method": "PUT", "data": b"x" * 4096, "headers": {"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA==",
                                                        "x-amz-meta-note": "  two   spaces  "}},
    {"url": "http://walrus:8773/bucket/caf%C3%A9%20%2B%20plus/%7Etilde"},
    {"url": "http://walrus:8773/bucket?list-type=2&prefix=a%2Fb%20c&start-after=z%3D1&delimiter=%2F"},
    {"url": "http://walrus:8773/bucket?acl"},
    {"url": "http://walrus:8773/bucket?a-c=1&a=2&a=1&uploads"},
    {"method": "DELETE", "url": "http://walrus:8773/bucket/key?versionId=null"},
]


@pytest.mark.parametrize("shape", SDK_REQUESTS)
def test_accepts_what_the_sdk_signed(shape):
    request = signed(**shape)
    assert verify_header(*request, KEYS) is ALICE
    assert full_check(*request) is ALICE


def _tamper(request, what):
    method, raw_path, query, headers = request
    headers = dict(headers)
    if what == "path":
        raw_path += "x"
    elif what == "query":
        query = query.replace("2", "3")
    elif what == "method":
        method = "DELETE"
    elif what == "header":
        headers["x-amz-meta-note"] = "changed"
    elif what == "payload":
        headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    return method, raw_path, query, headers


@pytest.mark.parametrize("what", ["path", "query", "method", "header", "payload"])
def test_refuses_any_change_that_the_full_check_refuses(what):
    request = _tamper(signed("PUT", "http://walrus:8773/bucket/key?partNumber=2&uploadId=u",
                             headers={"x-amz-meta-note": "v"}, data=b"body"), what)
    assert verify_header(*request, KEYS) is None
    with pytest.raises(AWSError, match="SignatureDoesNotMatch"):
        full_check(*request)


def test_wrong_secret_and_unknown_key_are_left_to_the_full_check():
    wrong = signed(secret="not-alice-secret")
    assert verify_header(*wrong, KEYS) is None
    assert verify_header(*signed(), {}.get) is None
    with pytest.raises(AWSError, match="SignatureDoesNotMatch"):
        full_check(*wrong)


def test_old_requests_are_left_to_the_full_check():
    method, raw_path, query, headers = signed()
    headers = {**headers, "x-amz-date": "20000101T000000Z"}
    assert verify_header(method, raw_path, query, headers, KEYS) is None
    with pytest.raises(AWSError):
        full_check(method, raw_path, query, headers)


def test_other_schemes_and_scopes_are_left_to_the_full_check():
    ec2_scoped = signed(signer=SigV4Auth, service="ec2")
    assert verify_header(*ec2_scoped, KEYS) is None
    with pytest.raises(AWSError):
        full_check(*ec2_scoped)
    anonymous = ("GET", "/bucket/key", "", {"host": "walrus:8773"})
    assert verify_header(*anonymous, KEYS) is None
    assert full_check(*anonymous) is None


@pytest.mark.parametrize("key_length", [0, 32, 64, 65, 200])
def test_the_hmac_from_padded_states_is_rfc_2104s(key_length):
    key, message = os.urandom(key_length), os.urandom(300)
    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")
    assert hmac_sha256(key, b"") == hmac.digest(key, b"", "sha256")
