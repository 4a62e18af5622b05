"""nc.imagecache against a real Walrus on loopback: images fetched with the node certificate,
raw objects and bundles, each downloaded once, checked, and evicted by size."""

import collections
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from clc.ec2 import manifests
from eucacore import bundle, pki
from nc.imagecache import FetchError, ImageCache
from tests.unit.test_walrus_api import ALICE, KEYS, client, serving
from walrus.api import WalrusApp
from walrus.nodeauth import NodeAuth
from walrus.store import WalrusStore

KIB = 1024


class CountingWalrus:
    """A Walrus (WSGI) that counts the GETs of each path it answers."""

    def __init__(self, app):
        self.app, self.gets = app, collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "GET":
            with self._lock:
                self.gets[environ["PATH_INFO"]] += 1
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    keys_dir = tmp_path_factory.mktemp("keys")
    pki.create_ca(keys_dir)
    pki.issue(keys_dir, "node", "node-1", ["127.0.0.1"])
    return keys_dir


@pytest.fixture(scope="module")
def walrus(tmp_path_factory, keys):
    """(endpoint, counting app, ALICE's S3 client) of a Walrus that checks node certificates;
    ALICE owns the private bucket ``images``."""
    root = tmp_path_factory.mktemp("walrus")
    app = CountingWalrus(WalrusApp(WalrusStore(root / "bukkits", root / "walrus.db"), KEYS.get,
                                   node_auth=NodeAuth(keys / pki.CA_CERT)))
    with serving(app, threads=8) as endpoint:
        s3 = client(endpoint, ALICE)
        s3.create_bucket(Bucket="images")
        yield endpoint, app, s3


@pytest.fixture
def cache(tmp_path, keys):
    return ImageCache(tmp_path / "cache", size_mb=10, attempts=2, keys_dir=keys, retry_delay=0)


def upload(walrus, key: str, data: bytes) -> str:
    """``data`` as ALICE's private object images/``key``; its plain URL."""
    endpoint, _, s3 = walrus
    s3.put_object(Bucket="images", Key=key, Body=data)
    return f"{endpoint}/images/{key}"


def cache_files(cache: ImageCache) -> list[str]:
    return sorted(p.name for p in cache.root.iterdir())


def raw_request(image_id: str, url: str) -> dict:
    return {"imageId": image_id, "imageURL": url}


def test_a_raw_image_is_fetched_with_the_node_certificate(walrus, cache):
    data = os.urandom(300 * KIB)
    url = upload(walrus, "raw-1.img", data)
    path = cache.fetch_image(raw_request("emi-00000001", url), "image")
    assert path == cache.root / "emi-00000001" and path.read_bytes() == data
    assert cache.fetch_image(raw_request("emi-00000001", url), "image") == path
    assert walrus[1].gets["/images/raw-1.img"] == 1


def test_without_the_node_key_pair_walrus_refuses_and_nothing_is_cached(walrus, tmp_path):
    url = upload(walrus, "raw-2.img", b"private")
    unsigned = ImageCache(tmp_path / "cache", size_mb=10, attempts=1, keys_dir=tmp_path / "no-keys")
    with pytest.raises(FetchError, match="cannot fetch image emi-00000002: .*HTTP 403 AccessDenied"):
        unsigned.fetch_image(raw_request("emi-00000002", url), "image")
    assert cache_files(unsigned) == []


def test_a_missing_object_is_tried_attempts_times_and_leaves_nothing(walrus, cache):
    with pytest.raises(FetchError, match="HTTP 404 NoSuchKey"):
        cache.fetch_image(raw_request("emi-00000003", f"{walrus[0]}/images/none.img"), "image")
    assert walrus[1].gets["/images/none.img"] == 2 and cache_files(cache) == []


