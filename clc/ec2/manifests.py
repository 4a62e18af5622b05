"""Bundle manifests, as euca-bundle-image writes them: what the CLC needs to register one.

A bundle is a manifest XML in Walrus naming its encrypted parts.  The CLC reads the image's
type, architecture, kernel and ramdisk, size and part names; the keys, digests and signature
are the NC's business when it fetches and decrypts the parts.  The document comes from a
user, so it is parsed without DTDs, entities or network access.
"""

import re
from dataclasses import dataclass

from lxml import etree

from eucacore.awsapi.errors import AWSError

IMAGE_TYPES = ("machine", "kernel", "ramdisk")
ARCHITECTURES = ("i386", "x86_64")
MAX_PARTS = 10_000  # 100 GiB of the bundlers' 10 MiB parts
#: euca-bundle-image's way of marking a kernel (``<kernel_id>true``) or a ramdisk.
EUCA_MARKER = "true"
_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(frozen=True)
class Manifest:
    """What the CLC needs of a bundle's manifest; its keys, digests and signature are the
    NC's business when it fetches and decrypts the parts."""

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


def parse_manifest(data: bytes) -> Manifest:
    """The manifest ``data`` read without DTDs, entities or network access, or InvalidManifest."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise invalid(f"the manifest is not well-formed XML: {e}") from None
    if root.getroottree().docinfo.doctype or any(isinstance(n, etree._Entity) for n in root.iter()):
        raise invalid("a manifest may not carry a DOCTYPE or entities")
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
                    parts=_parts(image.find("parts")))


def _parts(parts) -> tuple[str, ...]:
    """The part file names in index order: indexes 0..count-1, each once, plain file names."""
    if parts is None:
        raise invalid("the manifest lists no parts")
    elements = parts.findall("part")
    count = _integer(parts.get("count") or str(len(elements)), "parts count")
    if not 1 <= count <= MAX_PARTS or count != len(elements):
        raise invalid(f"the manifest says {count} parts and lists {len(elements)} (1 to {MAX_PARTS} allowed)")
    by_index: dict[int, str] = {}
    for part in elements:
        index, filename = _integer(part.get("index") or "", "part index"), _text(part, "filename")
        if index >= count or index in by_index:
            raise invalid(f"the part index {index} is out of range or repeated")
        if not filename or "/" in filename or "\\" in filename or filename in (".", "..") or len(filename) > 1024:
            raise invalid(f"the part file name '{filename}' is not a plain file name")
        by_index[index] = filename
    if len(set(by_index.values())) != count:
        raise invalid("the manifest names a part file twice")
    return tuple(by_index[i] for i in range(count))
