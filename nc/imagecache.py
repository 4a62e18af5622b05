"""The NC's image cache: each image fetched from Walrus once, kept under a size cap.

The NC holds no S3 keys: it signs each GET with its own key pair (eucacore.certsig; Walrus
checks the node certificate against the cloud CA, walrus.nodeauth). A raw image is checked
against its MD5 ETag. A bundled image (``<prefix>Bundle`` in the run request) is fetched part
by part, each part checked against its SHA-1, then decrypted with the key the CLC sealed for
this node, gunzipped and untarred on the way in (eucacore.bundle). Either way the image is
written to a temporary file and renamed into place only when it is complete and checked, so
neither a crash nor a bad download leaves a half image that looks whole. Concurrent launches
of one image wait for one download. Least recently used images are evicted when the cache
would exceed its size; eviction only unlinks the cache's name, so an instance that links an
evicted image keeps its copy.
"""

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
from lxml import etree

from eucacore import bundle, certsig, pki

log = logging.getLogger("eucalyptus.nc.cache")
TIMEOUT = 60
#: The longest wait between two attempts at one image.
MAX_RETRY_DELAY = 30
_PARTIAL = ".part"


class FetchError(RuntimeError):
    """An image that could not be fetched into the cache; the message says why."""


class ImageCache:
    """Images by id under ``root``, at most ``size_mb`` in total, fetched with up to ``attempts``
    tries each, signed with the node key pair of ``keys_dir`` when it holds one."""

    def __init__(self, root: Path, size_mb: int, attempts: int = 9, keys_dir: Path | None = None,
                 retry_delay: float = 0.5):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.size_bytes = size_mb * 1024 * 1024
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        self.keys = pki.component_keys(keys_dir, "node") if keys_dir else None
        if self.keys is not None and not self.keys.exists():
            log.warning("no node key pair in %s: images are fetched unsigned, which Walrus refuses", keys_dir)
            self.keys = None
        self.signer = certsig.CertSigner(self.keys) if self.keys else None
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._evicting = threading.Lock()
        for stale in self.root.glob(f".*{_PARTIAL}"):  # downloads a crash interrupted
            stale.unlink(missing_ok=True)

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def _lock(self, image_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(image_id, threading.Lock())

    def fetch_image(self, request: dict, prefix: str) -> Path:
        """The cached copy of the image that an ncRunInstance ``request`` names under ``prefix``
        ("image", "kernel" or "ramdisk"): its id is ``<prefix>Id``, where to get it ``<prefix>URL``,
        or, for a bundle, ``<prefix>Bundle`` (messages.bundleType). FetchError if it cannot be had."""
        image_id, unpacked = request[f"{prefix}Id"], request.get(f"{prefix}Bundle")
        if unpacked:
            return self._cached(image_id, lambda tmp: self._unbundle(unpacked, tmp))
        return self.fetch(image_id, request[f"{prefix}URL"])

    def fetch(self, image_id: str, url: str) -> Path:
        """The cached raw image, downloaded from ``url`` first if it is not cached."""
        return self._cached(image_id, lambda tmp: self._download(url, tmp))

    def _cached(self, image_id: str, write: Callable[[Path], None]) -> Path:
        """The cached image, made by ``write(temporary path)`` first if it is not cached."""
        target = self.path(image_id)
        with self._lock(image_id):
            if target.exists():
                os.utime(target)  # recency for LRU
                return target
            self._with_retries(image_id, lambda: self._write_into(target, write))
        self.evict(keep=image_id)
        return target

    def _with_retries(self, image_id: str, attempt_once: Callable[[], None]) -> None:
        """``attempt_once`` until it succeeds, ``attempts`` times at most, waiting longer each time.
        A bundle that does not unpack is not tried again: what Walrus holds will not change."""
        for attempt in range(1, self.attempts + 1):
            try:
                attempt_once()
                return
            except bundle.BundleError as e:
                raise FetchError(f"cannot fetch image {image_id}: {e}") from None
            except (requests.RequestException, OSError) as e:
                log.warning("fetch %s attempt %d/%d: %s", image_id, attempt, self.attempts, e)
                if attempt == self.attempts:
                    raise FetchError(f"cannot fetch image {image_id}: {e}") from None
                time.sleep(min(self.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY))

    @staticmethod
    def _write_into(target: Path, write: Callable[[Path], None]) -> None:
        tmp = target.with_name(f".{target.name}{_PARTIAL}")
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)  # a partial image never stays behind

    # -- from Walrus ----------------------------------------------------------------------------

    def _get(self, session: requests.Session, url: str) -> requests.Response:
        """A streamed GET of ``url``, signed with the node key; an HTTPError naming Walrus's
        error code and message unless it answers 2xx."""
        request = session.prepare_request(requests.Request("GET", url))
        if self.signer is not None:
            request.headers.update(self.signer.headers("GET", request.path_url))
        response = session.send(request, stream=True, timeout=TIMEOUT)
        if response.status_code >= 300:
            with response:
                reason = _s3_error(response.content[:4096]) or response.reason
            raise requests.HTTPError(f"{url}: HTTP {response.status_code} {reason}", response=response)
        return response

    def _download(self, url: str, tmp: Path) -> None:
        """The raw image at ``url`` into ``tmp``, checked against its MD5 ETag (not a multipart one)."""
        with _session() as session, self._get(session, url) as response, open(tmp, "wb") as f:
            md5 = hashlib.md5()
            for chunk in response.iter_content(bundle.CHUNK):
                f.write(chunk)
                md5.update(chunk)
            f.flush()
            os.fsync(f.fileno())
            etag = response.headers.get("ETag", "").strip('"')
            if etag and "-" not in etag and etag != md5.hexdigest():
                raise OSError(f"image digest {md5.hexdigest()} does not match ETag {etag}")

    def _parts(self, session: requests.Session, url: str) -> Iterator[bytes]:
        with self._get(session, url) as response:
            yield from response.iter_content(bundle.CHUNK)

    def _unbundle(self, unpacked: dict, tmp: Path) -> None:
        """The image of a bundle (messages.bundleType as a dict) into ``tmp``: parts fetched and
        checked, then decrypted with the key the CLC sealed for this node and unpacked."""
        if self.keys is None:
            raise bundle.BundleError("this node has no key pair to open the image's key with")
        node_key = self.keys.key.read_bytes()
        key, iv = bundle.unseal(node_key, unpacked["encryptedKey"]), bundle.unseal(node_key, unpacked["encryptedIv"])
        with _session() as session, open(tmp, "wb") as out:
            parts = ((part["digest"], self._parts(session, part["url"])) for part in unpacked.get("parts") or ())
            bundle.unbundle(parts, key, iv, unpacked["digest"], int(unpacked["size"]), out, spool_dir=self.root)
            out.flush()
            os.fsync(out.fileno())

    # -- the size cap ----------------------------------------------------------------------------

    def evict(self, keep: str | None = None) -> None:
        """Remove least recently used images until the cache fits its size (``keep`` stays)."""
        with self._evicting:
            entries = []
            for p in self.root.iterdir():
                if not p.name.startswith(".") and p.is_file():
                    try:
                        entries.append((p.stat(), p))
                    except FileNotFoundError:
                        continue
            entries.sort(key=lambda entry: entry[0].st_mtime)
            total = sum(stat.st_size for stat, _ in entries)
            for stat, p in entries:
                if total <= self.size_bytes:
                    break
                if p.name != keep:
                    total -= stat.st_size
                    p.unlink(missing_ok=True)
                    log.info("evicted image %s", p.name)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy or CA bundle of the environment between the NC and Walrus
    return session


def _s3_error(document: bytes) -> str:
    """``Code: Message`` of an S3 error document, or "" if ``document`` is none."""
    try:
        root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return ""
    code, message = root.findtext("Code"), root.findtext("Message")
    return f"{code}: {message}" if code else ""
