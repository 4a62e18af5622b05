"""Image bundles in the original's format: made by euca-bundle-image, unpacked by the NC.

A bundle is one image file put through tar -> gzip -> AES-128-CBC and cut into parts of
PART_SIZE bytes named ``<prefix>.part.NN``, described by ``<prefix>.manifest.xml``
(reference/eucalyptus.md §7):

- the AES key and IV are random; the manifest carries each as its hex text, RSA-encrypted
  (PKCS#1 v1.5, as ``openssl rsautl -encrypt -pkcs``) for the cloud certificate
  (``ec2_encrypted_key``/``_iv``) and, when the user has a certificate, for the user too
  (``user_encrypted_*``);
- the encryption is ``openssl enc -aes-128-cbc -K <key> -iv <iv>`` with its PKCS#7 padding,
  so openssl decrypts the concatenated parts;
- ``<image><digest>`` is the SHA-1 of the tar stream, each part's digest the SHA-1 of its bytes;
- ``<signature>`` is the hex RSA-SHA1 signature, by the user's private key, of
  ``<machine_configuration>`` and ``<image>`` as written, as euca2ools signs; it is empty when
  the user has no key pair. This cloud issues no user certificates, so nothing checks it: a
  manifest's integrity rests on who may write it in Walrus, and the parts' on its digests.

The CLC hands a node the key and IV re-encrypted for the node certificate (RSA-OAEP with
SHA-256: :func:`seal`, :func:`unseal`). Both directions stream, one CHUNK at a time.
"""

import base64
import binascii
import hashlib
import os
import secrets
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as blockpadding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree
from lxml.builder import E

PART_SIZE = 10 * 1024 * 1024
CHUNK = 1024 * 1024
#: Bytes of a downloaded part kept in memory while its digest is checked; the rest waits on disk.
SPOOL_MEMORY = 2 * PART_SIZE
MANIFEST_SUFFIX = ".manifest.xml"
MANIFEST_VERSION = "2007-10-10"
IMAGE_TYPES = ("machine", "kernel", "ramdisk")
#: euca-bundle-image's way of marking a kernel (``<kernel_id>true``) or a ramdisk.
MARKER = "true"
_SECRET_BYTES = 16
_GZIP = 31  # zlib's wbits for the gzip container


class BundleError(Exception):
    """A bundle that does not unpack: a part tampered with, a wrong key, a truncated stream..."""


@dataclass(frozen=True)
class Bundle:
    """A bundle on disk: its manifest and its parts, in order."""

    manifest: Path
    parts: tuple[Path, ...]


# -- keys ------------------------------------------------------------------------------------------

def encrypt_secret(cert_pem: bytes, secret: bytes) -> str:
    """A manifest's ``*_encrypted_key``/``_iv``: the hex of ``secret``'s hex text RSA-encrypted
    (PKCS#1 v1.5) for the certificate ``cert_pem``."""
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    return public.encrypt(secret.hex().encode(), padding.PKCS1v15()).hex()


def decrypt_secret(key_pem: bytes, encrypted_hex: str) -> bytes:
    """The AES key or IV a manifest's ``*_encrypted_*`` field holds, decrypted with the private
    key ``key_pem``; BundleError if it was not encrypted for that key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    try:
        text = key.decrypt(bytes.fromhex(encrypted_hex), padding.PKCS1v15())
        secret = bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        secret = b""
    if len(secret) != _SECRET_BYTES:  # (OpenSSL answers a wrong key with random bytes, not an error)
        raise BundleError("the bundle's key was not encrypted for this cloud's certificate")
    return secret


_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def seal(cert_pem: bytes, secret: bytes) -> str:
    """``secret`` RSA-OAEP(SHA-256)-encrypted for the certificate ``cert_pem``, base64."""
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    return base64.b64encode(public.encrypt(secret, _OAEP)).decode()


def unseal(key_pem: bytes, sealed: str) -> bytes:
    """What :func:`seal` sealed, opened with the private key ``key_pem``; BundleError if it
    was sealed for another key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    try:
        secret = key.decrypt(base64.b64decode(sealed, validate=True), _OAEP)
    except (ValueError, binascii.Error):
        raise BundleError("the image's key was not sealed for this node's certificate") from None
    if len(secret) != _SECRET_BYTES:
        raise BundleError("the image's key is not an AES-128 key")
    return secret


