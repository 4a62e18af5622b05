"""nc.node over libvirt's real test:///default driver, and nc.imagecache against a real
local HTTP server. test:///default's state is shared by the whole process, so every test
uses fresh instance ids and destroys the domains it made."""

import hashlib
import json
import http.server
import os
import threading
import time

import libvirt
import pytest
from lxml import etree

from eucacore import ids
from eucacore.config import default_config
from nc.hypervisor import InstanceSpec
from nc.imagecache import ImageCache
from nc.node import InstanceNotFound, NodeController
from tests.cloudharness import poll_until


# -- a real HTTP server for images ------------------------------------------------------


class ImageServer:
    """Serves ``files`` (path -> bytes) on loopback; counts GETs per path; ``etags`` overrides."""

    def __init__(self):
        self.files, self.etags, self.hits = {}, {}, {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                etag = owner.etags.get(self.path, hashlib.md5(data).hexdigest())
                self.send_header("ETag", f'"{etag}"')
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def images():
    server = ImageServer()
    yield server
    server.close()


# -- the node controller ---------------------------------------------------------------


@pytest.fixture
def make_node(tmp_path):
    """NodeControllers on HYPERVISOR=test over one $EUCALYPTUS; cleans up their domains."""
    made, domains = [], []

    def make(**overrides):
        node = NodeController(default_config(EUCALYPTUS=str(tmp_path), HYPERVISOR="test", **overrides))
        made.append(node)
        return node

    make.domains = domains
    yield make
    for node in made:
        node.workers.shutdown(wait=True)
    if made:
        for name in domains:
            made[0].hypervisor.destroy(name)


def request(instance_id, memory=128, cores=1, disk=1, **extra):
    return {"instanceId": instance_id, "imageId": "emi-12345678", "reservationId": "r-12345678",
            "instanceType": {"name": "m1.small", "memory": memory, "cores": cores, "disk": disk}, **extra}


def wait_for(predicate, timeout=10.0):
    return bool(poll_until(predicate, timeout))


def state_of(node, instance_id):
    records = node.instances([instance_id])
    return records[0]["stateName"] if records else None


def launch(node, make_node, memory=128, cores=1, **extra):
    """Run an instance and wait until it is Extant; returns its id."""
    instance_id = ids.new_id("i")
    make_node.domains.append(instance_id)
    node.run_instance(request(instance_id, memory=memory, cores=cores, **extra))
    assert wait_for(lambda: state_of(node, instance_id) == "Extant"), node.instances([instance_id])
    return instance_id


def test_run_instance_without_image_becomes_extant_and_running(make_node):
    node = make_node()
    instance_id = ids.new_id("i")
    make_node.domains.append(instance_id)
    record = node.run_instance(request(instance_id))
    assert record["instanceId"] == instance_id
    assert record["stateName"] in ("Pending", "Extant")  # acknowledged before staging is done
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")
    assert node.hypervisor.state(instance_id) == "RUNNING"
    record = node.instances([instance_id])[0]
    assert record["guestStateName"] == "RUNNING"
    assert record["reservationId"] == "r-12345678"
    assert record["instanceType"]["memory"] == 128
    assert record["launchTime"] > 0
    dom = node.hypervisor.conn.lookupByName(instance_id)
    assert dom.maxMemory() == 128 * 1024


def test_run_instance_twice_is_one_instance(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    again = node.run_instance(request(instance_id, memory=512))
    assert again["instanceType"]["memory"] == 128
    assert [r["instanceId"] for r in node.instances()] == [instance_id]


def test_run_instance_with_image_url_uses_a_copy_of_the_cached_image(make_node, images):
    images.files["/bucket/image.img"] = os.urandom(64 * 1024)
    node = make_node()
    instance_id = launch(node, make_node, imageURL=images.url("/bucket/image.img"))
    cached = node.instance_dir / "cache" / "emi-12345678"
    disk = node.instance_dir / "work" / instance_id / "root"
    assert cached.read_bytes() == images.files["/bucket/image.img"]
    assert disk.read_bytes() == cached.read_bytes()
    assert not os.path.samefile(disk, cached)  # the instance never writes into the cache
    xml = etree.fromstring(node.hypervisor.conn.lookupByName(instance_id).XMLDesc())
    assert xml.find("devices/disk/source").get("file") == str(disk)

    node.terminate_instance(instance_id)
    assert not disk.parent.exists()
    assert cached.exists()


def test_second_instance_of_an_image_does_not_download_again(make_node, images):
    images.files["/bucket/image.img"] = b"x" * 4096
    node = make_node()
    launch(node, make_node, imageURL=images.url("/bucket/image.img"))
    launch(node, make_node, imageURL=images.url("/bucket/image.img"))
    assert images.hits == {"/bucket/image.img": 1}


def test_image_that_cannot_be_fetched_ends_in_teardown_with_reason(make_node, images):
    node = make_node(WALRUS_DOWNLOAD_MAX_ATTEMPTS=1)
    instance_id = ids.new_id("i")
    make_node.domains.append(instance_id)
    node.run_instance(request(instance_id, imageURL=images.url("/bucket/missing.img")))
    assert wait_for(lambda: state_of(node, instance_id) == "Teardown")
    record = node.instances([instance_id])[0]
    assert "failed to start" in record["statusMessage"]
    assert node.hypervisor.state(instance_id) is None


def test_terminate_destroys_the_domain_and_reports_teardown(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    assert node.terminate_instance(instance_id) == ("Extant", "Teardown")
    assert node.hypervisor.state(instance_id) is None
    assert instance_id not in node.hypervisor.domains()
    record = node.instances([instance_id])[0]  # kept for a while so the CC sees the end
    assert record["stateName"] == "Teardown"
    assert record["guestStateName"] == "SHUTOFF"
    assert node.terminate_instance(instance_id) == ("Teardown", "Teardown")


def test_terminate_unknown_instance(make_node):
    node = make_node()
    with pytest.raises(InstanceNotFound):
        node.terminate_instance(ids.new_id("i"))


def test_resources_subtract_running_instances(make_node):
    node = make_node()
    host = node.hypervisor.host_info()
    before = node.resources()
    assert (before.memory_max, before.cores_max) == (host.memory_mb, host.cores)
    assert (before.memory_free, before.cores_free) == (host.memory_mb, host.cores)
    first = launch(node, make_node, memory=256, cores=1)
    launch(node, make_node, memory=128, cores=2)
    during = node.resources()
    assert during.memory_free == host.memory_mb - 384
    assert during.cores_free == host.cores - 3
    assert during.disk_free == during.disk_max - 2
    node.terminate_instance(first)
    after = node.resources()
    assert after.memory_free == host.memory_mb - 128
    assert after.cores_free == host.cores - 2


def test_resources_apply_max_caps(make_node):
    node = make_node(MAX_MEM=512, MAX_CORES=2, MAX_DISK=3)
    r = node.resources()
    assert (r.memory_max, r.cores_max, r.disk_max) == (512, 2, 3)
    launch(node, make_node, memory=384, cores=1)
    r = node.resources()
    assert (r.memory_free, r.cores_free, r.disk_free) == (128, 1, 2)


def test_instances_staged_at_the_same_time_all_start(make_node):
    node = make_node()
    instance_ids = [ids.new_id("i") for _ in range(4)]
    make_node.domains.extend(instance_ids)
    for instance_id in instance_ids:
        node.run_instance(request(instance_id))
    wait_for(lambda: all(state_of(node, i) == "Extant" for i in instance_ids), timeout=3)
    states = {r["instanceId"]: (r["stateName"], r.get("statusMessage"), r["guestStateName"])
              for r in node.instances(instance_ids)}
    assert all(s == ("Extant", None, "RUNNING") for s in states.values()), states


def test_records_survive_a_restart_of_the_node_controller(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.workers.shutdown(wait=True)
    again = make_node()
    assert state_of(again, instance_id) == "Extant"
    assert again.hypervisor.state(instance_id) == "RUNNING"


def test_reconcile_destroys_prodigal_domains(make_node):
    node = make_node()
    prodigal, foreign = ids.new_id("i"), f"not-ours-{ids.new_id('x')}"
    make_node.domains.extend([prodigal, foreign])
    for name in (prodigal, foreign):
        node.hypervisor.start(InstanceSpec(instance_id=name, uuid=ids.new_request_id(), memory_mb=64, cores=1))
        assert node.hypervisor.state(name) == "RUNNING"
    ours = launch(node, make_node)
    node.reconcile()
    assert node.hypervisor.state(prodigal) is None
    assert node.hypervisor.state(foreign) == "RUNNING"  # not named like an instance: not ours to touch
    assert node.hypervisor.state(ours) == "RUNNING"


def test_reconcile_restarts_an_extant_instance_whose_domain_is_gone(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.hypervisor.destroy(instance_id)  # as after a host reboot
    assert node.hypervisor.state(instance_id) is None
    node.reconcile()
    assert wait_for(lambda: node.hypervisor.state(instance_id) == "RUNNING")
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")


def test_reconcile_resumes_a_pending_instance(make_node):
    node = make_node()
    instance_id = ids.new_id("i")
    make_node.domains.append(instance_id)
    with node.store.atomic():  # acknowledged, then the daemon died before staging
        node.store.db["instances"].insert({"instance_id": instance_id, "spec": json.dumps(
            request(instance_id)), "state": "Pending", "launch_time": ids.now(), "terminated_at": None,
            "reason": ""})
    node.reconcile()
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")
    assert node.hypervisor.state(instance_id) == "RUNNING"


def test_hypervisor_destroy_of_missing_domain_is_success(make_node):
    node = make_node()
    node.hypervisor.destroy(ids.new_id("i"))
    with pytest.raises(libvirt.libvirtError):
        node.hypervisor.conn.lookupByName("i-ffffffff-no-such")


# -- the image cache -----------------------------------------------------------------


def test_fetch_downloads_once(tmp_path, images):
    images.files["/b/img"] = os.urandom(10000)
    cache = ImageCache(tmp_path / "cache", size_mb=10)
    first = cache.fetch("emi-00000001", images.url("/b/img"))
    second = cache.fetch("emi-00000001", images.url("/b/img"))
    assert first == second == tmp_path / "cache" / "emi-00000001"
    assert first.read_bytes() == images.files["/b/img"]
    assert images.hits == {"/b/img": 1}


def test_concurrent_fetches_of_one_image_download_once(tmp_path, images):
    images.files["/b/img"] = os.urandom(200000)
    cache = ImageCache(tmp_path / "cache", size_mb=10)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.fetch("emi-1", images.url("/b/img"))))
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 5
    assert images.hits == {"/b/img": 1}


def test_etag_mismatch_is_rejected_and_leaves_no_file(tmp_path, images):
    images.files["/b/img"] = b"real image bytes"
    images.etags["/b/img"] = hashlib.md5(b"something else").hexdigest()
    cache = ImageCache(tmp_path / "cache", size_mb=10, attempts=2)
    with pytest.raises(RuntimeError, match="does not match ETag"):
        cache.fetch("emi-00000002", images.url("/b/img"))
    assert list((tmp_path / "cache").iterdir()) == []
    assert images.hits == {"/b/img": 2}  # retried, then gave up


def test_multipart_etag_is_not_checked(tmp_path, images):
    images.files["/b/img"] = b"uploaded in parts"
    images.etags["/b/img"] = "0123456789abcdef0123456789abcdef-3"
    cache = ImageCache(tmp_path / "cache", size_mb=10)
    assert cache.fetch("emi-3", images.url("/b/img")).read_bytes() == b"uploaded in parts"


def test_missing_image_fails_after_attempts(tmp_path, images):
    cache = ImageCache(tmp_path / "cache", size_mb=10, attempts=3)
    with pytest.raises(RuntimeError, match="cannot fetch image emi-4"):
        cache.fetch("emi-4", images.url("/b/none"))
    assert images.hits == {"/b/none": 3}
    assert list((tmp_path / "cache").iterdir()) == []


def test_eviction_keeps_the_cache_under_its_size(tmp_path, images):
    kib = 1024
    for name in ("a", "b", "c"):
        images.files[f"/b/{name}"] = os.urandom(400 * kib)
    cache = ImageCache(tmp_path / "cache", size_mb=1)
    now = time.time()
    cache.fetch("emi-a", images.url("/b/a"))
    os.utime(cache.path("emi-a"), (now - 100, now - 100))
    cache.fetch("emi-b", images.url("/b/b"))
    os.utime(cache.path("emi-b"), (now - 50, now - 50))
    cache.fetch("emi-a", images.url("/b/a"))  # used again: now the most recent of the two
    cache.fetch("emi-c", images.url("/b/c"))
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert names == ["emi-a", "emi-c"]  # b was least recently used
    assert sum(p.stat().st_size for p in (tmp_path / "cache").iterdir()) <= 1024 * kib
    assert images.hits == {"/b/a": 1, "/b/b": 1, "/b/c": 1}


def test_image_larger_than_the_cache_is_still_served(tmp_path, images):
    images.files["/b/big"] = os.urandom(1024 * 1024 + 1)
    cache = ImageCache(tmp_path / "cache", size_mb=1)
    path = cache.fetch("emi-big", images.url("/b/big"))
    assert path.stat().st_size == 1024 * 1024 + 1
