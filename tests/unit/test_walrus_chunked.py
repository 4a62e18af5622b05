"""walrus.chunked: the AWS worked examples, an encoder of our own and botocore's, bad bodies."""

import hashlib
import hmac
import io
import random

import pytest
from botocore import httpchecksum

from eucacore.awsapi.errors import AWSError
from walrus import checksums
from walrus.chunked import (BLOCK_SIZE, AwsChunkedReader, ChunkSigning, signing_from_request)

# The S3 API reference's chunked-upload examples ("Signature Calculations for the
# Authorization Header: Transferring Payload in Multiple Chunks" and "...for trailing
# headers"): 66560 bytes of 'a' sent as chunks of 65536, 1024 and 0 bytes.
SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
AMZ_DATE = '20130524T000000Z'
SCOPE = '20130524/us-east-1/s3/aws4_request'
CREDENTIAL = 'AKIAIOSFODNN7EXAMPLE/' + SCOPE
EXAMPLE_DATA = b'a' * 66560
EXAMPLE_SIZES = (65536, 1024)
PAYLOAD_SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'
PAYLOAD_SIGNATURES = ('ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
                      '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
                      'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9')
TRAILER_SEED = '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e'
TRAILER_CHUNK_SIGNATURES = (
    'b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2',
    '1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7',
    '2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992')
TRAILER = ('x-amz-checksum-crc32c', 'sOO8/Q==')
TRAILER_SIGNATURE = 'd81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435'
EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()


def authorization(seed):
    return (f'AWS4-HMAC-SHA256 Credential={CREDENTIAL},SignedHeaders=content-encoding;host;'
            f'x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length,Signature={seed}')


def signing(seed=PAYLOAD_SEED):
    return signing_from_request(SECRET, authorization(seed), AMZ_DATE)


# -- an encoder of our own, written from the AWS documentation

def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256)


def _key():
    key = ('AWS4' + SECRET).encode()
    for part in ('20130524', 'us-east-1', 's3', 'aws4_request'):
        key = _hmac(key, part).digest()
    return key


def encode(data, sizes, *, seed=None, trailer=None):
    """An aws-chunked body of ``data`` cut into chunks of ``sizes`` (the last one repeating):
    signed when ``seed`` is given, with a (name, value) trailer when given."""
    chunks, start, sizes = [], 0, list(sizes)
    while start < len(data):
        size = sizes.pop(0) if len(sizes) > 1 else sizes[0]
        chunks.append(data[start:start + size])
        start += size
    out, previous, key = [], seed, _key()
    for chunk in chunks + [b'']:
        if seed is None:
            out.append(b'%x\r\n' % len(chunk))
        else:
            previous = _hmac(key, '\n'.join((
                'AWS4-HMAC-SHA256-PAYLOAD', AMZ_DATE, SCOPE, previous, EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest()))).hexdigest()
            out.append(b'%x;chunk-signature=%s\r\n' % (len(chunk), previous.encode()))
        if chunk:
            out.append(chunk + b'\r\n')
    if trailer:
        line = '%s:%s\n' % trailer
        out.append(line.replace('\n', '\r\n').encode())
        if seed is not None:
            signature = _hmac(key, '\n'.join((
                'AWS4-HMAC-SHA256-TRAILER', AMZ_DATE, SCOPE, previous,
                hashlib.sha256(line.encode()).hexdigest()))).hexdigest()
            out.append(b'x-amz-trailer-signature:%s\r\n' % signature.encode())
    out.append(b'\r\n')
    return b''.join(out)


def decode(body, read_size=-1, **options):
    """Read a whole body through AwsChunkedReader ``read_size`` bytes at a time."""
    reader = AwsChunkedReader(io.BytesIO(body), **options)
    pieces = []
    while piece := reader.read(read_size):
        assert read_size < 0 or len(piece) <= read_size
        pieces.append(piece)
    assert reader.read(read_size) == b''
    return b''.join(pieces), reader.trailers


def rejects(body, code, status=400, **options):
    reader = AwsChunkedReader(io.BytesIO(body), **options)
    with pytest.raises(AWSError) as caught:
        while reader.read(5000):
            pass
    assert (caught.value.code, caught.value.status) == (code, status), caught.value
    with pytest.raises(AWSError):       # and it stays failed
        reader.read()
    return caught.value


SIGNED = dict(decoded_length=len(EXAMPLE_DATA), signing=signing())
SIGNED_TRAILER = dict(decoded_length=len(EXAMPLE_DATA), signing=signing(TRAILER_SEED),
                      trailer=TRAILER[0])


def example_payload_body():
    return encode(EXAMPLE_DATA, EXAMPLE_SIZES, seed=PAYLOAD_SEED)


def example_trailer_body():
    return encode(EXAMPLE_DATA, EXAMPLE_SIZES, seed=TRAILER_SEED, trailer=TRAILER)


# -- the AWS examples

