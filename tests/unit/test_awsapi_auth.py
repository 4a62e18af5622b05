"""verify_request against requests signed by botocore's own signers."""

import base64
import datetime
import hmac
from hashlib import sha1
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import (HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth,
                           S3SigV4QueryAuth, SigV2Auth, SigV4Auth,
                           SigV4QueryAuth)
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from eucacore.awsapi.auth import Credentials, verify_request
from eucacore.awsapi.errors import AWSError

AKID = 'AKIAEUCATEST'
SECRET = 'sEcReT/key+with/odd=chars'
GOOD = BotoCredentials(AKID, SECRET)
WRONG = BotoCredentials(AKID, 'not-the-secret')
STRANGER = BotoCredentials('AKIAUNKNOWN', SECRET)
USER = Credentials(AKID, SECRET, account_id='123456789012', user_id='admin')
EC2_URL = 'http://clc.example.com:8773/services/compute'
S3_HOST = 'walrus.example.com:8773'
FORM = 'application/x-www-form-urlencoded; charset=utf-8'


def lookup(access_key):
    return USER if access_key == AKID else None


def now(offset=0):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)


def wire(request):
    """The keyword arguments verify_request sees for a signed AWSRequest."""
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = dict(prepared.headers.items())
    headers.setdefault('Host', parts.netloc)
    body = prepared.body
    if isinstance(body, str):
        body = body.encode('utf-8')
    return dict(method=prepared.method, raw_path=parts.path or '/',
                query_string=parts.query, headers=headers, body=body or b'')


def verify(service, request_kwargs, **extra):
    return verify_request(service=service, lookup=lookup, **request_kwargs, **extra)


def refused(service, request_kwargs, code, status, **extra):
    with pytest.raises(AWSError) as info:
        verify(service, request_kwargs, **extra)
    assert (info.value.code, info.value.status) == (code, status)
    return info.value


# ---------------------------------------------------------------- EC2

def ec2_post(creds=GOOD, signer=SigV4Auth, region='eucalyptus', service='ec2',
             body='Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1'):
    request = AWSRequest('POST', EC2_URL, data=body.encode(), headers={'Content-Type': FORM})
    signer(creds, service, region).add_auth(request)
    return request


def test_ec2_sigv4_header_accepted_with_any_region():
    assert verify('ec2', wire(ec2_post())) is USER
    assert verify('ec2', wire(ec2_post(region='us-east-1'))) is USER


def test_ec2_sigv4_bad_secret_unknown_key_tampering():
    refused('ec2', wire(ec2_post(creds=WRONG)), 'AuthFailure', 401)
    refused('ec2', wire(ec2_post(creds=STRANGER)), 'AuthFailure', 401)
    tampered = wire(ec2_post())
    tampered['body'] = tampered['body'].replace(b'i-1', b'i-2')
    refused('ec2', tampered, 'AuthFailure', 401)
    moved = wire(ec2_post())
    moved['raw_path'] = '/services/other'
    refused('ec2', moved, 'AuthFailure', 401)


def test_ec2_sigv4_wrong_service_scope_and_skew():
    refused('ec2', wire(ec2_post(service='s3')), 'IncompleteSignature', 400)
    refused('ec2', wire(ec2_post()), 'RequestExpired', 400, now=now(3600))
    assert verify('ec2', wire(ec2_post()), now=now(600)) is USER


def test_ec2_missing_signature():
    request = AWSRequest('POST', EC2_URL, data=b'Action=DescribeRegions',
                         headers={'Content-Type': FORM})
    refused('ec2', wire(request), 'MissingAuthenticationToken', 401)


def test_ec2_sigv4_presigned_query():
    request = AWSRequest('GET', EC2_URL + '?Action=DescribeRegions&Version=2016-11-15')
    SigV4QueryAuth(GOOD, 'ec2', 'eucalyptus', expires=300).add_auth(request)
    kwargs = wire(request)
    assert 'X-Amz-Signature' in kwargs['query_string']
    assert verify('ec2', kwargs) is USER
    refused('ec2', kwargs, 'RequestExpired', 400, now=now(400))
    tampered = dict(kwargs, query_string=kwargs['query_string'].replace(
        'DescribeRegions', 'DescribeImages'))
    refused('ec2', tampered, 'AuthFailure', 401)


