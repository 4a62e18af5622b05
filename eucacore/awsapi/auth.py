"""Server-side verification of AWS request signatures.

The expected signature is recomputed with botocore's own signers
(``SigV4Auth``, ``S3SigV4Auth``, their query variants, ``HmacV1Auth``,
``SigV2Auth``) over a request rebuilt from what arrived on the wire, so the
server and the clients share one definition of every canonical form.
Secrets are never logged.
"""

import base64
import datetime
import functools
import hmac
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from hashlib import sha1, sha256
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import (EMPTY_SHA256_HASH, SIGV4_TIMESTAMP, HmacV1Auth,
                           S3SigV4Auth, S3SigV4QueryAuth, SigV2Auth,
                           SigV4Auth, SigV4QueryAuth)
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials as _BotoCredentials
from botocore.utils import parse_timestamp

from .errors import AWSError

#: How far a request's clock may be from ours, as AWS allows.
MAX_SKEW = datetime.timedelta(minutes=15)
#: The longest a SigV4 presigned URL may live (7 days), as AWS allows.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


@dataclass
class Credentials:
    """A user's access key pair and whom it belongs to."""

    access_key: str
    secret_key: str
    account_id: str = ''
    user_id: str = ''

    def __repr__(self):  # keep the secret out of logs and tracebacks
        return (f'Credentials(access_key={self.access_key!r}, '
                f'account_id={self.account_id!r}, user_id={self.user_id!r})')


class _Failures:
    """The error each service answers for each kind of auth failure."""

    def __init__(self, service):
        self.s3 = service == 's3'

    def missing(self):
        if self.s3:
            return AWSError('AccessDenied',
                            'Anonymous access is forbidden for this operation', 403)
        return AWSError('MissingAuthenticationToken',
                        'Request is missing Authentication Token', 401)

    def unknown_key(self):
        if self.s3:
            return AWSError('InvalidAccessKeyId', 'The AWS Access Key Id you provided '
                            'does not exist in our records.', 403)
        return AWSError('AuthFailure', 'AWS was not able to validate the provided '
                        'access credentials', 401)

    def bad_signature(self):
        if self.s3:
            return AWSError('SignatureDoesNotMatch', 'The request signature we '
                            'calculated does not match the signature you provided. '
                            'Check your key and signing method.', 403)
        return AWSError('AuthFailure', 'AWS was not able to validate the provided '
                        'access credentials', 401)

    def malformed(self, message):
        if self.s3:
            return AWSError('AuthorizationHeaderMalformed', message, 400)
        return AWSError('IncompleteSignature', message, 400)

    def skewed(self):
        if self.s3:
            return AWSError('RequestTimeTooSkewed', 'The difference between the '
                            'request time and the current time is too large.', 403)
        return AWSError('RequestExpired', 'Request has expired.', 400)

    def expired(self):
        if self.s3:
            return AWSError('AccessDenied', 'Request has expired', 403)
        return AWSError('RequestExpired', 'Request has expired.', 400)


class _Request:
    """The parts of the incoming request every scheme looks at."""

    def __init__(self, service, method, raw_path, query_string, headers, body,
                 service_host):
        self.service = service
        self.method = method.upper()
        self.raw_path, _, extra = raw_path.partition('?')
        self.raw_path = self.raw_path or '/'
        self.query_string = '&'.join(q for q in (query_string, extra) if q)
        self.query = parse_qsl(self.query_string, keep_blank_values=True)
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.service_host = service_host
        self.host = self.headers.get('host', '')
        self.params = dict(self.query)
        content_type = self.headers.get('content-type', '')
        if (service != 's3' and body
                and content_type.startswith('application/x-www-form-urlencoded')):
            form = parse_qsl(body.decode('utf-8', 'replace'), keep_blank_values=True)
            self.params.update(form)


def verify_request(*, service, method, raw_path, query_string, headers, body,
                   lookup, region=None, now=None, allow_anonymous=False,
                   service_host=None):
    """The signer's Credentials if the request is properly signed; AWSError if not.

    ``lookup(access_key)`` gives the Credentials of a key or None.  For s3,
    ``body`` is None when the caller streams it: the x-amz-content-sha256
    value is then trusted here and the caller checks the streamed payload.
    ``service_host`` (e.g. 'walrus.example.com') lets HmacV1 rebuild the
    canonical resource of virtual-host-style requests.  An unsigned s3
    request returns None when ``allow_anonymous``.  ``region`` is accepted for
    symmetry: any region named in the credential scope is fine.
    """
    request = _Request(service, method, raw_path, query_string, headers, body,
                       service_host)
    failures = _Failures(service)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    authorization = request.headers.get('authorization', '')
    if authorization.startswith('AWS4-HMAC-SHA256'):
        return _verify_sigv4_header(request, authorization, lookup, now, failures)
    if 'X-Amz-Algorithm' in request.params:
        return _verify_sigv4_query(request, lookup, now, failures)
    if service == 's3' and authorization.startswith('AWS '):
        return _verify_hmacv1_header(request, authorization, lookup, now, failures)
    if service == 's3' and 'Signature' in request.params:
        return _verify_hmacv1_query(request, lookup, now, failures)
    if service != 's3' and 'Signature' in request.params:
        return _verify_sigv2(request, lookup, now, failures)
    if authorization:
        raise failures.malformed('Unsupported Authorization header')
    if service == 's3' and allow_anonymous:
        return None
    raise failures.missing()


