"""walrus.checksums: published check values, a bitwise reference, and botocore's own classes."""

import base64
import hashlib
import random
import zlib

import botocore.session
import pytest
from botocore import httpchecksum

from walrus import checksums

CHECK = b'123456789'
# The "check" values of the CRC catalogue and the SHA test vectors for CHECK.
CHECK_VALUES = {
    'CRC32': 'cbf43926',
    'CRC32C': 'e3069283',
    'CRC64NVME': 'ae8b14860a799888',
    'SHA1': 'f7c3bc1d808e04732adf679965ccc34ca7ae3441',
    'SHA256': '15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225',
}
# Reflected polynomials; all three start from and finish with all ones.
POLYNOMIALS = {'CRC32': (0xEDB88320, 32), 'CRC32C': (0x82F63B78, 32),
               'CRC64NVME': (0x9A6C9329AC4BC9B5, 64)}
BOTOCORE = {'CRC32': httpchecksum.Crc32Checksum, 'CRC32C': httpchecksum.CrtCrc32cChecksum,
            'CRC64NVME': httpchecksum.CrtCrc64NvmeChecksum,
            'SHA1': httpchecksum.Sha1Checksum, 'SHA256': httpchecksum.Sha256Checksum}


def bitwise_crc(algorithm, data):
    polynomial, width = POLYNOMIALS[algorithm]
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
    return (crc ^ mask).to_bytes(width // 8, 'big')


def digest_of(algorithm, data, pieces=1):
    hasher = checksums.new(algorithm)
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        hasher.update(data[start:start + step])
    return hasher


@pytest.mark.parametrize('algorithm', checksums.ALGORITHMS)
def test_check_values(algorithm):
    hasher = digest_of(algorithm, CHECK)
    assert hasher.digest().hex() == CHECK_VALUES[algorithm]
    assert hasher.b64() == base64.b64encode(bytes.fromhex(CHECK_VALUES[algorithm])).decode()


def test_aws_documented_crc32c_of_the_chunked_upload_example():
    # The trailer of the S3 "Signature calculations for trailing headers" example.
    assert digest_of('CRC32C', b'a' * 66560).b64() == 'sOO8/Q=='


@pytest.mark.parametrize('algorithm', sorted(POLYNOMIALS))
def test_crcs_match_a_bitwise_reference(algorithm):
    rng = random.Random(algorithm)
    for size in (0, 1, 2, 3, 7, 8, 15, 16, 31, 64, 255, 1000):
        data = rng.randbytes(size)
        assert digest_of(algorithm, data, pieces=3).digest() == bitwise_crc(algorithm, data)


@pytest.mark.parametrize('algorithm', checksums.ALGORITHMS)
def test_agrees_with_botocore_whatever_the_pieces(algorithm):
    rng = random.Random(algorithm)
    for size in (0, 1, 100, 8192, 100_003, 1 << 20):
        data = rng.randbytes(size)
        theirs = BOTOCORE[algorithm]()
        theirs.update(data)
        for pieces in (1, 3, 17):
            assert digest_of(algorithm, data, pieces).b64() == theirs.b64digest()


def test_names_match_the_s3_model():
    model = botocore.session.get_session().get_service_model('s3')
    request = model.operation_model('PutObject').input_shape.members
    output = model.operation_model('PutObject').output_shape.members
    for algorithm in checksums.ALGORITHMS:
        assert algorithm in model.shape_for('ChecksumAlgorithm').enum
        assert request[checksums.FIELD[algorithm]].serialization['name'] == \
            checksums.HEADER[algorithm]
        assert checksums.FIELD[algorithm] in output
        assert checksums.BY_HEADER[checksums.HEADER[algorithm]] == algorithm


def test_algorithm_names_are_case_insensitive_and_checked():
    assert checksums.new('crc32c').b64() == checksums.new('CRC32C').b64()
    assert checksums.canonical('sha256') == 'SHA256'
    for name in ('MD5', 'SHA512', '', None):
        with pytest.raises(ValueError):
            checksums.new(name)


@pytest.mark.parametrize('algorithm', checksums.ALGORITHMS)
def test_valid_b64_checks_encoding_and_length(algorithm):
    good = digest_of(algorithm, CHECK).b64()
    assert checksums.valid_b64(algorithm, good)
    assert checksums.decode(algorithm, good) == bytes.fromhex(CHECK_VALUES[algorithm])
    size = checksums.DIGEST_SIZE[algorithm]
    for bad in (base64.b64encode(b'x' * (size + 1)).decode(),
                base64.b64encode(b'x' * (size - 1)).decode(),
                good.rstrip('='), good[:-2] + '!!', '', 'é' * 8, None, 42):
        assert not checksums.valid_b64(algorithm, bad), bad


def test_composite_multipart_checksum():
    parts = [b'a' * (5 << 20), b'b' * (5 << 20), b'tail']
    crcs = [base64.b64encode(zlib.crc32(p).to_bytes(4, 'big')).decode() for p in parts]
    raw = b''.join(zlib.crc32(p).to_bytes(4, 'big') for p in parts)
    expected = base64.b64encode(zlib.crc32(raw).to_bytes(4, 'big')).decode() + '-3'
    assert checksums.combine_multipart('CRC32', crcs) == expected
    shas = [base64.b64encode(hashlib.sha256(p).digest()).decode() for p in parts]
    expected = base64.b64encode(hashlib.sha256(
        b''.join(hashlib.sha256(p).digest() for p in parts)).digest()).decode() + '-3'
    assert checksums.combine_multipart('SHA256', shas) == expected
    with pytest.raises(ValueError):
        checksums.combine_multipart('SHA256', crcs)


@pytest.mark.parametrize('algorithm', checksums.FULL_OBJECT_ALGORITHMS)
def test_full_object_multipart_checksum_is_the_crc_of_the_whole(algorithm):
    rng = random.Random(algorithm)
    parts = [rng.randbytes(size) for size in (5 << 20, 0, 1, 123_457, 5 << 20)]
    values = [(digest_of(algorithm, p).b64(), len(p)) for p in parts]
    whole = digest_of(algorithm, b''.join(parts)).b64()
    assert checksums.combine_full_object(algorithm, values) == whole
    assert checksums.combine_full_object(algorithm, values[:1]) == values[0][0]


def test_full_object_is_only_for_crcs():
    assert set(checksums.FULL_OBJECT_ALGORITHMS) | set(checksums.COMPOSITE_ALGORITHMS) == \
        set(checksums.ALGORITHMS)
    with pytest.raises(ValueError):
        checksums.combine_full_object('SHA1', [(digest_of('SHA1', CHECK).b64(), 9)])
