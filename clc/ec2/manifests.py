"""Bundle manifests, as euca-bundle-image writes them (eucacore.bundle): what the CLC needs to
register one, and what a node needs to unpack it.

A bundle is a manifest XML in Walrus naming its encrypted parts.  At RegisterImage the CLC
reads the image's type, architecture, kernel and ramdisk, size and part names
(:func:`parse_manifest`).  At RunInstances it reads the digests and the encrypted key and IV
(:func:`parse_download`), decrypts those with the cloud's private key and seals them for the
node certificate (:func:`node_bundle`), as 4.x's "download manifest" did; the NC then fetches
the parts and checks every digest itself.  The manifest's signature is not checked: this cloud
issues no user certificates (see eucacore.bundle).  The document comes from a user, so it is
parsed without DTDs, entities or network access.
"""

import re
from dataclasses import dataclass

from lxml import etree

from eucacore import bundle
from eucacore.awsapi.errors import AWSError

IMAGE_TYPES = bundle.IMAGE_TYPES
ARCHITECTURES = ("i386", "x86_64")
MAX_PARTS = 10_000  # 100 GiB of the bundlers' 10 MiB parts
#: euca-bundle-image's way of marking a kernel (``<kernel_id>true``) or a ramdisk.
EUCA_MARKER = bundle.MARKER
_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(frozen=True)
class Manifest:
    """What the CLC needs of a bundle's manifest to register it."""

    image_type: str
    architecture: str        # "" when the manifest names none
    kernel_id: str           # the eki- id a machine image boots with, or ""
    ramdisk_id: str
    size: int                # bytes of the unbundled image
    bundled_size: int | None  # bytes of all parts, when the manifest says
    parts: tuple[str, ...]   # the parts' file names, in index order


def invalid(message: str) -> AWSError:
    return AWSError("InvalidManifest", message)


def _text(parent, tag: str) -> str:
    element = parent.find(tag) if parent is not None else None
    return (element.text or "").strip() if element is not None else ""


def _integer(text: str, what: str, required: bool = True) -> int | None:
    if not text and not required:
        return None
    if not text.isdigit():
        raise invalid(f"the manifest's {what} must be a non-negative integer, got '{text}'")
    return int(text)