# ---------------------------------------------------------------- SigV4

def _parse_scope(credential, request, failures):
    parts = credential.split('/')
    if len(parts) < 5 or parts[-1] != 'aws4_request':
        raise failures.malformed(f'Malformed credential scope {credential!r}')
    access_key = '/'.join(parts[:-4])
    date, region, service = parts[-4], parts[-3], parts[-2]
    if service != request.service:
        raise failures.malformed(f'Credential should be scoped to a valid service: '
                                 f'{request.service!r}, not {service!r}')
    return access_key, date, region


def _sigv4_time(text, failures):
    try:
        value = _compact_time(text)
    except (TypeError, ValueError):
        try:
            value = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise failures.malformed(f'Invalid request date {text!r}') from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def _compact_time(text):
    """datetime of a SIGV4_TIMESTAMP ('20130524T000000Z'), without strptime's cost."""
    if len(text) != 16 or text[8] != 'T' or text[15] != 'Z':
        raise ValueError(text)
    return datetime.datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]),
                             int(text[11:13]), int(text[13:15]), tzinfo=datetime.timezone.utc)


def _check_skew(when, now, failures):
    if abs(now - when) > MAX_SKEW:
        raise failures.skewed()


def _verify_sigv4_header(request, authorization, lookup, now, failures):
    fields = {}
    for part in authorization[len('AWS4-HMAC-SHA256'):].split(','):
        name, _, value = part.strip().partition('=')
        fields[name] = value
    if not {'Credential', 'SignedHeaders', 'Signature'} <= fields.keys():
        raise failures.malformed('Authorization header requires Credential, '
                                 'SignedHeaders and Signature')
    date_text = request.headers.get('x-amz-date') or request.headers.get('date')
    if not date_text:
        raise failures.malformed('Missing X-Amz-Date or Date header')
    when = _sigv4_time(date_text, failures)
    _check_skew(when, now, failures)
    signer_class = S3SigV4Auth if request.service == 's3' else SigV4Auth
    signed = fields['SignedHeaders'].split(';')
    return _check_sigv4(request, signer_class, fields['Credential'], signed,
                        fields['Signature'], when, request.query, lookup, failures)


def _verify_sigv4_query(request, lookup, now, failures):
    params = request.params
    if params.get('X-Amz-Algorithm') != 'AWS4-HMAC-SHA256':
        raise failures.malformed('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    needed = ('X-Amz-Credential', 'X-Amz-Date', 'X-Amz-SignedHeaders',
              'X-Amz-Signature')
    if any(name not in params for name in needed):
        raise failures.malformed('Query-string authentication requires the '
                                 + ', '.join(needed) + ' parameters')
    when = _sigv4_time(params['X-Amz-Date'], failures)
    if when - now > MAX_SKEW:
        raise failures.skewed()
    try:
        expires = int(params.get('X-Amz-Expires', SigV4QueryAuth.DEFAULT_EXPIRES))
    except ValueError:
        raise failures.malformed('X-Amz-Expires should be a number') from None
    if not 0 <= expires <= MAX_PRESIGN_SECONDS:
        raise failures.malformed('X-Amz-Expires must be between 0 and 604800')
    if now > when + datetime.timedelta(seconds=expires):
        raise failures.expired()
    signer_class = S3SigV4QueryAuth if request.service == 's3' else SigV4QueryAuth
    query = [(k, v) for k, v in request.query if k != 'X-Amz-Signature']
    return _check_sigv4(request, signer_class, params['X-Amz-Credential'],
                        params['X-Amz-SignedHeaders'].split(';'),
                        params['X-Amz-Signature'], when, query, lookup, failures)


