"""Items 4 and 5: component endpoints refuse callers without a cloud certificate; the AWS
endpoints refuse bad, missing or expired signatures with AWS's own error codes."""

import ssl
import urllib.request

import botocore.exceptions
import pytest
import requests

from eucacore import pki
from tests.cloudharness import Cloud

pytestmark = pytest.mark.integration

ENDPOINTS = {"cc": ("CC_PORT", "/axis2/services/EucalyptusCC"), "nc": ("NC_PORT", "/axis2/services/EucalyptusNC"),
             "sc": ("SC_PORT", "/services/Storage"), "clc-internal": ("CLOUD_SSL_PORT", "/services/Eucalyptus")}
ENVELOPE = (b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            b'xmlns:e="http://eucalyptus.ucsb.edu/"><soap:Body><e:DescribeInstances/></soap:Body></soap:Envelope>')


def _session(cloud: Cloud, cert=None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(cloud.keys_dir() / pki.CA_CERT)
    s.cert = cert
    return s


@pytest.fixture(scope="module")
def foreign_cert(tmp_path_factory):
    """A certificate of the right kind, issued by another CA."""
    keys = tmp_path_factory.mktemp("foreign")
    pki.create_ca(keys, name="intruder")
    pair = pki.issue(keys, "clc", "clc", ["127.0.0.1"])
    return str(pair.cert), str(pair.key)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_no_certificate_is_refused(cloud, endpoint):
    port, path = ENDPOINTS[endpoint]
    r = _session(cloud).post(f"https://127.0.0.1:{cloud.ports[port]}{path}", data=ENVELOPE,
                             headers={"Content-Type": "text/xml"}, timeout=10)
    assert r.status_code == 403 and b"no client certificate" in r.content


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_foreign_ca_certificate_is_refused(cloud, endpoint, foreign_cert):
    port, path = ENDPOINTS[endpoint]
    with pytest.raises(requests.exceptions.SSLError):
        _session(cloud, foreign_cert).post(f"https://127.0.0.1:{cloud.ports[port]}{path}", data=ENVELOPE,
                                           headers={"Content-Type": "text/xml"}, timeout=10)


def test_wrong_kind_of_component_is_refused(cloud):
    """The NC takes orders from cluster controllers only, not from a Walrus certificate."""
    keys = pki.component_keys(cloud.keys_dir(), "walrus")
    r = _session(cloud, (str(keys.cert), str(keys.key))).post(
        f"https://127.0.0.1:{cloud.ports['NC_PORT']}/axis2/services/EucalyptusNC", data=ENVELOPE,
        headers={"Content-Type": "text/xml"}, timeout=10)
    assert r.status_code == 403 and b"not allowed" in r.content


@pytest.mark.parametrize("name,port", [("clc", "CLOUD_PORT"), ("walrus", "WALRUS_PORT")])
def test_plain_healthcheck(cloud, name, port):
    with urllib.request.urlopen(f"http://127.0.0.1:{cloud.ports[port]}/healthcheck", timeout=10) as r:
        assert r.status == 200 and r.read() == b"OK\n"


@pytest.mark.parametrize("port", ["CC_PORT", "NC_PORT", "SC_PORT", "CLOUD_SSL_PORT"])
def test_tls_healthcheck(cloud, port):
    ctx = ssl.create_default_context(cafile=str(cloud.keys_dir() / pki.CA_CERT))
    with urllib.request.urlopen(f"https://127.0.0.1:{cloud.ports[port]}/healthcheck", timeout=10, context=ctx) as r:
        assert r.status == 200


def _code(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_ec2_bad_signature_and_unknown_key(cloud):
    bad_secret = cloud.client("ec2", secret_key="x" * 40)
    assert _code(bad_secret.describe_regions) == ("AuthFailure", 401)
    unknown = cloud.client("ec2", access_key="AKIAUNKNOWNUNKNOWN00", secret_key="x" * 40)
    assert _code(unknown.describe_regions) == ("AuthFailure", 401)


def test_ec2_sigv2_and_missing_signature(cloud):
    v2 = cloud.client("ec2", signature_version="v2")
    assert v2.describe_regions()["Regions"]
    r = requests.post(cloud.ec2_url, data={"Action": "DescribeRegions", "Version": "2016-11-15"}, timeout=10)
    assert r.status_code == 401 and b"<Code>MissingAuthenticationToken</Code>" in r.content


def test_s3_refusals(cloud):
    bad = cloud.client("s3", secret_key="x" * 40)
    assert _code(bad.list_buckets) == ("SignatureDoesNotMatch", 403)
    unknown = cloud.client("s3", access_key="AKIAUNKNOWNUNKNOWN00", secret_key="x" * 40)
    assert _code(unknown.list_buckets) == ("InvalidAccessKeyId", 403)
    anonymous = requests.get(f"{cloud.s3_url}/", timeout=10)
    assert anonymous.status_code == 403 and b"<Code>AccessDenied</Code>" in anonymous.content


def test_s3_presigned_urls_and_expiry(cloud, s3):
    s3.create_bucket(Bucket="presign")
    s3.put_object(Bucket="presign", Key="k", Body=b"hello")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presign", "Key": "k"}, ExpiresIn=60)
    session = requests.Session()
    session.trust_env = False
    assert session.get(url, timeout=10).content == b"hello"
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": "presign", "Key": "k"}, ExpiresIn=1)
    import time
    time.sleep(2)
    r = session.get(expired, timeout=10)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    v2 = cloud.client("s3", signature_version="s3")
    assert v2.get_object(Bucket="presign", Key="k")["Body"].read() == b"hello"
