"""CreateImage on the node (nc.node.create_image, nc.imaging) over libvirt's test:///default driver,
uploading to a real HTTP server on loopback that stands in for Walrus's presigned PUT: the bytes
that arrive are the instance's disk, the guest is paused for the copy unless no_reboot, a failed
upload is tried once more, and the task's end is reported in the instance's record."""

import hashlib
import http.server
import os
import subprocess
import tempfile
import threading

import pytest

from eucacore import ids, messages, soap
from nc import imaging
from nc import service as nc_service
from nc.node import IncorrectState, InstanceNotFound
from tests.unit.test_nc_node import launch, make_node, state_of, wait_for  # noqa: F401 (make_node: a fixture)
from tests.unit.test_soap import call


class Walrus:
    """GET and PUT of ``objects`` (path -> bytes) on loopback, answering a PUT with the body's MD5
    as its ETag; ``refuse`` PUTs in a row are answered 500 first. ``puts`` keeps each PUT's headers."""

    def __init__(self):
        self.objects, self.puts, self.refuse = {}, [], 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                data = owner.objects.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                owner.puts.append(dict(self.headers))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if owner.refuse:
                    owner.refuse -= 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                owner.objects[self.path] = body
                self.send_response(200)
                self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def walrus():
    server = Walrus()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def booted(make_node, walrus):
    """(node, instance id) of an Extant instance whose disk came from the image server and
    was then written by its guest (different bytes from the image)."""
    walrus.objects["/images/base.img"] = os.urandom(128 * 1024)
    node = make_node()
    instance_id = launch(node, make_node, imageURL=walrus.url("/images/base.img"))
    disk = node.instance_dir / "work" / instance_id / "root"
    # The guest writes into its qcow2 overlay, never into the image.
    subprocess.run(["qemu-io", "-c", "write -P 0x41 4096 512", str(disk)], check=True, capture_output=True)
    assert raw_disk(disk) != walrus.objects["/images/base.img"]
    yield node, instance_id
    assert wait_for(lambda: not node.store.db["image_tasks"].count_where("state = 'creating'"))
    node.imaging.shutdown(wait=True)


def raw_disk(path) -> bytes:
    """What the guest sees of its disk at ``path`` (a qcow2 overlay flattened with its image)."""
    with tempfile.NamedTemporaryFile() as flat:
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(path), flat.name], check=True, capture_output=True)
        return flat.read()


def task(node, instance_id, image_id):
    """The image's task as the instance's record reports it, or None."""
    for record in node.instances([instance_id]):
        for t in record.get("createImageTasks") or []:
            if t["imageId"] == image_id:
                return t
    return None


def finished(node, instance_id, image_id):
    assert wait_for(lambda: (task(node, instance_id, image_id) or {}).get("stateName") not in (None, "creating"))
    return task(node, instance_id, image_id)


def test_the_uploaded_image_is_the_instance_disk(booted, walrus):
    node, instance_id = booted
    disk = raw_disk(node.instance_dir / "work" / instance_id / "root")
    node.create_image(instance_id, "emi-00000001", walrus.url("/images/emi-00000001.img"))
    done = finished(node, instance_id, "emi-00000001")
    assert done == {"imageId": "emi-00000001", "stateName": "succeeded", "bytes": len(disk)}
    assert walrus.objects["/images/emi-00000001.img"] == disk
    assert walrus.puts[-1]["Content-Length"] == str(len(disk)) and "Transfer-Encoding" not in walrus.puts[-1]
    record = node.instances([instance_id])[0]
    assert record["createImageStateName"] == messages.CREATEIMAGE_SUCCEEDED
    assert record["stateName"] == "Extant" and node.hypervisor.state(instance_id) == "RUNNING"
    assert not list((node.instance_dir / "images").iterdir())  # the copy is gone once uploaded


def test_the_guest_is_paused_for_the_copy_unless_no_reboot(booted, walrus, monkeypatch):
    node, instance_id = booted
    seen = []
    copy_disk = imaging.copy_disk

    def watched(source, target):
        seen.append(node.hypervisor.state(instance_id))
        return copy_disk(source, target)
    monkeypatch.setattr(imaging, "copy_disk", watched)
    node.create_image(instance_id, "emi-00000002", walrus.url("/images/2.img"))
    finished(node, instance_id, "emi-00000002")
    node.create_image(instance_id, "emi-00000003", walrus.url("/images/3.img"), no_reboot=True)
    finished(node, instance_id, "emi-00000003")
    assert seen == ["PAUSED", "RUNNING"]
    assert node.hypervisor.state(instance_id) == "RUNNING"