# -- making a bundle ---------------------------------------------------------------------------------

class _PartWriter:
    """Writes a byte stream as files of ``part_size`` bytes, ``<prefix>.part.NN``, and keeps
    each one's path and SHA-1."""

    def __init__(self, directory: Path, prefix: str, part_size: int):
        self.directory, self.prefix, self.part_size = directory, prefix, part_size
        self.parts: list[tuple[Path, str]] = []
        self.size = 0
        self._file: BinaryIO | None = None
        self._written = 0
        self._sha1 = hashlib.sha1()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._file is None:
                path = self.directory / f"{self.prefix}.part.{len(self.parts):02d}"
                self._file, self._written, self._sha1 = open(path, "wb"), 0, hashlib.sha1()
                self.parts.append((path, ""))
            piece = view[:self.part_size - self._written]
            self._file.write(piece)
            self._sha1.update(piece)
            self._written += len(piece)
            self.size += len(piece)
            view = view[len(piece):]
            if self._written == self.part_size:
                self._end_part()

    def _end_part(self) -> None:
        self._file.close()
        self._file = None
        self.parts[-1] = (self.parts[-1][0], self._sha1.hexdigest())

    def close(self) -> None:
        if self._file is not None:
            self._end_part()

    def remove(self) -> None:
        """Delete every part written (a bundle that failed half-way)."""
        if self._file is not None:
            self._file.close()
        for path, _ in self.parts:
            path.unlink(missing_ok=True)


class _Encrypting:
    """The file tarfile writes the tar stream to: hashed, gzipped, encrypted, then cut into parts."""

    def __init__(self, key: bytes, iv: bytes, parts: _PartWriter):
        self.parts = parts
        self.sha1 = hashlib.sha1()
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, _GZIP)
        self._encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        self._padder = blockpadding.PKCS7(128).padder()

    def write(self, data: bytes) -> int:
        self.sha1.update(data)
        self._encrypt(self._gzip.compress(data))
        return len(data)

    def _encrypt(self, data: bytes) -> None:
        if data:
            self.parts.write(self._encryptor.update(self._padder.update(data)))

    def finish(self) -> None:
        self._encrypt(self._gzip.flush())
        self.parts.write(self._encryptor.update(self._padder.finalize()) + self._encryptor.finalize())
        self.parts.close()


