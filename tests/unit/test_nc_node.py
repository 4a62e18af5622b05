"""nc.node over libvirt's real test:///default driver, and nc.imagecache against a real
local HTTP server. test:///default's state is shared by the whole process, so every test
uses fresh instance ids and destroys the domains it made."""

import base64
import hashlib
import json
import http.server
import os
import subprocess
import threading
import time

import libvirt
import pytest
from lxml import etree

from eucacore import ids, messages, soap
from eucacore.config import default_config
from nc import seed, service as nc_service
from nc.hypervisor import InstanceSpec
from nc.imagecache import ImageCache
from nc.node import IncorrectState, InstanceNotFound, NodeController, VolumeError
from tests.cloudharness import poll_until
from tests.unit.test_soap import call


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


def test_root_disk_is_a_qcow2_overlay_on_a_hard_link_of_the_cached_image(make_node, images):
    images.files["/bucket/image.img"] = os.urandom(64 * 1024)
    node = make_node()
    instance_id = launch(node, make_node, imageURL=images.url("/bucket/image.img"))
    cached = node.instance_dir / "cache" / "emi-12345678"
    work = node.instance_dir / "work" / instance_id
    disk, base = work / "root", work / "root.base"
    assert cached.read_bytes() == images.files["/bucket/image.img"]
    assert os.path.samefile(base, cached)  # no copy of the image
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(disk)], capture_output=True,
                                     check=True).stdout)
    assert (info["format"], info["backing-filename"], info["virtual-size"]) == ("qcow2", str(base), 64 * 1024)
    assert disk.stat().st_size < 1024 * 1024  # the overlay holds only what the guest writes
    xml = etree.fromstring(node.hypervisor.conn.lookupByName(instance_id).XMLDesc())
    root = xml.xpath("devices/disk[target/@dev='vda']")[0]
    assert (root.find("source").get("file"), root.find("driver").get("type")) == (str(disk), "qcow2")

    cached.unlink()  # evicted from the cache: the instance keeps its base image
    assert base.read_bytes() == images.files["/bucket/image.img"]
    node.terminate_instance(instance_id)
    assert not work.exists()


def test_every_instance_gets_a_nocloud_seed_with_its_user_data_and_key(make_node):
    node = make_node()
    key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host"
    instance_id = launch(node, make_node, userData=base64.b64encode(b"#!/bin/sh\necho hello\n").decode(),
                         keyName=key)
    seed_path = node.instance_dir / "work" / instance_id / "seed.iso"
    files = seed.read_seed(seed_path)
    assert files["label"] == b"cidata"
    assert files["user-data"] == b"#!/bin/sh\necho hello\n"
    assert f"instance-id: {instance_id}" in files["meta-data"].decode()
    assert key in files["meta-data"].decode()
    xml = etree.fromstring(node.hypervisor.conn.lookupByName(instance_id).XMLDesc())
    vdb = xml.xpath("devices/disk[target/@dev='vdb']")[0]
    assert vdb.find("source").get("file") == str(seed_path)
    assert vdb.find("readonly") is not None


def test_an_instance_without_a_key_pair_gets_no_key(make_node):
    node = make_node()
    instance_id = launch(node, make_node, keyName="mykey")  # a bare name is not a key
    files = seed.read_seed(node.instance_dir / "work" / instance_id / "seed.iso")
    assert "public-keys" not in files["meta-data"].decode()
    assert files["user-data"] == b""


def test_second_instance_of_an_image_does_not_download_again(make_node, images):
    images.files["/bucket/image.img"] = b"x" * 4096
    node = make_node()
    launch(node, make_node, imageURL=images.url("/bucket/image.img"))
    launch(node, make_node, imageURL=images.url("/bucket/image.img"))
    assert images.hits == {"/bucket/image.img": 1}


