"""The NC's image cache: each image fetched from Walrus once, kept under a size cap.

An image is downloaded to a temporary file and renamed into place only when it is
complete, so a crash never leaves a half image that looks whole. Least recently
used images are evicted when the cache would exceed its size.
"""

import hashlib
import logging
import os
import threading
from pathlib import Path

import requests

log = logging.getLogger("eucalyptus.nc.cache")


class ImageCache:
    """Images by id under ``root``, at most ``size_mb`` in total."""

    def __init__(self, root: Path, size_mb: int, attempts: int = 9):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.size_bytes = size_mb * 1024 * 1024
        self.attempts = max(1, attempts)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def _lock(self, image_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(image_id, threading.Lock())

    def fetch_image(self, request: dict, prefix: str) -> Path:
        """The cached copy of the image that an ncRunInstance ``request`` names under ``prefix``
        ("image", "kernel" or "ramdisk"): its id is ``<prefix>Id``, where to get it ``<prefix>URL``."""
        return self.fetch(request[f"{prefix}Id"], request[f"{prefix}URL"])

    def fetch(self, image_id: str, url: str) -> Path:
        """The cached image, downloading it from ``url`` first if it is not cached."""
        target = self.path(image_id)
        with self._lock(image_id):
            if target.exists():
                os.utime(target)  # recency for LRU
                return target
            last: Exception | None = None
            for attempt in range(1, self.attempts + 1):
                try:
                    self._download(url, target)
                    break
                except (requests.RequestException, OSError) as e:
                    last = e
                    log.warning("fetch %s attempt %d/%d: %s", image_id, attempt, self.attempts, e)
            else:
                raise RuntimeError(f"cannot fetch image {image_id}: {last}")
        self.evict(keep=image_id)
        return target

    def _download(self, url: str, target: Path) -> None:
        tmp = target.with_name(f".{target.name}.part")
        session = requests.Session()
        session.trust_env = False
        try:
            with session.get(url, stream=True, timeout=60) as r:
                r.raise_for_status()
                md5 = hashlib.md5()
                with open(tmp, "wb") as f:
                    for chunk in r.iter_content(1 << 20):
                        f.write(chunk)
                        md5.update(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                etag = r.headers.get("ETag", "").strip('"')
                if etag and "-" not in etag and etag != md5.hexdigest():
                    raise OSError(f"image digest {md5.hexdigest()} does not match ETag {etag}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)  # a partial download never stays behind

    def evict(self, keep: str | None = None) -> None:
        """Remove least recently used images until the cache fits its size."""
        files = sorted((p for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= self.size_bytes:
                break
            if p.name != keep:
                total -= p.stat().st_size
                p.unlink(missing_ok=True)
                log.info("evicted image %s", p.name)