def test_a_failed_upload_is_tried_once_more(booted, walrus):
    node, instance_id = booted
    walrus.refuse = 1
    node.create_image(instance_id, "emi-00000004", walrus.url("/images/4.img"))
    assert finished(node, instance_id, "emi-00000004")["stateName"] == "succeeded"
    assert len(walrus.puts) == 2 and "/images/4.img" in walrus.objects


def test_an_upload_refused_twice_fails_with_the_reason(booted, walrus):
    node, instance_id = booted
    walrus.refuse = 2
    node.create_image(instance_id, "emi-00000005", walrus.url("/images/5.img"))
    done = finished(node, instance_id, "emi-00000005")
    assert done["stateName"] == "failed" and "HTTP 500" in done["statusMessage"]
    assert node.instances([instance_id])[0]["createImageStateName"] == "failed"
    assert node.instances([instance_id])[0]["stateName"] == "Extant"


def test_a_stopped_instance_is_imaged_and_asking_again_is_no_new_task(booted, walrus):
    node, instance_id = booted
    node.stop_instance(instance_id, force=True)
    assert wait_for(lambda: state_of(node, instance_id) == "Stopped")
    node.create_image(instance_id, "emi-00000006", walrus.url("/images/6.img"))
    node.create_image(instance_id, "emi-00000006", walrus.url("/images/6.img"))
    assert finished(node, instance_id, "emi-00000006")["stateName"] == "succeeded"
    assert len(node.instances([instance_id])[0]["createImageTasks"]) == 1
    assert walrus.objects["/images/6.img"] == raw_disk(node.instance_dir / "work" / instance_id / "root")


def test_refusals(make_node, booted, walrus):
    node, instance_id = booted
    with pytest.raises(InstanceNotFound):
        node.create_image("i-00000000", "emi-00000007", walrus.url("/x"))
    bare = launch(node, make_node)  # no image, so no disk
    with pytest.raises(IncorrectState):
        node.create_image(bare, "emi-00000007", walrus.url("/x"))
    node.terminate_instance(instance_id)
    with pytest.raises(IncorrectState):
        node.create_image(instance_id, "emi-00000007", walrus.url("/x"))
    assert not node.store.db["image_tasks"].count


def test_a_task_interrupted_by_a_restart_starts_again(make_node, booted, walrus):
    node, instance_id = booted
    with node.store.atomic() as db:  # as a kill -9 mid-copy leaves it
        db["image_tasks"].insert({"image_id": "emi-00000008", "instance_id": instance_id,
                                  "url": walrus.url("/images/8.img"), "no_reboot": 1, "state": "creating",
                                  "bytes": 0, "message": "", "started": ids.now(), "finished": None})
    restarted = make_node()
    restarted.reconcile()
    assert finished(restarted, instance_id, "emi-00000008")["stateName"] == "succeeded"
    assert walrus.objects["/images/8.img"] == raw_disk(node.instance_dir / "work" / instance_id / "root")
    restarted.imaging.shutdown(wait=True)


def test_a_terminated_instance_still_reports_its_image(booted, walrus, monkeypatch):
    node, instance_id = booted
    monkeypatch.setattr("nc.node.TEARDOWN_KEEP", 0)
    node.create_image(instance_id, "emi-00000009", walrus.url("/images/9.img"), no_reboot=True)
    finished(node, instance_id, "emi-00000009")
    node.terminate_instance(instance_id)
    record = node.instances([instance_id])[0]  # past TEARDOWN_KEEP, kept for its task
    assert record["stateName"] == "Teardown" and record["createImageStateName"] == "succeeded"


def test_in_process_nc_create_image(booted, walrus):
    node, instance_id = booted
    app = nc_service.application(node)
    reply = call(app, "ncCreateImage", nc_service.ncCreateImageType(
        correlationId="c-1", instanceId=instance_id, imageId="emi-0000000a", imageURL=walrus.url("/images/a.img"),
        noReboot=True))
    assert reply.correlationId == "c-1"
    finished(node, instance_id, "emi-0000000a")
    reply = call(app, "ncDescribeInstances", nc_service.ncDescribeInstancesType(instanceIds=[instance_id]))
    (reported,) = reply.instances
    assert reported.createImageStateName == "succeeded"
    assert [(t.imageId, t.stateName, t.bytes) for t in reported.createImageTasks] == \
        [("emi-0000000a", "succeeded", len(walrus.objects["/images/a.img"]))]
    with pytest.raises(soap.EucaFault) as info:
        call(app, "ncCreateImage", nc_service.ncCreateImageType(instanceId="i-00000000", imageId="emi-0000000b",
                                                                imageURL=walrus.url("/x")))
    assert info.value.faultcode == "Client.InvalidInstanceID.NotFound"