def _document(data: bytes):
    """The manifest's root element, read without DTDs, entities or network access."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise invalid(f"the manifest is not well-formed XML: {e}") from None
    if root.getroottree().docinfo.doctype or any(isinstance(n, etree._Entity) for n in root.iter()):
        raise invalid("a manifest may not carry a DOCTYPE or entities")
    return root


def parse_manifest(data: bytes) -> Manifest:
    """The manifest ``data`` read without DTDs, entities or network access, or InvalidManifest."""
    return _manifest(_document(data))


def _manifest(root) -> Manifest:
    image, config = root.find("image"), root.find("machine_configuration")
    if root.tag != "manifest" or image is None:
        raise invalid("the document is not an image manifest (<manifest><image>...)")
    kernel, ramdisk = _text(config, "kernel_id"), _text(config, "ramdisk_id")
    image_type = _text(image, "type") or (
        "kernel" if kernel == EUCA_MARKER else "ramdisk" if ramdisk == EUCA_MARKER else "machine")
    if image_type not in IMAGE_TYPES:
        raise invalid(f"the image type '{image_type}' is not machine, kernel or ramdisk")
    if image_type != "machine":
        kernel = ramdisk = ""  # a kernel or ramdisk boots nothing; "true" only marked its type
    elif EUCA_MARKER in (kernel, ramdisk):
        raise invalid("a machine image's manifest marks it as a kernel or ramdisk")
    architecture = _text(config, "architecture")
    if architecture and architecture not in ARCHITECTURES:
        raise invalid(f"the architecture '{architecture}' is not one of {', '.join(ARCHITECTURES)}")
    for tag in ("ec2_encrypted_key", "ec2_encrypted_iv"):
        if not _HEX.match(_text(image, tag)):
            raise invalid(f"the manifest has no {tag} (hex) for the cloud to decrypt the image with")
    return Manifest(image_type=image_type, architecture=architecture, kernel_id=kernel, ramdisk_id=ramdisk,
                    size=_integer(_text(image, "size"), "image size"),
                    bundled_size=_integer(_text(image, "bundled_size"), "bundled size", required=False),
                    parts=tuple(_text(part, "filename") for part in _parts(image.find("parts"))))


def _parts(parts) -> list:
    """The part elements in index order: indexes 0..count-1, each once, plain file names."""
    if parts is None:
        raise invalid("the manifest lists no parts")
    elements = parts.findall("part")
    count = _integer(parts.get("count") or str(len(elements)), "parts count")
    if not 1 <= count <= MAX_PARTS or count != len(elements):
        raise invalid(f"the manifest says {count} parts and lists {len(elements)} (1 to {MAX_PARTS} allowed)")
    by_index: dict[int, object] = {}
    for part in elements:
        index, filename = _integer(part.get("index") or "", "part index"), _text(part, "filename")
        if index >= count or index in by_index:
            raise invalid(f"the part index {index} is out of range or repeated")
        if not filename or "/" in filename or "\\" in filename or filename in (".", "..") or len(filename) > 1024:
            raise invalid(f"the part file name '{filename}' is not a plain file name")
        by_index[index] = part
    if len({_text(part, "filename") for part in by_index.values()}) != count:
        raise invalid("the manifest names a part file twice")
    return [by_index[i] for i in range(count)]


# -- what a node needs to unbundle (the 4.x "download manifest") -------------------------------------

@dataclass(frozen=True)
class Download:
    """The manifest's secrets and digests, which a node needs to fetch and unpack the bundle."""

    digest: str                          # SHA-1 (hex) of the tar stream
    size: int                            # bytes of the unbundled image
    encrypted_key: str                   # ec2_encrypted_key: hex, for the cloud certificate
    encrypted_iv: str
    parts: tuple[tuple[str, str], ...]   # (file name, SHA-1 hex) in index order


def _sha1(text: str, what: str) -> str:
    if len(text) != 40 or not _HEX.match(text):
        raise invalid(f"the manifest's {what} is not a SHA-1 digest (40 hex digits)")
    return text.lower()


def parse_download(data: bytes) -> Download:
    """What a node needs of the manifest ``data`` (checked as parse_manifest does), or InvalidManifest."""
    root = _document(data)
    manifest, image = _manifest(root), root.find("image")
    parts = tuple((_text(part, "filename"), _sha1(_text(part, "digest"), f"digest of part {index}"))
                  for index, part in enumerate(_parts(image.find("parts"))))
    return Download(digest=_sha1(_text(image, "digest"), "image digest"), size=manifest.size,
                    encrypted_key=_text(image, "ec2_encrypted_key"), encrypted_iv=_text(image, "ec2_encrypted_iv"),
                    parts=parts)


def node_bundle(download: Download, cloud_key: bytes, node_cert: bytes, part_url) -> dict:
    """The bundleType a node unbundles with: the image's key and IV decrypted with the cloud's
    private key ``cloud_key`` and sealed for ``node_cert`` (PEM both), its digest and size, and
    each part's ``part_url(file name)`` and digest. InvalidManifest if the bundle was not made
    for this cloud."""
    try:
        key, iv = (bundle.decrypt_secret(cloud_key, download.encrypted_key),
                   bundle.decrypt_secret(cloud_key, download.encrypted_iv))
    except bundle.BundleError as e:
        raise invalid(str(e)) from None
    return {"encryptedKey": bundle.seal(node_cert, key), "encryptedIv": bundle.seal(node_cert, iv),
            "digest": download.digest, "size": download.size,
            "parts": [{"url": part_url(name), "digest": digest} for name, digest in download.parts]}