def _check_sigv4(request, signer_class, credential, signed_headers, signature,
                 when, query, lookup, failures):
    access_key, scope_date, region = _parse_scope(credential, request, failures)
    timestamp = when.strftime(SIGV4_TIMESTAMP)
    if scope_date != timestamp[:8]:
        raise failures.malformed('Credential scope date does not match the request date')
    if 'host' not in signed_headers:
        raise failures.malformed("The 'host' header must be signed")
    creds = lookup(access_key)
    if creds is None:
        raise failures.unknown_key()
    headers = {}
    for name in signed_headers:
        if name not in request.headers:
            raise failures.bad_signature()
        headers[name] = request.headers[name]
    _check_payload_hash(request, headers, failures)
    # The rebuilt request carries only the signed headers so that botocore's
    # signer canonicalizes exactly those, with the values that arrived.
    aws_request = AWSRequest(method=request.method,
                             url=f'http://{request.host}{request.raw_path}',
                             headers=headers, params=list(query),
                             data=request.body or b'')
    aws_request.context['timestamp'] = timestamp
    signer = signer_class(_BotoCredentials(access_key, creds.secret_key),
                          request.service, region)
    canonical = signer.canonical_request(aws_request)
    key = signing_key(creds.secret_key, timestamp[:8], region, request.service)
    expected = hmac_sha256(key, signer.string_to_sign(aws_request, canonical).encode('utf-8')).hex()
    if not hmac.compare_digest(expected, signature):
        raise failures.bad_signature()
    return creds


@functools.lru_cache(maxsize=1024)
def signing_key(secret_key, date, region, service):
    """The SigV4 signing key of a secret for one day, region and service (derived once)."""
    key = hmac.new(('AWS4' + secret_key).encode('utf-8'), date.encode('utf-8'), sha256).digest()
    for part in (region, service, 'aws4_request'):
        key = hmac.new(key, part.encode('utf-8'), sha256).digest()
    return key


def hmac_sha256(key, message):
    """HMAC-SHA256 (RFC 2104) of ``message`` under a signing key, from copies of the key's two
    padded hash states.  OpenSSL 3's one-call HMAC looks the algorithm up by name each time:
    twice the cost, and most of a signature check's on a busy S3 port."""
    inner, outer = _padded(key)
    inner, outer = inner.copy(), outer.copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.digest()


@functools.lru_cache(maxsize=1024)  # one signing key per secret, day, region and service
def _padded(key):
    """SHA-256 states that have taken in ``key`` XOR ipad and XOR opad."""
    block = (sha256(key).digest() if len(key) > 64 else key).ljust(64, b'\0')
    return sha256(bytes(b ^ 0x36 for b in block)), sha256(bytes(b ^ 0x5C for b in block))


def _check_payload_hash(request, signed, failures):
    """The body's hash for ec2; S3 trusts its x-amz-content-sha256 value here."""
    claimed = request.headers.get('x-amz-content-sha256')
    if request.service == 's3':
        if claimed is None and request.body is None and 'authorization' in request.headers:
            raise AWSError('InvalidRequest', 'Missing required header for this '
                           'request: x-amz-content-sha256', 400)
        if (claimed and request.body is not None and not claimed.startswith('STREAMING-')
                and claimed != 'UNSIGNED-PAYLOAD'
                and not hmac.compare_digest(claimed, sha256(_bytes(request.body)).hexdigest())):
            raise AWSError('XAmzContentSHA256Mismatch', 'The provided '
                           "'x-amz-content-sha256' header does not match what was computed.",
                           400)
        return
    if claimed is not None and 'x-amz-content-sha256' in signed:
        actual = sha256(request.body).hexdigest() if request.body else EMPTY_SHA256_HASH
        if not hmac.compare_digest(claimed, actual):
            raise failures.bad_signature()


def _bytes(body):
    return body if isinstance(body, (bytes, bytearray)) else b''


# ---------------------------------------------------------------- S3 HmacV1

class _HmacV1Verifier(HmacV1Auth):
    """HmacV1Auth whose Date line is the one the client sent, not the clock."""

    def __init__(self, credentials, date_line):
        super().__init__(credentials)
        self._date_line = date_line

    def _get_date(self):
        return self._date_line


def _verify_hmacv1_header(request, authorization, lookup, now, failures):
    access_key, _, signature = authorization[4:].strip().rpartition(':')
    if not access_key or not signature:
        raise failures.malformed('Authorization header is invalid')
    date_text = request.headers.get('x-amz-date') or request.headers.get('date')
    if not date_text:
        raise AWSError('AccessDenied', 'AWS authentication requires a valid Date '
                       'or x-amz-date header', 403)
    _check_skew(_sigv4_time(date_text, failures), now, failures)
    # Some clients (boto 2) sign an empty Date line when x-amz-date is sent.
    date_lines = [request.headers.get('date', '')]
    if 'x-amz-date' in request.headers:
        date_lines.append('')
    return _check_hmacv1(request, access_key, signature, date_lines,
                         request.headers, lookup, failures)


