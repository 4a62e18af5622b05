"""The S3 flexible checksums: CRC32, CRC32C, CRC64NVME, SHA1 and SHA256.

Values travel as base64 of the big-endian digest, as S3 and the SDKs send
them.  CRC32 comes from zlib; CRC32C and CRC64NVME from awscrt, the library
botocore itself uses for them, so we compute exactly what the SDKs send.
"""

import base64
import binascii
import hashlib
import zlib

from awscrt import checksums as _crt

ALGORITHMS = ('CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256')
HEADER = {name: f'x-amz-checksum-{name.lower()}' for name in ALGORITHMS}
FIELD = {name: f'Checksum{name}' for name in ALGORITHMS}
BY_HEADER = {header: name for name, header in HEADER.items()}
DIGEST_SIZE = {'CRC32': 4, 'CRC32C': 4, 'CRC64NVME': 8, 'SHA1': 20, 'SHA256': 32}

# Which multipart checksum types S3 accepts for each algorithm.
COMPOSITE_ALGORITHMS = ('CRC32', 'CRC32C', 'SHA1', 'SHA256')
FULL_OBJECT_ALGORITHMS = ('CRC32', 'CRC32C', 'CRC64NVME')

_CRC = {'CRC32': zlib.crc32, 'CRC32C': _crt.crc32c, 'CRC64NVME': _crt.crc64nvme}
_CRC_COMBINE = {'CRC32': _crt.combine_crc32, 'CRC32C': _crt.combine_crc32c,
                'CRC64NVME': _crt.combine_crc64nvme}


class Hasher:
    """A running checksum: update(bytes), digest() -> raw bytes, b64() -> wire form."""

    def b64(self):
        """Base64 of the big-endian digest, as in x-amz-checksum-* headers."""
        return base64.b64encode(self.digest()).decode('ascii')


class _CrcHasher(Hasher):
    def __init__(self, function, size):
        self._function = function
        self._size = size
        self._value = 0

    def update(self, data):
        self._value = self._function(data, self._value)

    def digest(self):
        return self._value.to_bytes(self._size, 'big')


class _HashlibHasher(Hasher):
    def __init__(self, name):
        self._hash = hashlib.new(name)

    def update(self, data):
        self._hash.update(data)

    def digest(self):
        return self._hash.digest()


def canonical(algorithm):
    """The upper-case name of ``algorithm``; ValueError if it is not one of ALGORITHMS."""
    name = str(algorithm).upper()
    if name not in DIGEST_SIZE:
        raise ValueError(f'unknown checksum algorithm {algorithm!r}')
    return name


def new(algorithm):
    """A fresh Hasher for ``algorithm`` (any case); ValueError for an unknown one."""
    name = canonical(algorithm)
    if name in _CRC:
        return _CrcHasher(_CRC[name], DIGEST_SIZE[name])
    return _HashlibHasher(name.lower())


def decode(algorithm, value):
    """The raw digest in base64 ``value``; ValueError unless it has the algorithm's size."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (TypeError, binascii.Error, ValueError):
        raise ValueError(f'{value!r} is not base64') from None
    if len(raw) != DIGEST_SIZE[canonical(algorithm)]:
        raise ValueError(f'{value!r} is not a {algorithm} digest')
    return raw


def valid_b64(algorithm, value):
    """Whether ``value`` is base64 of exactly one ``algorithm`` digest."""
    try:
        decode(algorithm, value)
    except ValueError:
        return False
    return True


def combine_multipart(algorithm, part_b64_list):
    """S3's COMPOSITE checksum of a multipart object: ``b64(H(raw part digests))-N``."""
    hasher = new(algorithm)
    for value in part_b64_list:
        hasher.update(decode(algorithm, value))
    return f'{hasher.b64()}-{len(part_b64_list)}'


def combine_full_object(algorithm, parts):
    """S3's FULL_OBJECT checksum from ``parts``, a list of (b64 CRC, part length).

    The result is the CRC of the whole object, as if computed in one pass.
    """
    name = canonical(algorithm)
    if name not in _CRC_COMBINE:
        raise ValueError(f'{name} has no FULL_OBJECT multipart checksum')
    value = 0
    for b64_value, length in parts:
        part = int.from_bytes(decode(name, b64_value), 'big')
        value = _CRC_COMBINE[name](value, part, length)
    return base64.b64encode(value.to_bytes(DIGEST_SIZE[name], 'big')).decode('ascii')