def sigv2_request(creds=GOOD, method='POST'):
    params = {'Action': 'DescribeImages', 'Version': '2016-11-15',
              'Owner.1': 'self', 'Filter.1.Name': 'name', 'Filter.1.Value.1': 'a b*'}
    if method == 'POST':
        request = AWSRequest('POST', EC2_URL, data=params, headers={'Content-Type': FORM})
    else:
        request = AWSRequest('GET', EC2_URL, params=params)
    SigV2Auth(creds).add_auth(request)
    return request


def test_ec2_sigv2_form_body_and_query():
    assert verify('ec2', wire(sigv2_request())) is USER
    assert verify('ec2', wire(sigv2_request(method='GET'))) is USER
    refused('ec2', wire(sigv2_request(creds=WRONG)), 'AuthFailure', 401)
    refused('ec2', wire(sigv2_request(creds=STRANGER)), 'AuthFailure', 401)
    refused('ec2', wire(sigv2_request()), 'RequestExpired', 400, now=now(-3600))
    tampered = wire(sigv2_request())
    tampered['body'] = tampered['body'].replace(b'Owner.1=self', b'Owner.1=other')
    refused('ec2', tampered, 'AuthFailure', 401)


def test_ec2_sigv2_hmac_sha1_and_expires():
    expires = (now(300)).strftime('%Y-%m-%dT%H:%M:%SZ')
    params = {'Action': 'DescribeRegions', 'AWSAccessKeyId': AKID,
              'SignatureVersion': '2', 'SignatureMethod': 'HmacSHA1', 'Expires': expires}
    query = '&'.join(f"{quote(k, safe='')}={quote(v, safe='-_~')}"
                     for k, v in sorted(params.items()))
    to_sign = f'GET\nclc.example.com:8773\n/services/compute\n{query}'
    signature = base64.b64encode(hmac.new(SECRET.encode(), to_sign.encode(), sha1).digest())
    kwargs = dict(method='GET', raw_path='/services/compute',
                  query_string=f"{query}&Signature={quote(signature.decode(), safe='')}",
                  headers={'Host': 'clc.example.com:8773'}, body=b'')
    assert verify('ec2', kwargs) is USER
    refused('ec2', kwargs, 'RequestExpired', 400, now=now(600))


# ---------------------------------------------------------------- S3

def s3_put(creds=GOOD, url=f'http://{S3_HOST}/bucket/some%20key.txt', region='eucalyptus'):
    request = AWSRequest('PUT', url, data=b'hello world',
                         headers={'x-amz-meta-color': 'blue', 'Content-Type': 'text/plain'})
    S3SigV4Auth(creds, 's3', region).add_auth(request)
    return request


def test_s3_sigv4_header_streaming_and_full_body():
    kwargs = wire(s3_put())
    assert verify('s3', kwargs) is USER
    assert verify('s3', dict(kwargs, body=None)) is USER  # caller streams the body
    bad_body = dict(kwargs, body=b'other')
    refused('s3', bad_body, 'XAmzContentSHA256Mismatch', 400)


def test_s3_sigv4_header_refusals():
    refused('s3', wire(s3_put(creds=WRONG)), 'SignatureDoesNotMatch', 403)
    refused('s3', wire(s3_put(creds=STRANGER)), 'InvalidAccessKeyId', 403)
    header = wire(s3_put())
    header['headers']['x-amz-meta-color'] = 'red'
    refused('s3', header, 'SignatureDoesNotMatch', 403)
    path = wire(s3_put())
    path['raw_path'] = '/bucket/other'
    refused('s3', path, 'SignatureDoesNotMatch', 403)
    host = wire(s3_put())
    host['headers']['Host'] = 'evil.example.com'
    refused('s3', host, 'SignatureDoesNotMatch', 403)
    refused('s3', wire(s3_put()), 'RequestTimeTooSkewed', 403, now=now(-3600))