def _verify_hmacv1_query(request, lookup, now, failures):
    params = request.params
    if 'AWSAccessKeyId' not in params or 'Expires' not in params:
        raise AWSError('AccessDenied', 'Query-string authentication requires the '
                       'Signature, Expires and AWSAccessKeyId parameters', 403)
    try:
        expires = int(params['Expires'])
    except ValueError:
        raise AWSError('AccessDenied', 'Invalid date (should be seconds since epoch)',
                       403) from None
    if now.timestamp() > expires:
        raise failures.expired()
    # x-amz-* values travel in the query string of a presigned URL.
    headers = dict(request.headers)
    for name, value in request.query:
        if name.lower().startswith('x-amz-') and name.lower() not in headers:
            headers[name.lower()] = value
    return _check_hmacv1(request, params['AWSAccessKeyId'], params['Signature'],
                         [params['Expires']], headers, lookup, failures)


def _check_hmacv1(request, access_key, signature, date_lines, headers, lookup,
                  failures):
    creds = lookup(access_key)
    if creds is None:
        raise failures.unknown_key()
    auth_path = request.raw_path
    bucket = _virtual_host_bucket(request.host, request.service_host)
    if bucket is not None:
        auth_path = f'/{bucket}{request.raw_path}'
    split = urlsplit(f'{request.raw_path}?{request.query_string}')
    # A bucket's canonical resource is "/bucket/" to botocore and "/bucket" to others.
    auth_paths = [auth_path]
    if auth_path.count('/') == 1 and len(auth_path) > 1:
        auth_paths.append(auth_path + '/')
    http_headers = HTTPHeaders()
    for name, value in headers.items():
        if name != 'date':
            http_headers[name] = value
    for date_line in date_lines:
        signer = _HmacV1Verifier(_BotoCredentials(access_key, creds.secret_key),
                                 date_line)
        for path in auth_paths:
            expected = signer.get_signature(request.method, split, http_headers,
                                            auth_path=path)
            if hmac.compare_digest(expected, signature):
                return creds
    raise failures.bad_signature()


def _virtual_host_bucket(host, service_host):
    if not host or not service_host:
        return None
    hostname = host.rsplit(':', 1)[0].lower().rstrip('.')
    service_name = service_host.rsplit(':', 1)[0].lower()
    if hostname.endswith('.' + service_name):
        return hostname[:-len(service_name) - 1]
    return None


# ---------------------------------------------------------------- EC2 SigV2

def _verify_sigv2(request, lookup, now, failures):
    params = request.params
    if params.get('SignatureVersion') != '2':
        raise failures.malformed('Only SignatureVersion 2 or 4 is supported')
    method = params.get('SignatureMethod', 'HmacSHA256')
    digest = {'HmacSHA256': sha256, 'HmacSHA1': sha1}.get(method)
    if digest is None:
        raise failures.malformed(f'Unsupported SignatureMethod {method!r}')
    if 'AWSAccessKeyId' not in params:
        raise failures.missing()
    if 'Expires' in params:
        if now > _iso_time(params['Expires'], failures):
            raise failures.expired()
    elif 'Timestamp' in params:
        _check_skew(_iso_time(params['Timestamp'], failures), now, failures)
    else:
        raise AWSError('MissingParameter', 'The request must contain the '
                       'parameter Timestamp or Expires', 400)
    creds = lookup(params['AWSAccessKeyId'])
    if creds is None:
        raise failures.unknown_key()
    aws_request = AWSRequest(method=request.method,
                             url=f'http://{request.host}{request.raw_path}')
    signer = SigV2Auth(_BotoCredentials(params['AWSAccessKeyId'], creds.secret_key))
    query, expected = signer.calc_signature(aws_request, params)
    if digest is sha1:
        # botocore signs with SHA-256 only; the string to sign is the same.
        string_to_sign = (f'{request.method}\n{request.host}\n'
                          f'{request.raw_path}\n{query}')
        mac = hmac.new(creds.secret_key.encode('utf-8'),
                       string_to_sign.encode('utf-8'), sha1)
        expected = base64.b64encode(mac.digest()).decode('ascii')
    if not hmac.compare_digest(expected, params['Signature']):
        raise failures.bad_signature()
    return creds


def _iso_time(text, failures):
    try:
        value = parse_timestamp(text)
    except Exception:  # dateutil raises several unrelated types
        raise failures.malformed(f'Invalid timestamp {text!r}') from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value
