"""Multipart uploads: create, upload (or copy) parts, list, abort, complete.

Each part is a file of its own in the bucket's directory, written like any object (temp
file, fsync, rename) and recorded in the ``parts`` table.  Completing concatenates the
parts with copy_file_range into a temp file and commits it in the transaction that
forgets the upload, so a crash leaves either the upload or the object, never both
half-done; :meth:`walrus.store.WalrusStore.sweep` removes files no row names.
"""

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass

from eucacore.awsapi.errors import AWSError
from eucacore.ids import now

from . import acl, checksums
from . import store as st
from .objects import (ChecksumPlan, _attributes, check_preconditions, parse_copy_range, parse_copy_source,
                      refuse_conditional_write, utc)

MIB, GIB = 2**20, 2**30
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 5 * GIB
MAX_PARTS = 10000
MAX_OBJECT_BYTES = 5 * 2**40


@dataclass
class Upload:
    """A multipart upload row."""

    upload_id: str
    bucket: str
    key: str
    owner: str
    initiator: str
    created: float
    content_type: str
    metadata: dict
    headers: dict
    acl: dict | None
    checksum_algorithm: str | None
    checksum_type: str | None  # COMPOSITE or FULL_OBJECT when there is a checksum


@dataclass
class Part:
    part_number: int
    file: str
    size: int
    etag: str
    checksum: str | None
    last_modified: float


_UPLOAD_COLUMNS = ("upload_id, bucket, key, owner, initiator, created, content_type, metadata, headers, "
                   "acl, checksum_algorithm, checksum_type")


def _upload(row) -> Upload:
    fields = list(row)
    fields[7], fields[8] = json.loads(fields[7]), json.loads(fields[8])
    fields[9] = json.loads(fields[9]) if fields[9] else None
    return Upload(*fields)