def test_image_that_cannot_be_fetched_ends_in_teardown_with_reason_and_leaves_nothing(make_node, images):
    node = make_node(WALRUS_DOWNLOAD_MAX_ATTEMPTS=1)
    instance_id = ids.new_id("i")
    make_node.domains.append(instance_id)
    node.run_instance(request(instance_id, imageURL=images.url("/bucket/missing.img")))
    assert wait_for(lambda: state_of(node, instance_id) == "Teardown")
    record = node.instances([instance_id])[0]
    assert "failed to start" in record["statusMessage"]
    assert node.hypervisor.state(instance_id) is None
    assert not (node.instance_dir / "work" / instance_id).exists()


def test_reconcile_removes_the_disks_of_ended_and_unknown_instances(make_node):
    node = make_node()
    kept = launch(node, make_node)
    ended = launch(node, make_node)
    node.store.db["instances"].update(ended, {"state": "Teardown", "terminated_at": ids.now()})
    unknown = node.instance_dir / "work" / ids.new_id("i")
    unknown.mkdir()
    (unknown / "root").write_bytes(b"disk")
    make_node().reconcile()
    assert (node.instance_dir / "work" / kept).is_dir()
    assert not (node.instance_dir / "work" / ended).exists()
    assert not unknown.exists()
    assert node.hypervisor.state(ended) is None


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


# -- stop, start, reboot, console output ----------------------------------------------


def test_stop_keeps_the_domain_defined_and_frees_memory_and_cores_but_not_disk(make_node):
    node = make_node()
    host = node.hypervisor.host_info()
    instance_id = launch(node, make_node, memory=256, cores=2)
    assert node.stop_instance(instance_id) == ("Extant", "Stopping")
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    assert node.hypervisor.state(instance_id) == "SHUTOFF"  # defined, off
    record = node.instances([instance_id])[0]
    assert (record["guestStateName"], record.get("statusMessage")) == ("SHUTOFF", None)
    r = node.resources()
    assert (r.memory_free, r.cores_free) == (host.memory_mb, host.cores)
    assert r.disk_free == r.disk_max - 1  # its disk stays on this node
    assert node.stop_instance(instance_id) == ("Stopped", "Stopped")  # no change


def test_start_boots_a_stopped_instance_again_with_a_new_size(make_node):
    node = make_node()
    instance_id = launch(node, make_node, memory=128)
    launched = node.instances([instance_id])[0]["launchTime"]
    node.stop_instance(instance_id, force=True)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    time.sleep(1.1)  # launchTime has a resolution of seconds
    assert node.start_instance(instance_id, {"name": "m1.large", "memory": 512, "cores": 2}) == ("Stopped", "Pending")
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")
    assert node.hypervisor.state(instance_id) == "RUNNING"
    assert node.hypervisor.conn.lookupByName(instance_id).maxMemory() == 512 * 1024
    record = node.instances([instance_id])[0]
    assert record["instanceType"] == {"name": "m1.large", "memory": 512, "cores": 2, "disk": 1}
    assert record["launchTime"] > launched
    assert node.start_instance(instance_id) == ("Extant", "Extant")  # no change


def test_start_after_the_domain_vanished_defines_it_again_from_the_record(make_node, images):
    images.files["/bucket/image.img"] = b"root disk" * 100
    node = make_node()
    instance_id = launch(node, make_node, imageURL=images.url("/bucket/image.img"))
    node.stop_instance(instance_id)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    node.hypervisor.destroy(instance_id)  # as test:///default after a restart of the NC
    node.workers.shutdown(wait=True)
    again = make_node()
    again.reconcile()
    assert state_of(again, instance_id) == "Stopped"  # stays stopped: nothing boots it
    assert again.hypervisor.state(instance_id) is None
    images.files.clear()  # starting again needs no download: the instance has its own disk
    again.start_instance(instance_id)
    assert wait_for(lambda: state_of(again, instance_id) == "Extant"), again.instances([instance_id])
    disk = again.instance_dir / "work" / instance_id / "root"
    xml = etree.fromstring(again.hypervisor.conn.lookupByName(instance_id).XMLDesc())
    assert xml.find("devices/disk/source").get("file") == str(disk)
    assert images.hits == {"/bucket/image.img": 1}


