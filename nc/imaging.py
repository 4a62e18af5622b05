"""CreateImage on the node: a consistent copy of an instance's root disk, uploaded to Walrus.

The CLC hands the node a presigned PUT URL of the new image's object, so the node needs no
credentials of the image's owner. The copy is taken first (with the guest paused, unless the
caller asked for no reboot), so the instance runs on while the copy travels; the upload
streams the copy with its Content-Length and checks the ETag Walrus answers against the
copy's MD5.
"""

import hashlib
import logging
import os
import subprocess
from pathlib import Path

import requests

from nc.hypervisor import disk_format

log = logging.getLogger("eucalyptus.nc.imaging")

#: Tries of an upload: the first and one retry.
UPLOAD_ATTEMPTS = 2
#: Seconds to connect, and to wait for Walrus's answer once the body is sent.
CONNECT_TIMEOUT, ANSWER_TIMEOUT = 10, 600
_CHUNK = 1 << 20


class UploadFailed(Exception):
    """Walrus did not take the image (after the retry)."""


def copy_disk(source: Path, target: Path) -> str:
    """Copy the disk ``source`` to ``target`` as a raw image (a qcow2 overlay is flattened with
    its backing image by qemu-img), through a temporary name so a crash leaves no whole-looking
    copy; the copy's MD5 in hex."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    md5 = hashlib.md5()
    try:
        if disk_format(source) == "qcow2":
            convert = subprocess.run(["qemu-img", "convert", "-O", "raw", str(source), str(tmp)],
                                     capture_output=True, text=True, timeout=3600)
            if convert.returncode:
                raise OSError(f"qemu-img could not copy the disk: {convert.stderr.strip()}")
            with open(tmp, "rb") as copy:
                while chunk := copy.read(_CHUNK):
                    md5.update(chunk)
        else:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
                    md5.update(chunk)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return md5.hexdigest()


def upload(path: Path, url: str, md5: str | None = None, attempts: int = UPLOAD_ATTEMPTS) -> int:
    """PUT the file at ``path`` to ``url``, streamed, with its Content-Length; tried ``attempts``
    times. Returns the bytes sent, or raises UploadFailed with the last reason. An ETag that
    is a plain MD5 must be ``md5``."""
    size = path.stat().st_size
    session = requests.Session()
    session.trust_env = False  # a proxy or CA bundle of the environment is not ours to use
    reason = "not tried"
    for attempt in range(1, attempts + 1):
        try:
            with open(path, "rb") as body:
                answer = session.put(url, data=body, headers={"Content-Length": str(size)},
                                     timeout=(CONNECT_TIMEOUT, ANSWER_TIMEOUT))
            etag = answer.headers.get("ETag", "").strip('"')
            if answer.ok and (not md5 or not etag or "-" in etag or etag == md5):
                return size
            reason = (f"Walrus stored digest {etag}, the disk's is {md5}" if answer.ok else
                      f"HTTP {answer.status_code}: {answer.text[:200]}")
        except requests.RequestException as e:
            reason = str(e)
        log.warning("upload of %s, attempt %d/%d: %s", path.name, attempt, attempts, reason)
    raise UploadFailed(f"upload failed: {reason}")