def create_bundle(image: str | Path, destination: str | Path, ec2_cert: bytes, *, prefix: str | None = None,
                  image_type: str = "machine", architecture: str = "x86_64", kernel_id: str = "",
                  ramdisk_id: str = "", account_id: str = "", user_cert: bytes | None = None,
                  user_key: bytes | None = None, part_size: int = PART_SIZE) -> Bundle:
    """Bundle the file ``image`` into ``destination``: its parts, then its manifest (written last,
    atomically, so a manifest always names complete parts). ``ec2_cert`` is the cloud
    certificate (PEM); ``user_cert``/``user_key`` (PEM), when given, add the user's copies of
    the key and IV and the signature. A failure leaves no part behind."""
    image, destination = Path(image), Path(destination)
    if image_type not in IMAGE_TYPES:
        raise ValueError(f"image type must be one of {', '.join(IMAGE_TYPES)}, not {image_type!r}")
    prefix = prefix or image.name
    key, iv = secrets.token_bytes(_SECRET_BYTES), secrets.token_bytes(_SECRET_BYTES)
    # The certificates and the key are read first: one that is not PEM fails before any work.
    encrypted = _encrypted_secrets(key, iv, ec2_cert, user_cert)
    signer = serialization.load_pem_private_key(user_key, password=None) if user_key else None
    destination.mkdir(parents=True, exist_ok=True)
    parts = _PartWriter(destination, prefix, part_size)
    try:
        with open(image, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            sink = _Encrypting(key, iv, parts)
            info = tarfile.TarInfo(image.name)
            info.size, info.mtime, info.mode = size, int(time.time()), 0o644
            with tarfile.open(fileobj=sink, mode="w|", bufsize=CHUNK, format=tarfile.GNU_FORMAT) as tar:
                tar.addfile(info, source)
            sink.finish()
        document = _manifest(
            prefix=prefix, image_type=image_type, architecture=architecture, kernel_id=kernel_id,
            ramdisk_id=ramdisk_id, account_id=account_id, digest=sink.sha1.hexdigest(), size=size,
            bundled_size=parts.size, encrypted=encrypted, parts=[(path.name, digest) for path, digest in parts.parts],
            signer=signer)
        manifest = destination / f"{prefix}{MANIFEST_SUFFIX}"
        _write_atomic(manifest, document)
    except BaseException:
        parts.remove()
        raise
    return Bundle(manifest, tuple(path for path, _ in parts.parts))


def _encrypted_secrets(key: bytes, iv: bytes, ec2_cert: bytes, user_cert: bytes | None) -> list:
    """The manifest's ``*_encrypted_key``/``_iv`` elements, in euca2ools' order."""
    elements = []
    for field, secret in (("key", key), ("iv", iv)):
        for who, cert in (("ec2", ec2_cert), ("user", user_cert)):
            if cert:
                element = E(f"{who}_encrypted_{field}", encrypt_secret(cert, secret))
                if field == "key":
                    element.set("algorithm", "AES-128-CBC")
                elements.append(element)
    return elements


def _manifest(*, prefix, image_type, architecture, kernel_id, ramdisk_id, account_id, digest, size,
              bundled_size, encrypted, parts, signer) -> bytes:
    """The manifest document (EC2 AMI layout, euca2ools' element order)."""
    config = E.machine_configuration(E.architecture(architecture))
    marked = {"kernel": ("kernel_id", MARKER), "ramdisk": ("ramdisk_id", MARKER)}.get(image_type)
    for tag, value in ([marked] if marked else [("kernel_id", kernel_id), ("ramdisk_id", ramdisk_id)]):
        if value:
            config.append(E(tag, value))
    user = E.user(account_id) if account_id else E.user()  # <user/>, as a parser gives it back to a verifier
    image = E.image(E.name(prefix), user, E.type(image_type), E.digest(digest, algorithm="SHA1"),
                    E.size(str(size)), E.bundled_size(str(bundled_size)), *encrypted)
    image.append(E.parts(*(E.part(E.filename(name), E.digest(part_digest, algorithm="SHA1"), index=str(i))
                           for i, (name, part_digest) in enumerate(parts)), count=str(len(parts))))
    signed = etree.tostring(config) + etree.tostring(image)
    signature = signer.sign(signed, padding.PKCS1v15(), hashes.SHA1()).hex() if signer else ""
    bundler = E.bundler(E.name("eucalyptus-py"), E.version("0.1.0"), E.release("0"))
    root = E.manifest(E.version(MANIFEST_VERSION), bundler, config, image, E.signature(signature))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def part_names(manifest: bytes) -> list[str]:
    """The part file names a manifest lists, in index order (read without DTDs or entities);
    BundleError if it lists them otherwise than as plain file names, indexes 0..N-1."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        parts = etree.fromstring(manifest, parser).findall("image/parts/part")
    except etree.XMLSyntaxError as e:
        raise BundleError(f"the manifest is not well-formed XML: {e}") from None
    names = {part.get("index"): (part.findtext("filename") or "").strip() for part in parts}
    if not parts or sorted(names) != sorted(str(i) for i in range(len(parts))):
        raise BundleError("the manifest does not list its parts as indexes 0 to N-1")
    ordered = [names[str(i)] for i in range(len(parts))]
    if any(not name or "/" in name or name in (".", "..") for name in ordered):
        raise BundleError("the manifest names a part with a path, not a plain file name")
    return ordered


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- unpacking a bundle --------------------------------------------------------------------------------

class _Inflater:
    """gunzip, streaming, one CHUNK of output at a time (a small part may hold a huge image);
    a stream of several gzip members is read as their concatenation."""

    def __init__(self):
        self._z = zlib.decompressobj(_GZIP)
        self._fed = False
        self._members = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._fed = True
            piece = self._z.decompress(data, CHUNK)
            if piece:
                yield piece
            if self._z.eof:
                data, self._z, self._fed = self._z.unused_data, zlib.decompressobj(_GZIP), False
                self._members += 1
            else:
                data = self._z.unconsumed_tail

    def finish(self) -> None:
        if self._fed or not self._members:
            raise BundleError("the image's gzip stream is truncated")


def _verified(parts: Iterable[tuple[str, Iterable[bytes]]], spool_dir: Path | None) -> Iterator[bytes]:
    """The parts' bytes, each part released only once all of it matched its SHA-1: nothing
    unchecked is ever decrypted. A part waits in memory, or past SPOOL_MEMORY bytes in an
    unnamed file in ``spool_dir``."""
    for index, (expected, chunks) in enumerate(parts):
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=spool_dir) as spool:
            sha1 = hashlib.sha1()
            for chunk in chunks:
                sha1.update(chunk)
                spool.write(chunk)
            if sha1.hexdigest() != expected.lower():
                raise BundleError(f"part {index} of the bundle does not match its digest in the manifest")
            spool.seek(0)
            while chunk := spool.read(CHUNK):
                yield chunk


def _plain(encrypted: Iterator[bytes], key: bytes, iv: bytes) -> Iterator[bytes]:
    """The tar stream that the ``encrypted`` bytes hold: decrypted, then gunzipped."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = blockpadding.PKCS7(128).unpadder()
    inflater = _Inflater()
    for chunk in encrypted:
        yield from inflater.feed(unpadder.update(decryptor.update(chunk)))
    try:
        tail = unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise BundleError("the bundle does not decrypt with its key (bad padding)") from None
    yield from inflater.feed(tail)
    inflater.finish()


class _TarStream:
    """A generator of byte strings as the readable file tarfile reads, SHA-1 of what it read kept."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._current = memoryview(b"")
        self.sha1 = hashlib.sha1()

    def read(self, size: int = -1) -> bytes:
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._current = memoryview(chunk)
        size = len(self._current) if size is None or size < 0 else size
        piece = bytes(self._current[:size])
        self._current = self._current[len(piece):]
        self.sha1.update(piece)
        return piece


def unbundle(parts: Iterable[tuple[str, Iterable[bytes]]], key: bytes, iv: bytes, digest: str, size: int,
             out: BinaryIO, spool_dir: Path | None = None) -> None:
    """Write the image a bundle holds into ``out``. ``parts`` are, in order, each part's expected
    SHA-1 (hex) and its bytes as an iterable of chunks; each part is checked, then decrypted,
    gunzipped and untarred as it streams past. BundleError if a part's digest, the decryption, the gzip
    stream, the tar (one regular file of ``size`` bytes) or the tar's SHA-1 ``digest`` is wrong;
    ``out`` then holds a partial image, which the caller throws away. A part larger than
    SPOOL_MEMORY waits for its check in ``spool_dir`` (default: the system's temporary directory)."""
    if len(key) != _SECRET_BYTES or len(iv) != _SECRET_BYTES:
        raise BundleError("the bundle's key and IV must be 16 bytes each")
    stream = _TarStream(_plain(_verified(parts, spool_dir), key, iv))
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise BundleError("the bundle holds no image file")
            if member.size != size:
                raise BundleError(f"the bundle's image is {member.size} bytes, its manifest says {size}")
            shutil.copyfileobj(tar.extractfile(member), out, CHUNK)
            if tar.next() is not None:
                raise BundleError("the bundle holds more than one file")
        while stream.read(CHUNK):  # the tar's end blocks: every part is read and checked
            pass
    except (tarfile.TarError, zlib.error, EOFError) as e:
        raise BundleError(f"the bundle does not unpack (corrupt, or a wrong key): {e}") from None
    if stream.sha1.hexdigest() != digest.lower():
        raise BundleError("the bundle's image does not match its digest in the manifest")
