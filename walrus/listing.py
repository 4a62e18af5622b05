"""ListObjects and ListObjectsV2 answers rendered straight from the store's rows.

A listing page holds up to a thousand keys; building a dict and then an lxml element per
key and field costs more than the rest of the request.  :class:`ListedObjects` keeps the
rows as the store returned them: iterated, it yields the boto3-shaped dicts that the SOAP
API and the generic serializer read; :func:`serialize` writes the page's XML as text, in
the member order of botocore's model, the same bytes the generic serializer would send.
"""

import time
from collections.abc import Callable, Iterator

from eucacore.awsapi.s3 import S3_NAMESPACE
from eucacore.awsapi.shapes import XML_DECLARATION, xml_escape

from . import acl
from .objects import utc

OPERATIONS = ("ListObjects", "ListObjectsV2")


def _iso8601(ts: float) -> str:
    """A listing's LastModified: whole seconds, as every stored object's time is sent."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(int(ts)))


class ListedObjects:
    """The ``Contents`` of a listing page: the store's rows, each key as ``encode`` sends it,
    each owner shown when ``bucket_owner`` is set (an object without one shows the bucket's)."""

    def __init__(self, rows: list, encode: Callable[[str], str], bucket_owner: str | None):
        self.rows, self.encode, self.bucket_owner = rows, encode, bucket_owner

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        for o in self.rows:
            item = {"Key": self.encode(o.key), "LastModified": utc(o.last_modified), "ETag": o.etag,
                    "Size": o.size, "StorageClass": "STANDARD"}
            if self.bucket_owner is not None:
                item["Owner"] = acl.owner(o.owner or self.bucket_owner)
            if o.checksum_algorithm:
                item["ChecksumAlgorithm"] = [o.checksum_algorithm]
            yield item

    def xml(self) -> str:
        """The page's ``<Contents>`` elements."""
        parts = []
        for o in self.rows:
            checksum = f"<ChecksumAlgorithm>{o.checksum_algorithm}</ChecksumAlgorithm>" \
                if o.checksum_algorithm else ""
            owner = ""
            if self.bucket_owner is not None:
                who = xml_escape(o.owner or self.bucket_owner)
                owner = f"<Owner><DisplayName>{who}</DisplayName><ID>{who}</ID></Owner>"
            parts.append(f"<Contents><Key>{xml_escape(self.encode(o.key))}</Key><LastModified>"
                         f"{_iso8601(o.last_modified)}</LastModified><ETag>{xml_escape(o.etag)}</ETag>{checksum}"
                         f"<Size>{o.size}</Size><StorageClass>STANDARD</StorageClass>{owner}</Contents>")
        return "".join(parts)


def serialize(protocol, operation: str, output: dict, request_id: str):
    """(status, headers, body) of a ListObjects(V2) output whose ``Contents`` is ListedObjects."""
    shape = protocol.service_model.operation_model(operation).output_shape
    parts = [XML_DECLARATION, f'<ListBucketResult xmlns="{S3_NAMESPACE}">']
    for name, member in shape.members.items():
        value = output.get(name)
        if value is None or "location" in member.serialization:
            continue
        if name == "Contents":
            parts.append(value.xml())
        elif name == "CommonPrefixes":
            parts += [f"<CommonPrefixes><Prefix>{xml_escape(p['Prefix'])}</Prefix></CommonPrefixes>" for p in value]
        elif isinstance(value, bool):
            parts.append(f"<{name}>{'true' if value else 'false'}</{name}>")
        else:
            parts.append(f"<{name}>{xml_escape(str(value))}</{name}>")
    parts.append("</ListBucketResult>")
    headers = [("x-amz-request-id", request_id), ("Content-Type", "application/xml")]
    return 200, headers, "".join(parts).encode("utf-8")