def test_concurrent_launches_of_one_image_download_it_once(walrus, cache):
    url = upload(walrus, "raw-4.img", os.urandom(2 * 1024 * KIB))
    results, errors = [], []

    def launch():
        try:
            results.append(cache.fetch_image(raw_request("emi-00000004", url), "image"))
        except Exception as e:  # reported below, with the others
            errors.append(e)
    threads = [threading.Thread(target=launch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 6 and len(set(results)) == 1
    assert walrus[1].gets["/images/raw-4.img"] == 1


def test_least_recently_used_images_are_evicted_to_the_size(walrus, tmp_path, keys):
    cache = ImageCache(tmp_path / "cache", size_mb=1, keys_dir=keys, retry_delay=0)
    urls = {name: upload(walrus, f"lru-{name}.img", os.urandom(400 * KIB)) for name in "abc"}
    now = time.time()
    cache.fetch("emi-0000000a", urls["a"])
    os.utime(cache.path("emi-0000000a"), (now - 100, now - 100))
    cache.fetch("emi-0000000b", urls["b"])
    os.utime(cache.path("emi-0000000b"), (now - 50, now - 50))
    cache.fetch("emi-0000000a", urls["a"])  # used again: now the most recent of the two
    cache.fetch("emi-0000000c", urls["c"])
    assert cache_files(cache) == ["emi-0000000a", "emi-0000000c"]  # b was least recently used
    assert sum(p.stat().st_size for p in cache.root.iterdir()) <= 1024 * KIB
    assert [walrus[1].gets[f"/images/lru-{name}.img"] for name in "abc"] == [1, 1, 1]


def test_an_evicted_image_stays_with_an_instance_that_links_it(walrus, tmp_path, keys):
    cache = ImageCache(tmp_path / "cache", size_mb=1, keys_dir=keys, retry_delay=0)
    first = cache.fetch("emi-000000d1", upload(walrus, "linked-1.img", os.urandom(700 * KIB)))
    os.link(first, tmp_path / "instance-disk")
    cache.fetch("emi-000000d2", upload(walrus, "linked-2.img", os.urandom(700 * KIB)))
    assert cache_files(cache) == ["emi-000000d2"]
    assert (tmp_path / "instance-disk").stat().st_size == 700 * KIB


def test_a_partial_download_left_by_a_crash_is_removed(tmp_path, keys):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / ".emi-00000005.part").write_bytes(b"half an image")
    assert cache_files(ImageCache(tmp_path / "cache", size_mb=1, keys_dir=keys)) == []


# -- bundles -----------------------------------------------------------------------------------------

def upload_bundle(walrus, keys, tmp_path, name: str, size: int, part_size: int = 64 * KIB) -> tuple[bytes, dict]:
    """An image of ``size`` random bytes bundled and uploaded as ALICE's; (image, the run
    request's ``imageBundle`` the CLC would send for it)."""
    data = os.urandom(size)
    (tmp_path / name).write_bytes(data)
    made = bundle.create_bundle(tmp_path / name, tmp_path / f"{name}.bundle",
                                (keys / pki.CA_CERT).read_bytes(), part_size=part_size)
    for path in (*made.parts, made.manifest):
        upload(walrus, f"{name}/{path.name}", path.read_bytes())
    download = manifests.parse_download(made.manifest.read_bytes())
    sent = manifests.node_bundle(download, (keys / pki.CA_KEY).read_bytes(), (keys / "node-cert.pem").read_bytes(),
                                 lambda part: f"{walrus[0]}/images/{name}/{part}")
    return data, sent


def bundle_request(image_id: str, sent: dict) -> dict:
    return {"imageId": image_id, "imageURL": "http://unused/manifest.xml", "imageBundle": sent}


def test_a_bundle_is_fetched_decrypted_and_unpacked_into_the_cache(walrus, keys, tmp_path, cache):
    data, sent = upload_bundle(walrus, keys, tmp_path, "bundle-1", 200 * KIB)
    assert len(sent["parts"]) == 4
    path = cache.fetch_image(bundle_request("emi-00000b01", sent), "image")
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert [walrus[1].gets[f"/images/bundle-1/bundle-1.part.{i:02d}"] for i in range(4)] == [1, 1, 1, 1]
    assert cache_files(cache) == ["emi-00000b01"]


def test_concurrent_launches_of_a_bundle_fetch_each_part_once(walrus, keys, tmp_path, cache):
    data, sent = upload_bundle(walrus, keys, tmp_path, "bundle-2", 150 * KIB)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.fetch_image(
        {"kernelId": "eki-00000b02", "kernelURL": "unused", "kernelBundle": sent}, "kernel"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and results[0].read_bytes() == data
    assert {walrus[1].gets[f"/images/bundle-2/bundle-2.part.{i:02d}"] for i in range(len(sent["parts"]))} == {1}


def test_a_tampered_part_fails_once_with_the_reason_and_leaves_nothing(walrus, keys, tmp_path, cache):
    _, sent = upload_bundle(walrus, keys, tmp_path, "bundle-3", 200 * KIB)
    part = tmp_path / "bundle-3.bundle" / "bundle-3.part.02"
    tampered = bytearray(part.read_bytes())
    tampered[7] ^= 0xFF
    upload(walrus, "bundle-3/bundle-3.part.02", bytes(tampered))
    with pytest.raises(FetchError, match="cannot fetch image emi-00000b03: part 2 of the bundle does not match"):
        cache.fetch_image(bundle_request("emi-00000b03", sent), "image")
    assert cache_files(cache) == []
    assert walrus[1].gets["/images/bundle-3/bundle-3.part.02"] == 1  # no retry: Walrus holds what it holds


@pytest.mark.parametrize("change, reason", [
    (lambda sent, keys: sent.update(digest="0" * 40), "does not match its digest"),
    (lambda sent, keys: sent.update(encryptedKey=bundle.seal((keys / "node-cert.pem").read_bytes(), os.urandom(16))),
     "corrupt, or a wrong key|bad padding"),
    (lambda sent, keys: sent.update(encryptedKey=bundle.seal((keys / pki.CA_CERT).read_bytes(), os.urandom(16))),
     "not sealed for this node"),
    (lambda sent, keys: sent.update(size=1), "its manifest says 1"),
])
def test_a_wrong_digest_key_or_size_fails_and_leaves_nothing(walrus, keys, tmp_path, cache, change, reason):
    _, sent = upload_bundle(walrus, keys, tmp_path, "bundle-4", 100 * KIB)
    change(sent, keys)
    with pytest.raises(FetchError, match=reason):
        cache.fetch_image(bundle_request("emi-00000b04", sent), "image")
    assert cache_files(cache) == []


def test_a_bundle_needs_the_node_key_pair(walrus, keys, tmp_path):
    _, sent = upload_bundle(walrus, keys, tmp_path, "bundle-5", 10 * KIB)
    unsigned = ImageCache(tmp_path / "cache", size_mb=10, keys_dir=None)
    with pytest.raises(FetchError, match="no key pair"):
        unsigned.fetch_image(bundle_request("emi-00000b05", sent), "image")
    assert cache_files(unsigned) == []