def test_a_restart_that_fails_leaves_the_instance_stopped_with_the_reason(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.stop_instance(instance_id)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")

    def broken(spec):
        raise libvirt.libvirtError("no room for the domain")
    node.hypervisor.start = broken
    node.start_instance(instance_id)
    assert wait_for(lambda: node.instances([instance_id])[0].get("statusMessage"))
    record = node.instances([instance_id])[0]
    assert record["stateName"] == "Stopped"
    assert record["statusMessage"].startswith("failed to start: ")
    assert (node.instance_dir / "work" / instance_id / "console.log").parent.exists()  # disk kept


def test_stop_start_and_reboot_refuse_instances_in_the_wrong_state(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.stop_instance(instance_id)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    with pytest.raises(IncorrectState):
        node.reboot_instance(instance_id)
    node.terminate_instance(instance_id)
    for operation in (node.stop_instance, node.start_instance, node.reboot_instance):
        with pytest.raises(IncorrectState):
            operation(instance_id)
    for operation in (node.stop_instance, node.start_instance, node.reboot_instance, node.console_output):
        with pytest.raises(InstanceNotFound):
            operation(ids.new_id("i"))


def test_terminate_a_stopped_instance(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.stop_instance(instance_id)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    assert node.terminate_instance(instance_id) == ("Stopped", "Teardown")
    assert node.hypervisor.state(instance_id) is None
    assert not (node.instance_dir / "work" / instance_id).exists()


def test_terminate_while_stopping_wins(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    for _ in range(4):  # every power worker busy: the stop waits until the termination is in
        node.power.submit(time.sleep, 0.3)
    node.stop_instance(instance_id)
    node.terminate_instance(instance_id)
    node.power.shutdown(wait=True)
    assert state_of(node, instance_id) == "Teardown"
    assert node.hypervisor.state(instance_id) is None


def test_reboot_keeps_the_instance_extant(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.reboot_instance(instance_id)
    assert state_of(node, instance_id) == "Extant"
    assert node.hypervisor.state(instance_id) == "RUNNING"


def test_reboot_of_an_instance_whose_domain_vanished_boots_it(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.hypervisor.destroy(instance_id)
    node.reboot_instance(instance_id)
    assert wait_for(lambda: node.hypervisor.state(instance_id) == "RUNNING")
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")


def test_a_guest_that_shuts_itself_down_is_stopped(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    node.hypervisor.conn.lookupByName(instance_id).shutdown()  # "poweroff" inside the guest
    record = node.instances([instance_id])[0]
    assert (record["stateName"], record["statusMessage"]) == ("Stopped", messages.GUEST_SHUTDOWN)
    node.start_instance(instance_id)
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")
    assert "statusMessage" not in node.instances([instance_id])[0]


def test_reconcile_finishes_a_stop_and_restarts_an_extant_domain_that_is_off(make_node):
    node = make_node()
    stopping, was_running = launch(node, make_node), launch(node, make_node)
    with node.store.atomic():  # the daemon died while the guest was shutting down
        node.store.db["instances"].update(stopping, {"state": "Stopping"})
    node.hypervisor.power_off(was_running)  # as after a reboot of the host: defined, off
    node.workers.shutdown(wait=True)
    again = make_node()
    again.reconcile()
    assert wait_for(lambda: state_of(again, stopping) == "Stopped")
    assert again.hypervisor.state(stopping) == "SHUTOFF"
    assert wait_for(lambda: state_of(again, was_running) == "Extant")
    assert again.hypervisor.state(was_running) == "RUNNING"


def test_console_output_is_the_tail_of_the_serial_log(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    log_path = node.instance_dir / "work" / instance_id / "console.log"
    xml = etree.fromstring(node.hypervisor.conn.lookupByName(instance_id).XMLDesc())
    assert xml.find("devices/serial").get("type") == "file"
    assert xml.find("devices/serial/source").get("path") == str(log_path)
    assert node.console_output(instance_id) == b""  # nothing written yet
    log_path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(70 * 1024)
    log_path.write_bytes(data)
    assert node.hypervisor.console_output(instance_id) == data[-64 * 1024:]
    node.stop_instance(instance_id)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    node.hypervisor.destroy(instance_id)  # gone while stopped: the log is still there
    assert node.console_output(instance_id) == data[-64 * 1024:]


def test_hypervisor_shutdown_powers_off_a_guest_that_ignores_it(make_node):
    node = make_node()
    instance_id = launch(node, make_node)
    dom = node.hypervisor.conn.lookupByName(instance_id)

    class Deaf:  # a guest without ACPI: shutdown() is ignored
        def __getattr__(self, name):
            return getattr(dom, name)

        def shutdown(self):
            pass
    real = node.hypervisor._lookup
    node.hypervisor._lookup = lambda name: Deaf() if name == instance_id else real(name)
    assert node.hypervisor.shutdown(instance_id, grace=0.3) is False
    node.hypervisor._lookup = real
    assert node.hypervisor.state(instance_id) == "SHUTOFF"
    assert node.hypervisor.shutdown(instance_id, grace=5) is True  # already off
    node.hypervisor.power_off(ids.new_id("i"))  # gone is success


# -- the NC's SOAP face for them, in-process ---------------------------------------------


def test_in_process_stop_start_reboot_console(make_node):
    node = make_node()
    app = nc_service.application(node)
    instance_id = launch(node, make_node)
    reply = call(app, "ncRebootInstance", nc_service.ncRebootInstanceType(correlationId="c-9", instanceId=instance_id))
    assert (reply.correlationId, reply.status) == ("c-9", True)
    call(app, "ncStopInstance", nc_service.ncStopInstanceType(instanceId=instance_id, force=True))
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    with pytest.raises(soap.EucaFault) as info:
        call(app, "ncRebootInstance", nc_service.ncRebootInstanceType(instanceId=instance_id))
    assert info.value.faultcode == "Client.IncorrectInstanceState"
    vm = messages.virtualMachineType(name="m1.medium", memory=256, cores=1, disk=1)
    call(app, "ncStartInstance", nc_service.ncStartInstanceType(instanceId=instance_id, instanceType=vm))
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")
    assert node.instances([instance_id])[0]["instanceType"]["memory"] == 256
    log_path = node.instance_dir / "work" / instance_id / "console.log"
    log_path.write_bytes(b"login: ")
    reply = call(app, "ncGetConsoleOutput", nc_service.ncGetConsoleOutputType(instanceId=instance_id))
    assert base64.b64decode(reply.consoleOutput) == b"login: "
    with pytest.raises(soap.EucaFault) as info:
        call(app, "ncStopInstance", nc_service.ncStopInstanceType(instanceId="i-00000000"))
    assert info.value.faultcode == "Client.InvalidInstanceID.NotFound"


# -- volumes -----------------------------------------------------------------------------


def test_attach_and_detach_a_volume(make_node, tmp_path):
    node = make_node()
    instance_id = launch(node, make_node)
    volume = tmp_path / "vol-1.img"
    volume.write_bytes(bytes(1024 * 1024))
    node.attach_volume(instance_id, "vol-11111111", str(volume), "/dev/vdc")
    node.attach_volume(instance_id, "vol-11111111", str(volume), "/dev/vdc")  # again: no change
    assert node.instances([instance_id])[0]["volumes"] == [
        {"volumeId": "vol-11111111", "remoteDev": str(volume), "localDev": "vdc", "state": "attached"}]
    assert "vdc" in node.hypervisor.disks(instance_id)

    node.stop_instance(instance_id, force=True)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    node.hypervisor.destroy(instance_id)  # the definition is lost: the record is the truth
    node.start_instance(instance_id)
    assert wait_for(lambda: state_of(node, instance_id) == "Extant")
    assert "vdc" in node.hypervisor.disks(instance_id)

    node.detach_volume(instance_id, "vol-11111111")
    assert node.instances([instance_id])[0]["volumes"] == []
    assert "vdc" not in node.hypervisor.disks(instance_id)


def test_volume_refusals(make_node, tmp_path):
    node = make_node()
    first, second = launch(node, make_node), launch(node, make_node)
    volume = tmp_path / "vol.img"
    volume.write_bytes(bytes(4096))
    node.attach_volume(first, "vol-22222222", str(volume), "vdc")
    with pytest.raises(VolumeError) as e:
        node.attach_volume(second, "vol-22222222", str(volume), "vdc")
    assert e.value.code == "VolumeInUse"
    with pytest.raises(VolumeError) as e:
        node.attach_volume(first, "vol-33333333", str(volume), "vdc")  # the device is taken
    assert e.value.code == "InvalidParameterValue"
    for device in ("vda", "/dev/vdb", "sdc", "vd1"):
        with pytest.raises(VolumeError):
            node.attach_volume(first, "vol-44444444", str(volume), device)
    with pytest.raises(VolumeError) as e:
        node.detach_volume(second, "vol-22222222")
    assert e.value.code == "IncorrectState"
    with pytest.raises(InstanceNotFound):
        node.attach_volume(ids.new_id("i"), "vol-55555555", str(volume), "vdd")
    node.terminate_instance(first)  # a terminated instance lets go of its volumes
    node.attach_volume(second, "vol-22222222", str(volume), "vdc")


def test_nc_attach_and_detach_volume_over_soap(make_node, tmp_path):
    node = make_node()
    instance_id = launch(node, make_node)
    volume = tmp_path / "vol.img"
    volume.write_bytes(bytes(4096))
    app = nc_service.application(node)
    call(app, "ncAttachVolume", nc_service.ncAttachVolumeType(instanceId=instance_id, volumeId="vol-66666666",
                                                              remoteDev=str(volume), localDev="/dev/vdd"))
    described = call(app, "ncDescribeInstances", nc_service.ncDescribeInstancesType(instanceIds=[instance_id]))
    assert [(v.volumeId, v.localDev) for v in described.instances[0].volumes] == [("vol-66666666", "vdd")]
    with pytest.raises(soap.EucaFault) as fault:
        call(app, "ncDetachVolume", nc_service.ncDetachVolumeType(instanceId=instance_id, volumeId="vol-77777777"))
    assert "IncorrectState" in fault.value.faultcode
    call(app, "ncDetachVolume", nc_service.ncDetachVolumeType(instanceId=instance_id, volumeId="vol-66666666"))
    assert "vdd" not in node.hypervisor.disks(instance_id)
    resource = call(app, "ncDescribeResource", nc_service.ncDescribeResourceType(resourceType="instance"))
    assert resource.hypervisor == "test"


# -- ncPowerDown --------------------------------------------------------------------------


def test_power_down_runs_the_command_only_when_the_node_holds_no_instance(make_node, tmp_path):
    asleep = tmp_path / "asleep"
    node = make_node(NC_POWERDOWN_COMMAND=f"touch {asleep}")
    instance_id = launch(node, make_node)
    with pytest.raises(IncorrectState, match="holds 1 instance"):
        node.power_down()
    node.terminate_instance(instance_id)
    node.power_down()
    with pytest.raises(IncorrectState, match="powering down"):
        node.run_instance(request(ids.new_id("i")))  # a guest started now would sleep with the host
    assert wait_for(asleep.exists, timeout=5)
    assert wait_for(lambda: not node.powering_down, timeout=5)  # the command returned: awake again
    launch(node, make_node)


def test_power_down_without_a_command_is_refused_over_soap(make_node):
    app = nc_service.application(make_node())
    with pytest.raises(soap.EucaFault) as fault:
        call(app, "ncPowerDown", nc_service.ncPowerDownType())
    assert "IncorrectState" in fault.value.faultcode and "NC_POWERDOWN_COMMAND" in fault.value.faultstring


def test_describe_resource_names_the_mac_that_wakes_the_node(make_node):
    app = nc_service.application(make_node())
    resource = call(app, "ncDescribeResource", nc_service.ncDescribeResourceType(resourceType="instance"))
    assert resource.macAddress == "00:00:00:00:00:00"  # in process, the caller is loopback: lo's