def test_encoder_reproduces_the_documented_signatures():
    body = example_payload_body()
    for signature in PAYLOAD_SIGNATURES:
        assert b';chunk-signature=%s\r\n' % signature.encode() in body
    body = example_trailer_body()
    for signature in TRAILER_CHUNK_SIGNATURES:
        assert b';chunk-signature=%s\r\n' % signature.encode() in body
    assert body.endswith(b'0;chunk-signature=%s\r\nx-amz-checksum-crc32c:sOO8/Q==\r\n'
                         b'x-amz-trailer-signature:%s\r\n\r\n'
                         % (TRAILER_CHUNK_SIGNATURES[-1].encode(), TRAILER_SIGNATURE.encode()))
    assert len(body) == 66946


def test_signing_from_the_authorization_header():
    assert signing() == ChunkSigning(_key(), AMZ_DATE, SCOPE, PAYLOAD_SEED)
    assert signing().chunk_signature(PAYLOAD_SEED, hashlib.sha256(b'a' * 65536).hexdigest()) \
        == PAYLOAD_SIGNATURES[0]
    assert signing(TRAILER_SEED).trailer_signature(
        TRAILER_CHUNK_SIGNATURES[-1], b'x-amz-checksum-crc32c:sOO8/Q==\n') == TRAILER_SIGNATURE
    with pytest.raises(AWSError) as caught:
        signing_from_request(SECRET, 'AWS4-HMAC-SHA256 Credential=x/y', AMZ_DATE)
    assert caught.value.code == 'AuthorizationHeaderMalformed'


@pytest.mark.parametrize('read_size', [1, 7, 8192, 65536, 65537, 1 << 20, -1])
def test_documented_signed_payload_example(read_size):
    assert decode(example_payload_body(), read_size, **SIGNED) == (EXAMPLE_DATA, {})


@pytest.mark.parametrize('read_size', [1, 7, 1 << 20, -1])
def test_documented_signed_trailer_example(read_size):
    assert decode(example_trailer_body(), read_size, **SIGNED_TRAILER) == \
        (EXAMPLE_DATA, dict([TRAILER]))


def test_the_read_of_the_last_byte_has_checked_everything():
    reader = AwsChunkedReader(io.BytesIO(example_trailer_body()), **SIGNED_TRAILER)
    assert reader.read(len(EXAMPLE_DATA)) == EXAMPLE_DATA
    assert reader.trailers == dict([TRAILER])
    body = example_trailer_body().replace(TRAILER_SIGNATURE.encode(), b'0' * 64)
    reader = AwsChunkedReader(io.BytesIO(body), **SIGNED_TRAILER)
    assert reader.read(len(EXAMPLE_DATA) - 1) == EXAMPLE_DATA[:-1]
    with pytest.raises(AWSError):
        reader.read(1)


# -- round trips

@pytest.mark.parametrize('size', [0, 1, 8191, 8192, 65536, 200_003])
@pytest.mark.parametrize('chunk', [8192, 65536, 100_000])
@pytest.mark.parametrize('mode', ['signed', 'signed-trailer', 'unsigned-trailer'])
def test_round_trips(size, chunk, mode):
    rng = random.Random(f'{size} {chunk} {mode}')
    data = rng.randbytes(size)
    crc = checksums.new('CRC32')
    crc.update(data)
    trailer = None if mode == 'signed' else ('x-amz-checksum-crc32', crc.b64())
    seed = None if mode == 'unsigned-trailer' else PAYLOAD_SEED
    body = encode(data, [chunk], seed=seed, trailer=trailer)
    options = dict(decoded_length=size, signing=seed and signing(),
                   trailer=trailer and trailer[0])
    for read_size in (1 if size < 10_000 else 997, rng.randrange(1, 70_000), -1):
        assert decode(body, read_size, **options) == (data, dict([trailer] if trailer else []))


def test_unsigned_chunks_may_be_any_size_and_length_may_be_unknown():
    data = random.Random(1).randbytes(50_000)
    body = encode(data, [1, 100, 3, 20_000, 7], trailer=('x-amz-checksum-sha1', 'A' * 27 + '='))
    assert decode(body, 333, trailer='X-Amz-Checksum-SHA1') == \
        (data, {'x-amz-checksum-sha1': 'A' * 27 + '='})


@pytest.mark.parametrize('algorithm', ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'])
def test_decodes_what_botocore_sends(algorithm):
    data = random.Random(algorithm).randbytes(300_001)
    name = checksums.HEADER[algorithm]
    wrapper = httpchecksum.AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=httpchecksum._CHECKSUM_CLS[algorithm.lower()],
        checksum_name=name, chunk_size=65536)
    payload, trailers = decode(wrapper.read(), 4096, decoded_length=len(data), trailer=name)
    hasher = checksums.new(algorithm)
    hasher.update(payload)
    assert payload == data and trailers == {name: hasher.b64()}


def test_data_flows_before_a_big_chunk_is_complete():
    data = b'z' * (4 * BLOCK_SIZE)
    raw = io.BytesIO(encode(data, [len(data)], seed=PAYLOAD_SEED))
    reader = AwsChunkedReader(raw, decoded_length=len(data), signing=signing())
    assert reader.read(10) == b'z' * 10
    assert raw.tell() <= BLOCK_SIZE
    assert reader.read() == data[10:]