class Uploads:
    """The multipart tables of a :class:`~walrus.store.WalrusStore`."""

    def __init__(self, store: st.WalrusStore):
        self.store = store

    def create(self, bucket: str, key: str, owner: str, initiator: str, *, content_type, metadata,
               headers, grants, checksum_algorithm, checksum_type) -> Upload:
        created = now()
        upload = Upload(_new_upload_id(created), bucket, key, owner, initiator, created,
                        content_type or "binary/octet-stream", metadata, headers, grants, checksum_algorithm,
                        checksum_type)
        with self.store._write() as conn:
            if not conn.execute("SELECT 1 FROM buckets WHERE name = ?", [bucket]).fetchone():
                raise st.NoSuchBucket(bucket)
            conn.execute(f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [upload.upload_id, bucket, key, owner, initiator, upload.created, upload.content_type,
                          json.dumps(metadata), json.dumps(headers), json.dumps(grants) if grants else None,
                          checksum_algorithm, checksum_type])
        return upload

    def get(self, bucket: str, key: str, upload_id: str) -> Upload:
        """The upload of ``bucket/key`` with that id; NoSuchBucket, NoSuchUpload."""
        row = self.store.db.execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ? "
                                    "AND bucket = ? AND key = ?", [upload_id, bucket, key]).fetchone()
        if row is None:
            self.store.get_bucket(bucket)
            raise st.NoSuchUpload(upload_id)
        return _upload(row)

    def add_part(self, upload: Upload, number: int, temp, size: int, etag: str, checksum: str | None) -> Part:
        """Rename a fsynced temp file into place as part ``number`` (replacing an earlier one)."""
        directory = self.store.root / upload.bucket
        final = directory / secrets.token_hex(16)
        os.rename(temp, final)
        st._fsync_dir(directory)
        part = Part(number, final.name, size, etag, checksum, now())
        try:
            with self.store._write() as conn:
                if not conn.execute("SELECT 1 FROM uploads WHERE upload_id = ?", [upload.upload_id]).fetchone():
                    raise st.NoSuchUpload(upload.upload_id)
                old = conn.execute("SELECT file FROM parts WHERE upload_id = ? AND part_number = ?",
                                   [upload.upload_id, number]).fetchone()
                conn.execute("INSERT OR REPLACE INTO parts (upload_id, part_number, file, size, etag, checksum, "
                             "last_modified) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [upload.upload_id, number, part.file, size, etag, checksum, part.last_modified])
        except BaseException:
            os.unlink(final)
            raise
        if old:
            self.store.remove_files(upload.bucket, [old[0]])
        return part

    def parts(self, upload_id: str, after: int = 0, limit: int = MAX_PARTS + 1) -> list[Part]:
        rows = self.store.db.execute("SELECT part_number, file, size, etag, checksum, last_modified FROM parts "
                                     "WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
                                     [upload_id, after, limit])
        return [Part(*row) for row in rows]

    def listing(self, bucket: str, prefix: str) -> list[Upload]:
        rows = self.store.db.execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = ? AND key >= ? "
                                     "ORDER BY key, upload_id", [bucket, prefix])
        return [_upload(row) for row in rows if row[2].startswith(prefix)]

    def abort(self, upload: Upload) -> None:
        with self.store._write() as conn:
            files = [r[0] for r in conn.execute("SELECT file FROM parts WHERE upload_id = ?", [upload.upload_id])]
            conn.execute("DELETE FROM parts WHERE upload_id = ?", [upload.upload_id])
            if not conn.execute("DELETE FROM uploads WHERE upload_id = ?", [upload.upload_id]).rowcount:
                raise st.NoSuchUpload(upload.upload_id)
        self.store.remove_files(upload.bucket, files)

    def concatenate(self, upload: Upload, parts: list[Part]):
        """A fsynced temp file holding ``parts`` one after the other (copied in the kernel)."""
        directory = self.store.root / upload.bucket
        temp = directory / f"{st.TEMP_PREFIX}{secrets.token_hex(12)}"
        try:
            with open(temp, "xb") as out:
                for part in parts:
                    with open(directory / part.file, "rb") as source:
                        left = part.size
                        while left:
                            copied = os.copy_file_range(source.fileno(), out.fileno(), min(left, GIB))
                            if not copied:
                                raise st.StoreError(f"part {part.part_number} is shorter than recorded")
                            left -= copied
                os.fsync(out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp


def _new_upload_id(created: float) -> str:
    """A fresh upload id that sorts by initiation time: S3 lists a key's uploads in initiation
    order and pages on upload-id-marker by comparing ids, and this keeps the two in step."""
    return f"{int(created * 1_000_000):014x}{secrets.token_urlsafe(18)}"


def _invalid_part(upload: Upload, number: int, etag: str) -> AWSError:
    return AWSError("InvalidPart", "One or more of the specified parts could not be found. The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's entity tag.",
                    400, UploadId=upload.upload_id, PartNumber=number, ETag=etag)


def _check_part_checksum(upload: Upload, entry: dict, part) -> None:
    """A part named by CompleteMultipartUpload must carry its checksum when the upload is COMPOSITE
    (InvalidRequest), and any checksum it carries must be the part's (InvalidPart), as in S3."""
    if not upload.checksum_algorithm:
        return
    given = entry.get(checksums.FIELD[upload.checksum_algorithm])
    if given is None and upload.checksum_type == "COMPOSITE":
        raise AWSError("InvalidRequest", f"The upload was created using a {upload.checksum_algorithm.lower()} "
                       "checksum. The complete request must include the checksum for each part. It was "
                       f"missing for part {part.part_number} in the request.", 400)
    if given is not None and given != part.checksum:
        raise _invalid_part(upload, part.part_number, entry.get("ETag", ""))


def _paging_argument(req, name: str, wire_name: str, default: int) -> int:
    """max-parts, part-number-marker or max-uploads; InvalidArgument when negative, as in S3."""
    value = req.get(name, default)
    if value < 0:
        raise AWSError("InvalidArgument", f"Argument {wire_name} must be an integer between 0 and 2147483647",
                       400, ArgumentName=wire_name, ArgumentValue=value)
    return value


def _part_number(req) -> int:
    number = req.get("PartNumber")
    if not isinstance(number, int) or not 1 <= number <= MAX_PARTS:
        raise AWSError("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive",
                       400, ArgumentName="partNumber", ArgumentValue=number)
    return number


def _checksum_choice(req) -> tuple[str | None, str | None]:
    """(algorithm, COMPOSITE or FULL_OBJECT) a CreateMultipartUpload asks for, as S3 allows them."""
    algorithm = (req.get("ChecksumAlgorithm") or "").upper() or None
    kind = req.get("ChecksumType")
    if kind and not algorithm:
        raise AWSError("InvalidRequest", "The x-amz-checksum-type header can only be used with the "
                       "x-amz-checksum-algorithm header.", 400)
    if not algorithm:
        return None, None
    if algorithm not in checksums.ALGORITHMS:
        raise AWSError("InvalidRequest", f"Checksum algorithm {algorithm} is not supported.", 400)
    kind = kind or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
    allowed = checksums.FULL_OBJECT_ALGORITHMS if kind == "FULL_OBJECT" else checksums.COMPOSITE_ALGORITHMS
    if algorithm not in allowed:
        raise AWSError("InvalidRequest", f"The {kind} checksum type cannot be used with the "
                       f"{algorithm.lower()} checksum algorithm.", 400)
    return algorithm, kind


def _combined_checksum(upload: Upload, parts: list, req: dict) -> str | None:
    """The whole object's checksum from its parts' (composite "…-N" or full-object); BadDigest when
    the CompleteMultipartUpload request carries a different one."""
    algorithm = upload.checksum_algorithm
    if not algorithm:
        return None
    if any(p.checksum is None for p in parts):
        raise AWSError("InvalidRequest", f"The upload was created using a {algorithm.lower()} checksum. "
                       "The complete request must include the checksum for each part.", 400)
    if upload.checksum_type == "FULL_OBJECT":
        combined = checksums.combine_full_object(algorithm, [(p.checksum, p.size) for p in parts])
    else:
        combined = checksums.combine_multipart(algorithm, [p.checksum for p in parts])
    claimed = req.get(checksums.FIELD[algorithm])
    if claimed is not None and claimed.split("-")[0] != combined.split("-")[0]:
        raise AWSError("BadDigest", f"The {algorithm} you specified did not match the calculated "
                       "checksum.", 400)
    return combined


def multipart_etag(part_etags: list[str]) -> str:
    """S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, a dash, the count."""
    joined = b"".join(bytes.fromhex(etag.strip('"')) for etag in part_etags)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(part_etags)}"'


