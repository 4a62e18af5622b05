"""Decoding of ``Content-Encoding: aws-chunked`` request bodies.

Three framings arrive under that encoding, told apart by x-amz-content-sha256:
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (every chunk signed),
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` (signed chunks, then signed
trailing headers) and ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (plain chunks,
then trailing headers).  :class:`AwsChunkedReader` reads any of them like a
plain body.  It passes chunk data on as it arrives, holding at most one raw
block, and checks each chunk when its last byte has been read; the read that
returns the last payload byte has checked everything, trailers included.  So
a caller that keeps nothing until the body has been read through never keeps
unverified bytes.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

from eucacore.awsapi.auth import hmac_sha256, signing_key
from eucacore.awsapi.errors import AWSError
from walrus import checksums

EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()
MIN_CHUNK_SIZE = 8192       # S3's minimum for every signed chunk but the last
MAX_LINE = 4096             # longest chunk header or trailer line accepted
BLOCK_SIZE = 1 << 20        # how much of the raw body is read at a time
TRAILER_SIGNATURE = 'x-amz-trailer-signature'

_CHUNK_HEADER = re.compile(rb'([0-9a-fA-F]{1,16})(?:;(.*))?', re.DOTALL)
_CHUNK_SIGNATURE = re.compile(rb'chunk-signature=(.+)', re.DOTALL)


@dataclass(frozen=True)
class ChunkSigning:
    """What checks the chunk signatures of one request: its SigV4 signing key,
    timestamp (``20130524T000000Z``), credential scope and seed signature."""

    signing_key: bytes
    amz_date: str
    scope: str
    seed_signature: str

    def chunk_signature(self, previous, chunk_sha256_hex):
        """The signature of a chunk whose data has SHA-256 ``chunk_sha256_hex``."""
        return self._sign('AWS4-HMAC-SHA256-PAYLOAD', previous,
                          f'{EMPTY_SHA256}\n{chunk_sha256_hex}')

    def trailer_signature(self, previous, canonical_trailers):
        """The signature of trailing headers canonicalized as ``name:value\\n`` lines."""
        return self._sign('AWS4-HMAC-SHA256-TRAILER', previous,
                          hashlib.sha256(canonical_trailers).hexdigest())

    def _sign(self, algorithm, previous, tail):
        text = f'{algorithm}\n{self.amz_date}\n{self.scope}\n{previous}\n{tail}'
        return hmac_sha256(self.signing_key, text.encode()).hex()


def signing_from_request(secret_key, authorization, amz_date):
    """The ChunkSigning of a request whose (already verified) SigV4 Authorization
    header is ``authorization`` and whose timestamp is ``amz_date``."""
    fields = {}
    for part in authorization.removeprefix('AWS4-HMAC-SHA256').split(','):
        name, _, value = part.strip().partition('=')
        fields[name] = value
    credential = fields.get('Credential', '').split('/')
    if len(credential) < 5 or credential[-1] != 'aws4_request' or not fields.get('Signature'):
        raise AWSError('AuthorizationHeaderMalformed',
                       'The authorization header is malformed.', 400)
    date, region, service = credential[-4:-1]
    return ChunkSigning(signing_key(secret_key, date, region, service), amz_date,
                        '/'.join(credential[-4:]), fields['Signature'])


def _incomplete():
    return AWSError('IncompleteBody', 'The request body terminated unexpectedly', 400)


def _wrong_length(expected, provided):
    return AWSError('IncompleteBody', 'You did not provide the number of bytes specified '
                    'by the Content-Length HTTP header.', 400,
                    NumberBytesExpected=expected, NumberBytesProvided=provided)


def _bad_signature():
    return AWSError('SignatureDoesNotMatch', 'The request signature we calculated does not '
                    'match the signature you provided. Check your key and signing method.', 403)


def _malformed_trailer():
    return AWSError('MalformedTrailerError', 'The request contained trailing data that was '
                    'not well-formed or did not conform to our published schema.', 400)


class AwsChunkedReader:
    """A file-like view of the payload inside an aws-chunked body.

    ``raw`` has ``read(n)`` and ends where the request body ends.
    ``decoded_length`` is x-amz-decoded-content-length (None: unchecked),
    ``signing`` checks chunk and trailer signatures (None: unsigned chunks)
    and ``trailer`` is the x-amz-trailer header (None: no trailing headers).
    After the payload, ``trailers`` maps lower-case trailer names to values.
    Every failure raises AWSError, then again on any later read.
    """

    def __init__(self, raw, *, decoded_length=None, signing=None, trailer=None):
        self._raw = raw
        self._decoded_length = decoded_length
        self._signing = signing
        self._previous = signing.seed_signature if signing else None
        self._expected = {name.strip().lower() for name in (trailer or '').split(',')
                          if name.strip()}
        self._buffer = b''
        self._pos = 0
        self._left = 0              # data bytes of the current chunk not yet read
        self._started = False
        self._done = False
        self._failure = None
        self._chunk_hash = None
        self._chunk_signature = None
        self._chunk_number = 0
        self._last_size = None
        self._decoded = 0           # payload bytes announced by the chunks so far
        self.trailers = {}

    def read(self, size=-1):
        """Up to ``size`` payload bytes (all that are left when negative); b'' at the end."""
        if self._failure:
            raise self._failure
        try:
            return self._read(size)
        except AWSError as failure:
            self._failure = failure
            raise

    def _read(self, size):
        if not self._started:
            self._started = True
            self._begin_chunk()
        wanted = size if size is not None and size >= 0 else None
        pieces = []
        got = 0
        while not self._done and (wanted is None or got < wanted):
            limit = self._left if wanted is None else min(self._left, wanted - got)
            piece = self._take(limit)
            if self._chunk_hash:
                self._chunk_hash.update(piece)
            pieces.append(piece)
            got += len(piece)
            self._left -= len(piece)
            if not self._left:
                self._expect(b'\r\n')
                self._verify_chunk()
                self._begin_chunk()
        return pieces[0] if len(pieces) == 1 else b''.join(pieces)

    # -- chunks

    def _begin_chunk(self):
        match = _CHUNK_HEADER.fullmatch(self._line())
        if not match:
            raise _incomplete()
        size = int(match[1], 16)
        self._chunk_number += 1
        if self._signing:
            self._chunk_signature = self._signature_of(match[2])
            if self._last_size is not None and self._last_size < MIN_CHUNK_SIZE and size:
                raise AWSError('InvalidChunkSizeError', 'Only the last chunk is allowed to '
                               'have a size less than 8192 bytes', 403,
                               Chunk=self._chunk_number, BadChunkSize=self._last_size)
            self._chunk_hash = hashlib.sha256()
        self._last_size = size
        self._decoded += size
        if self._decoded_length is not None and self._decoded > self._decoded_length:
            raise _wrong_length(self._decoded_length, self._decoded)
        self._left = size
        if not size:
            self._verify_chunk()
            self._end_stream()

    @staticmethod
    def _signature_of(extension):
        match = _CHUNK_SIGNATURE.fullmatch(extension or b'')
        if not match:
            raise _bad_signature()
        return match[1]

    def _verify_chunk(self):
        if not self._signing:
            return
        expected = self._signing.chunk_signature(self._previous,
                                                 self._chunk_hash.hexdigest())
        if not hmac.compare_digest(expected.encode(), self._chunk_signature):
            raise _bad_signature()
        self._previous = expected

    def _end_stream(self):
        if self._expected:
            self._read_trailers()
        elif self._available():     # the closing CRLF, which some clients leave out
            self._expect(b'\r\n')
        if self._available():
            raise _incomplete()
        if self._decoded_length is not None and self._decoded != self._decoded_length:
            raise _wrong_length(self._decoded_length, self._decoded)
        self._done = True

    # -- trailers

    def _read_trailers(self):
        signature = None
        for _ in range(len(self._expected) + 2):
            line = self._line()
            if not line:
                break
            name, colon, value = line.decode('latin-1').partition(':')
            name, value = name.strip().lower(), value.strip()
            if not colon:
                raise _malformed_trailer()
            if name == TRAILER_SIGNATURE and self._signing and signature is None:
                signature = value
            elif name in self._expected and name not in self.trailers:
                self.trailers[name] = value
            else:
                raise _malformed_trailer()
        else:
            raise _malformed_trailer()
        if self.trailers.keys() != self._expected:
            raise _malformed_trailer()
        if self._signing:
            self._verify_trailers(signature)
        for name, value in self.trailers.items():
            if name in checksums.BY_HEADER and not checksums.valid_b64(
                    checksums.BY_HEADER[name], value):
                raise AWSError('InvalidRequest',
                               f'Value for {name} trailing header is invalid.', 400)

    def _verify_trailers(self, signature):
        if signature is None:
            raise _incomplete()
        canonical = ''.join(f'{name}:{value}\n' for name, value in sorted(self.trailers.items()))
        expected = self._signing.trailer_signature(self._previous, canonical.encode('latin-1'))
        if not hmac.compare_digest(expected.encode(), signature.encode('latin-1')):
            raise _bad_signature()

    # -- the raw body

    def _fill(self):
        """Read more of the raw body into the buffer; False at its end."""
        data = self._raw.read(BLOCK_SIZE)
        if not data:
            return False
        self._buffer = self._buffer[self._pos:] + data
        self._pos = 0
        return True

    def _available(self):
        """Whether any raw bytes are left, reading more if the buffer is empty."""
        return self._pos < len(self._buffer) or self._fill()

    def _take(self, limit):
        if not self._available():
            raise _incomplete()
        end = min(self._pos + limit, len(self._buffer))
        piece = self._buffer[self._pos:end]
        self._pos = end
        return piece

    def _expect(self, marker):
        while len(self._buffer) - self._pos < len(marker):
            if not self._fill():
                raise _incomplete()
        if not self._buffer.startswith(marker, self._pos):
            raise _incomplete()
        self._pos += len(marker)

    def _line(self):
        while True:
            end = self._buffer.find(b'\r\n', self._pos, self._pos + MAX_LINE)
            if end >= 0:
                line = self._buffer[self._pos:end]
                self._pos = end + 2
                return line
            if len(self._buffer) - self._pos >= MAX_LINE or not self._fill():
                raise _incomplete()