def test_s3_sigv4_unsigned_payload_accepted():
    request = AWSRequest('PUT', f'https://{S3_HOST}/bucket/k', data=b'data',
                         headers={'Content-MD5': 'jXd/OF09/siBXSD3SWAm3A=='})
    request.context['has_streaming_input'] = True  # what botocore does for PutObject
    S3SigV4Auth(GOOD, 's3', 'eucalyptus').add_auth(request)
    kwargs = wire(request)
    assert kwargs['headers']['X-Amz-Content-SHA256'] == 'UNSIGNED-PAYLOAD'
    assert verify('s3', dict(kwargs, body=None)) is USER


def test_s3_anonymous():
    kwargs = dict(method='GET', raw_path='/bucket/key', query_string='',
                  headers={'Host': S3_HOST}, body=None)
    refused('s3', kwargs, 'AccessDenied', 403)
    assert verify('s3', kwargs, allow_anonymous=True) is None


def test_s3_sigv4_presigned():
    request = AWSRequest('GET', f'http://{S3_HOST}/bucket/a%2Bb.txt?response-content-type=text%2Fplain')
    S3SigV4QueryAuth(GOOD, 's3', 'eucalyptus', expires=60).add_auth(request)
    kwargs = wire(request)
    assert verify('s3', dict(kwargs, body=None)) is USER
    refused('s3', dict(kwargs, body=None), 'AccessDenied', 403, now=now(120))
    tampered = dict(kwargs, body=None, query_string=kwargs['query_string'].replace(
        'text%2Fplain', 'text%2Fhtml'))
    refused('s3', tampered, 'SignatureDoesNotMatch', 403)


def hmacv1(url, method='GET', creds=GOOD, headers=None, auth_path=None):
    request = AWSRequest(method, url, headers=headers or {}, auth_path=auth_path)
    HmacV1Auth(creds).add_auth(request)
    return request


def test_s3_hmacv1_header_path_style_with_subresource():
    request = hmacv1(f'http://{S3_HOST}/bucket/key?acl', method='PUT',
                     headers={'x-amz-acl': 'public-read', 'Content-Type': 'text/plain'})
    assert verify('s3', wire(request)) is USER
    refused('s3', wire(hmacv1(f'http://{S3_HOST}/bucket/key', creds=WRONG)),
            'SignatureDoesNotMatch', 403)
    refused('s3', wire(hmacv1(f'http://{S3_HOST}/bucket/key', creds=STRANGER)),
            'InvalidAccessKeyId', 403)
    tampered = wire(request)
    tampered['headers']['x-amz-acl'] = 'private'
    refused('s3', tampered, 'SignatureDoesNotMatch', 403)
    subresource = wire(request)
    subresource['query_string'] = 'tagging'
    refused('s3', subresource, 'SignatureDoesNotMatch', 403)
    refused('s3', wire(request), 'RequestTimeTooSkewed', 403, now=now(3600))


def test_s3_hmacv1_virtual_host():
    request = hmacv1(f'http://bucket.{S3_HOST}/key', auth_path='/bucket/key')
    assert verify('s3', wire(request), service_host=S3_HOST) is USER


def test_s3_hmacv1_query():
    request = AWSRequest('GET', f'http://{S3_HOST}/bucket/key')
    HmacV1QueryAuth(GOOD, expires=60).add_auth(request)
    kwargs = wire(request)
    assert 'Signature=' in kwargs['query_string']
    assert verify('s3', kwargs) is USER
    refused('s3', kwargs, 'AccessDenied', 403, now=now(120))
    refused('s3', dict(kwargs, raw_path='/bucket/other'), 'SignatureDoesNotMatch', 403)


def test_credentials_repr_hides_secret():
    assert SECRET not in repr(USER)


def test_ec2_sigv4_header_on_get_with_odd_query_values():
    request = AWSRequest('GET', EC2_URL, params={
        'Action': 'DescribeImages', 'Filter.1.Name': 'name',
        'Filter.1.Value.1': 'a b*/ü~+'})
    SigV4Auth(GOOD, 'ec2', 'eucalyptus').add_auth(request)
    assert verify('ec2', wire(request)) is USER


def test_sigv4_without_date_is_malformed():
    kwargs = wire(ec2_post())
    del kwargs['headers']['X-Amz-Date']
    refused('ec2', kwargs, 'IncompleteSignature', 400)