class MultipartHandlers:
    """The multipart operations of :class:`walrus.api.WalrusApp`."""

    @property
    def uploads(self) -> Uploads:
        return Uploads(self.store)

    def _upload_for(self, ctx, req) -> tuple[st.Bucket, Upload]:
        bucket = self.bucket_for(ctx, req["Bucket"], acl.WRITE)
        return bucket, self.uploads.get(req["Bucket"], req["Key"], req["UploadId"])

    def create_multipart_upload(self, ctx, req):
        bucket, key = req["Bucket"], req["Key"]
        self.check_key(key)
        owned = self.bucket_for(ctx, bucket, acl.WRITE)
        owner = ctx.account or owned.owner
        algorithm, checksum_type = _checksum_choice(req)
        attributes = _attributes(req)
        upload = self.uploads.create(bucket, key, owner, ctx.account or "anonymous",
                                     grants=acl.from_request(req, ctx.headers, owner, owned.owner),
                                     checksum_algorithm=algorithm, checksum_type=checksum_type, **attributes)
        output = {"Bucket": bucket, "Key": key, "UploadId": upload.upload_id}
        if algorithm:
            output["ChecksumAlgorithm"], output["ChecksumType"] = algorithm, checksum_type
        return output

    def upload_part(self, ctx, req):
        number = _part_number(req)
        owned, upload = self._upload_for(ctx, req)
        length = ctx.body.remaining
        if length is not None and length > MAX_PART_BYTES:
            raise AWSError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                           ProposedSize=length, MaxSizeAllowed=MAX_PART_BYTES)
        self.check_room(ctx, owned, upload.key, length, replaced=0)
        plan = ChecksumPlan(req, ctx.headers)
        if upload.checksum_algorithm and plan.algorithm != upload.checksum_algorithm:
            raise AWSError("InvalidRequest", f"Checksum Type mismatch occurred, expected checksum Type: "
                           f"{upload.checksum_algorithm.lower()}, actual checksum Type: "
                           f"{(plan.algorithm or 'null').lower()}", 400)
        temp, digests = self.receive(ctx, req, owned, upload.key, plan, limit=MAX_PART_BYTES, inline=False)
        checksum = digests.extra.get("checksum_b64")
        # checked and echoed either way, but kept only where the upload combines part checksums
        kept = checksum if upload.checksum_algorithm else None
        part = self.uploads.add_part(upload, number, temp, digests.size, f'"{digests.md5.hex()}"', kept)
        output = {"ETag": part.etag}
        if checksum:
            output[checksums.FIELD[plan.algorithm]] = checksum
        return output

    def upload_part_copy(self, ctx, req):
        number = _part_number(req)
        owned, upload = self._upload_for(ctx, req)
        source_bucket, source_key = parse_copy_source(req["CopySource"])
        self.authorize(ctx.credentials, "GetObject", {"Bucket": source_bucket, "Key": source_key})
        info, file = self.open_for(ctx, source_bucket, source_key)
        with file:
            check_preconditions(info, req.get("CopySourceIfMatch"), req.get("CopySourceIfUnmodifiedSince"),
                                req.get("CopySourceIfNoneMatch"), req.get("CopySourceIfModifiedSince"),
                                copy=True)
            first, length = parse_copy_range(req.get("CopySourceRange"), info.size) or (0, info.size)
            if length > MAX_PART_BYTES:
                raise AWSError("InvalidRequest", "The specified copy source is larger than the maximum "
                               f"allowable size for a copy source: {MAX_PART_BYTES}", 400)
            self.check_room(ctx, owned, upload.key, length, replaced=0)
            algorithm = upload.checksum_algorithm
            hashers = {"checksum": checksums.new(algorithm)} if algorithm else {}
            temp, digests = self.store.write_temp(owned.name, st.RangeReader(file, first, length), length,
                                                  hashers, inline=False)
        checksum = base64.b64encode(digests.extra["checksum"]).decode() if algorithm else None
        part = self.uploads.add_part(upload, number, temp, digests.size, f'"{digests.md5.hex()}"', checksum)
        result = {"ETag": part.etag, "LastModified": utc(part.last_modified)}
        if checksum:
            result[checksums.FIELD[algorithm]] = checksum
        return {"CopyPartResult": result}

    def complete_multipart_upload(self, ctx, req):
        refuse_conditional_write(req)
        owned, upload = self._upload_for(ctx, req)
        wanted = (req.get("MultipartUpload") or {}).get("Parts") or []
        if not wanted:
            raise AWSError("MalformedXML", "The XML you provided was not well-formed or did not validate "
                           "against our published schema", 400)
        stored = {part.part_number: part for part in self.uploads.parts(upload.upload_id)}
        chosen, previous = [], 0
        for entry in wanted:
            number = entry.get("PartNumber")
            if not isinstance(number, int) or number <= previous:
                raise AWSError("InvalidPartOrder", "The list of parts was not in ascending order. Parts "
                               "must be ordered by part number.", 400, UploadId=upload.upload_id)
            part = stored.get(number)
            if part is None or entry.get("ETag", "").strip('"') != part.etag.strip('"'):
                raise _invalid_part(upload, number, entry.get("ETag", ""))
            _check_part_checksum(upload, entry, part)
            chosen.append(part)
            previous = number
        for part in chosen[:-1]:
            if part.size < MIN_PART_BYTES:
                raise AWSError("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
                               "size", 400, ProposedSize=part.size, MinSizeAllowed=MIN_PART_BYTES,
                               PartNumber=part.part_number, ETag=part.etag)
        size = sum(part.size for part in chosen)
        self.check_room(ctx, owned, upload.key, size)
        checksum = _combined_checksum(upload, chosen, req)
        temp = self.uploads.concatenate(upload, chosen)
        info = self.store.commit_temp(
            temp, upload.bucket, upload.key, size, multipart_etag([p.etag for p in chosen]),
            replaces_upload=upload.upload_id, content_type=upload.content_type, metadata=upload.metadata,
            headers=upload.headers, owner=upload.owner, acl=upload.acl,
            checksum_algorithm=upload.checksum_algorithm, checksum=checksum, parts=len(chosen))
        output = {"Location": f"/{upload.bucket}/{upload.key}", "Bucket": upload.bucket, "Key": upload.key,
                  "ETag": info.etag}
        if checksum:
            output[checksums.FIELD[upload.checksum_algorithm]] = checksum
            output["ChecksumType"] = upload.checksum_type
        return output

    def abort_multipart_upload(self, ctx, req):
        _, upload = self._upload_for(ctx, req)
        self.uploads.abort(upload)
        return {}

    def list_parts(self, ctx, req):
        _, upload = self._upload_for(ctx, req)
        marker = _paging_argument(req, "PartNumberMarker", "part-number-marker", 0)
        max_parts = min(_paging_argument(req, "MaxParts", "max-parts", 1000), 1000)
        parts = self.uploads.parts(upload.upload_id, after=marker, limit=max_parts + 1)
        truncated = 0 < max_parts < len(parts)  # as ListObjects, max-parts 0 is an empty, whole page
        parts = parts[:max_parts]
        output = {"Bucket": upload.bucket, "Key": upload.key, "UploadId": upload.upload_id,
                  "PartNumberMarker": marker, "MaxParts": max_parts, "IsTruncated": truncated,
                  "Initiator": acl.owner(upload.initiator), "Owner": acl.owner(upload.owner), "StorageClass": "STANDARD",
                  "Parts": [self._part_output(upload, p) for p in parts]}
        if truncated:
            output["NextPartNumberMarker"] = parts[-1].part_number
        if upload.checksum_algorithm:
            output["ChecksumAlgorithm"] = upload.checksum_algorithm
        return output

    @staticmethod
    def _part_output(upload: Upload, part: Part) -> dict:
        item = {"PartNumber": part.part_number, "LastModified": utc(part.last_modified), "ETag": part.etag,
                "Size": part.size}
        if part.checksum:
            item[checksums.FIELD[upload.checksum_algorithm]] = part.checksum
        return item

    def list_multipart_uploads(self, ctx, req):
        bucket = self.bucket_for(ctx, req["Bucket"], acl.READ)
        prefix, delimiter = req.get("Prefix", ""), req.get("Delimiter", "")
        key_marker, id_marker = req.get("KeyMarker", ""), req.get("UploadIdMarker", "")
        max_uploads = min(_paging_argument(req, "MaxUploads", "max-uploads", 1000), 1000)
        uploads, prefixes, truncated, last = [], [], False, None
        for upload in self.uploads.listing(bucket.name, prefix):
            cut = upload.key.find(delimiter, len(prefix)) if delimiter else -1
            common = upload.key[:cut + len(delimiter)] if cut >= 0 else None
            if key_marker and (common == key_marker or upload.key < key_marker or (
                    upload.key == key_marker and (not id_marker or upload.upload_id <= id_marker))):
                continue  # a common prefix as the marker was listed in full on the page before
            if common is not None and prefixes and prefixes[-1] == common:
                continue
            if len(uploads) + len(prefixes) >= max_uploads:
                truncated = True
                break
            if common is not None:
                prefixes.append(common)
                last = (common, "")
            else:
                uploads.append(upload)
                last = (upload.key, upload.upload_id)
        output = {"Bucket": bucket.name, "KeyMarker": key_marker, "UploadIdMarker": id_marker,
                  "MaxUploads": max_uploads, "IsTruncated": truncated, "Prefix": prefix,
                  "Uploads": [{"UploadId": u.upload_id, "Key": u.key, "Initiated": utc(u.created),
                               "StorageClass": "STANDARD", "Owner": acl.owner(u.owner),
                               "Initiator": acl.owner(u.initiator)} for u in uploads],
                  "CommonPrefixes": [{"Prefix": p} for p in prefixes]}
        if delimiter:
            output["Delimiter"] = delimiter
        if truncated and last:
            output["NextKeyMarker"], output["NextUploadIdMarker"] = last
        for name in ("Uploads", "CommonPrefixes"):
            if not output[name]:
                del output[name]
        return output