# -- bad bodies

def test_tampered_chunk_data_or_signature():
    body = example_payload_body()
    rejects(body.replace(b'a\r\n', b'b\r\n', 1), 'SignatureDoesNotMatch', 403, **SIGNED)
    for signature in PAYLOAD_SIGNATURES:
        bad = body.replace(signature.encode(), signature[:-1].encode() + b'0')
        rejects(bad, 'SignatureDoesNotMatch', 403, **SIGNED)
    rejects(body.replace(b';chunk-signature=', b';chunk-signatur=', 1),
            'SignatureDoesNotMatch', 403, **SIGNED)
    rejects(body.replace(b'10000;chunk-signature=%s' % PAYLOAD_SIGNATURES[0].encode(), b'10000'),
            'SignatureDoesNotMatch', 403, **SIGNED)
    rejects(body, 'SignatureDoesNotMatch', 403, decoded_length=len(EXAMPLE_DATA),
            signing=signing(TRAILER_SEED))


def test_tampered_trailer():
    body = example_trailer_body()
    rejects(body.replace(b'sOO8/Q==', b'sOO8/Q=A'), 'SignatureDoesNotMatch', 403,
            **SIGNED_TRAILER)
    rejects(body.replace(TRAILER_SIGNATURE.encode(), b'f' * 64), 'SignatureDoesNotMatch', 403,
            **SIGNED_TRAILER)
    no_signature = body.replace(b'x-amz-trailer-signature:%s\r\n' % TRAILER_SIGNATURE.encode(),
                                b'')
    rejects(no_signature, 'IncompleteBody', **SIGNED_TRAILER)


def test_trailers_must_be_the_declared_ones():
    data = b'x' * 100
    crc = 'AAAAAA=='
    for trailer in (None, ('x-amz-checksum-crc32c', crc), ('x-amz-meta-a', 'b')):
        rejects(encode(data, [100], trailer=trailer), 'MalformedTrailerError',
                trailer='x-amz-checksum-crc32')
    twice = encode(data, [100], trailer=('x-amz-checksum-crc32', crc)).replace(
        b'\r\n\r\n', b'\r\nx-amz-checksum-crc32:%s\r\n\r\n' % crc.encode())
    rejects(twice, 'MalformedTrailerError', trailer='x-amz-checksum-crc32')
    no_colon = encode(data, [100], trailer=('x-amz-checksum-crc32', crc)).replace(b':', b' ')
    rejects(no_colon, 'MalformedTrailerError', trailer='x-amz-checksum-crc32')
    rejects(encode(data, [100], trailer=('x-amz-checksum-crc32', 'AAAA')), 'InvalidRequest',
            trailer='x-amz-checksum-crc32')
    rejects(encode(data, [100], trailer=('x-amz-checksum-crc32', crc)), 'IncompleteBody')


def test_every_truncation_is_refused():
    data = random.Random(2).randbytes(9000)
    body = encode(data, [8192], seed=PAYLOAD_SEED)
    for end in range(len(body)):
        if end == len(body) - 2:    # a missing closing CRLF is accepted
            assert decode(body[:end], decoded_length=len(data), signing=signing())[0] == data
            continue
        with pytest.raises(AWSError) as caught:
            decode(body[:end], 4096, decoded_length=len(data), signing=signing())
        assert caught.value.code == 'IncompleteBody'
    body = encode(data, [1000], trailer=('x-amz-checksum-crc32', 'AAAAAA=='))
    for end in range(0, len(body), 7):
        with pytest.raises(AWSError):
            decode(body[:end], 4096, decoded_length=len(data), trailer='x-amz-checksum-crc32')


def test_decoded_length_must_match():
    body = example_payload_body()
    for claimed in (0, 1, 65536, len(EXAMPLE_DATA) - 1, len(EXAMPLE_DATA) + 1):
        error = rejects(body, 'IncompleteBody', decoded_length=claimed, signing=signing())
        assert error.extra['NumberBytesExpected'] == claimed


def test_chunk_sizes_and_headers():
    data = b'q' * 30_000
    error = rejects(encode(data, [8191, 8192], seed=PAYLOAD_SEED), 'InvalidChunkSizeError', 403,
                    decoded_length=len(data), signing=signing())
    assert error.extra == {'Chunk': 2, 'BadChunkSize': 8191}
    bad_headers = (b'zz\r\n', b'-1\r\n', b'0x10\r\n', b' 10\r\n', b'1' * 17 + b'\r\n',
                   b'10', b'1' * 5000 + b'\r\n', b'3\r\nabcXX', b'\r\n')
    for body in bad_headers:
        rejects(body, 'IncompleteBody')
    huge = b'ffffffffffff\r\n' + b'x' * 100
    rejects(huge, 'IncompleteBody', decoded_length=100)
    rejects(encode(data, [10_000]) + b'extra', 'IncompleteBody', decoded_length=len(data))
