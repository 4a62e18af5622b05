"""eucacore.serving: cheroot listeners, request ids, mutual TLS by certificate kind,
sd_notify and draining on stop. Everything runs over real loopback sockets and TLS."""

import hashlib
import http.client
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from lxml import etree

from eucacore import pki, serving
from eucacore.serving import PEER_KIND, REQUEST_ID_HEADER, Listener

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def echo_app(environ, start_response):
    """Answers with the request id and peer kind it was given."""
    if environ["PATH_INFO"] == "/slow":
        if "test.entered" in environ:
            environ["test.entered"].set()
        time.sleep(1.5)
    body = f"{environ['eucalyptus.request_id']} {environ.get(PEER_KIND, '-')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Running:
    """A server from make_server, serving in a thread until stopped."""

    def __init__(self, listener):
        self.server = serving.make_server(listener)
        self.server.prepare()
        self.port = self.server.bind_addr[1]
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.stop()
        self.thread.join(10)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Our CA with a server (cluster), an allowed client (clc) and a refused one (node);
    and a client certificate from another CA."""
    ours = tmp_path_factory.mktemp("ours")
    pki.create_ca(ours)
    for kind in ("cluster", "clc", "node"):
        pki.issue(ours, kind, kind, ["127.0.0.1"])
    theirs = tmp_path_factory.mktemp("theirs")
    pki.create_ca(theirs)
    pki.issue(theirs, "clc", "clc", ["127.0.0.1"])
    return {"server": pki.component_keys(ours, "cluster"), "clc": pki.component_keys(ours, "clc"),
            "node": pki.component_keys(ours, "node"), "foreign": pki.component_keys(theirs, "clc"),
            "ca": ours / pki.CA_CERT}


@pytest.fixture(scope="module")
def plain():
    running = Running(Listener("plain-test", echo_app, "127.0.0.1", 0, threads=4))
    yield f"http://127.0.0.1:{running.port}"
    running.stop()


@pytest.fixture(scope="module")
def mtls(keys):
    running = Running(Listener("mtls-test", echo_app, "127.0.0.1", 0, keys=keys["server"],
                               allowed_peers=frozenset({"clc"}), threads=4))
    yield f"https://127.0.0.1:{running.port}"
    running.stop()


def session(keys, client=None):
    """A requests session that trusts only our CA and ignores the machine's REQUESTS_CA_BUNDLE."""
    s = requests.Session()
    s.trust_env = False
    s.verify = str(keys["ca"])
    if client:
        s.cert = (str(keys[client].cert), str(keys[client].key))
    return s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest_app(environ, start_response):
    """Reads the body with ``readinto`` into a reused 1 MiB buffer; answers its MD5 and the
    size of every read."""
    body, buffer, md5, sizes = environ["wsgi.input"], bytearray(2**20), hashlib.md5(), []
    while got := body.readinto(buffer):
        md5.update(memoryview(buffer)[:got])
        sizes.append(got)
    answer = f"{md5.hexdigest()} {sizes}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


def thread_app(environ, start_response):
    """Answers with the name of the worker thread that serves the request."""
    body = threading.current_thread().name.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# -- plain listener --------------------------------------------------------------


def test_quick_client_keeps_its_worker_and_a_slow_one_is_still_answered(monkeypatch):
    """Requests that follow each other at once on a kept-alive connection are answered by one
    worker without a hand-off; after a pause the connection goes back to cheroot and still works.
    (The wait is made long here, so that a loaded machine's pauses, CI's included, do not count
    as slowness.)"""
    monkeypatch.setattr(serving._Connection, "NEXT_REQUEST_WAIT", 2.0)
    running = Running(Listener("keepalive-test", thread_app, "127.0.0.1", 0, threads=4))
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)

    def worker():
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()

    try:
        quick = [worker() for _ in range(12)]
        # One hand-off at most: the worker of the first turn answers while the next request is
        # already there, then the connection is known to be quick and one worker keeps it (handed
        # back after each request, twelve would go round all four workers).
        assert len(set(quick)) <= 2
        for _ in range(2):
            time.sleep(2.5)
            assert worker() in {thread.name for thread in threading.enumerate()}
    finally:
        conn.close()
        running.stop()


def test_body_readinto_fills_each_buffer_whole():
    """A read may end just short of the app's buffer, the rest arriving later: each readinto
    still fills the buffer whole and every byte arrives once, request after request on one
    kept-alive connection."""
    running = Running(Listener("readinto-test", digest_app, "127.0.0.1", 0, threads=2))
    data = os.urandom(3 * 2**20 + 12345)
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    try:
        for _ in range(2):
            conn.putrequest("PUT", "/upload")
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders()
            conn.send(data[:2**20 - 100])  # the server's first read ends 100 bytes short
            time.sleep(0.2)
            conn.send(data[2**20 - 100:])
            answer = conn.getresponse().read().decode()
            assert answer == f"{hashlib.md5(data).hexdigest()} {[2**20] * 3 + [12345]}"
    finally:
        conn.close()
        running.stop()


def test_healthcheck_answers_ok(plain):
    r = requests.Session().get(plain + "/healthcheck", timeout=10)
    assert r.status_code == 200
    assert r.text == "OK\n"
    assert r.headers[REQUEST_ID_HEADER]


def test_every_response_has_a_fresh_request_id(plain):
    s = requests.Session()
    s.trust_env = False
    ids = set()
    for _ in range(3):
        r = s.get(plain + "/anything", timeout=10)
        assert r.status_code == 200
        rid = r.headers[REQUEST_ID_HEADER]
        assert r.text == f"{rid} -"  # the app saw the same id the client was told
        ids.add(rid)
    assert len(ids) == 3


def test_plain_listener_ignores_an_incoming_request_id(plain):
    s = requests.Session()
    s.trust_env = False
    r = s.get(plain + "/x", headers={REQUEST_ID_HEADER: "forged-id"}, timeout=10)
    assert r.status_code == 200
    assert r.headers[REQUEST_ID_HEADER] != "forged-id"
    assert "forged-id" not in r.text


def test_failing_health_check_is_503(tmp_path):
    def check():
        raise RuntimeError("database gone")

    server = serving.make_server(Listener("h", echo_app, "127.0.0.1", 0, threads=2), health=check)
    server.prepare()
    t = threading.Thread(target=server.serve, daemon=True)
    t.start()
    try:
        s = requests.Session()
        s.trust_env = False
        r = s.get(f"http://127.0.0.1:{server.bind_addr[1]}/healthcheck", timeout=10)
        assert r.status_code == 503
        assert "database gone" in r.text
    finally:
        server.stop()
        t.join(10)


# -- mutual TLS listener -----------------------------------------------------------


def test_allowed_kind_gets_through(mtls, keys):
    r = session(keys, "clc").get(mtls + "/x", timeout=10)
    assert r.status_code == 200
    assert r.text.endswith(" clc")  # the app learns the caller's kind


def _assert_soap_refusal(r, why):
    assert r.status_code == 403
    assert r.headers["Content-Type"].startswith("text/xml")
    fault = etree.fromstring(r.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap11env:Client.Unauthorized"
    assert why in fault.findtext("faultstring")


def test_no_client_certificate_is_403_soap_fault(mtls, keys):
    r = session(keys).get(mtls + "/x", timeout=10)
    _assert_soap_refusal(r, "no client certificate")
    assert r.headers[REQUEST_ID_HEADER]


def test_kind_not_allowed_is_403(mtls, keys):
    r = session(keys, "node").get(mtls + "/x", timeout=10)
    _assert_soap_refusal(r, "'node' not allowed")


def test_certificate_of_another_ca_fails_the_handshake(mtls, keys):
    with pytest.raises(requests.exceptions.SSLError):
        session(keys, "foreign").get(mtls + "/x", timeout=10)


def test_server_is_not_trusted_without_our_ca(mtls, keys):
    s = session(keys, "clc")
    s.verify = True  # the system's CAs, which never signed our server
    with pytest.raises(requests.exceptions.SSLError):
        s.get(mtls + "/x", timeout=10)


def test_healthcheck_needs_no_client_certificate(mtls, keys):
    r = session(keys).get(mtls + "/healthcheck", timeout=10)
    assert r.status_code == 200
    assert r.text == "OK\n"


def test_mtls_listener_keeps_an_incoming_request_id(mtls, keys):
    r = session(keys, "clc").get(mtls + "/x", headers={REQUEST_ID_HEADER: "rid-from-clc"}, timeout=10)
    assert r.status_code == 200
    assert r.headers[REQUEST_ID_HEADER] == "rid-from-clc"
    assert r.text == "rid-from-clc clc"


# -- sd_notify and serve ----------------------------------------------------------------


@pytest.fixture
def notify_socket(monkeypatch):
    """A real AF_UNIX datagram socket standing in for systemd's, named by NOTIFY_SOCKET."""
    short = tempfile.mkdtemp(prefix="sdn")  # AF_UNIX paths must be short
    path = str(Path(short, "notify"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()
    Path(path).unlink(missing_ok=True)
    Path(short).rmdir()


def test_sd_notify_sends_to_notify_socket(notify_socket):
    assert serving.sd_notify("READY=1") is True
    assert notify_socket.recv(64) == b"READY=1"


def test_sd_notify_abstract_socket(monkeypatch):
    name = f"euca-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert serving.sd_notify("STATUS=hello") is True
        assert sock.recv(64) == b"STATUS=hello"


def test_sd_notify_without_systemd_is_false(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert serving.sd_notify("READY=1") is False


def test_serve_drains_in_flight_request_on_stop(notify_socket):
    entered = threading.Event()

    def app(environ, start_response):
        environ["test.entered"] = entered
        return echo_app(environ, start_response)

    port = free_port()
    stop = threading.Event()
    stopped_hook = threading.Event()
    server = threading.Thread(target=serving.serve,
                              args=([Listener("drain-test", app, "127.0.0.1", port, threads=2)],),
                              kwargs={"stop_event": stop, "on_stop": stopped_hook.set}, daemon=True)
    server.start()
    assert notify_socket.recv(64) == b"READY=1"

    result = {}

    def slow():
        s = requests.Session()
        s.trust_env = False
        try:
            result["response"] = s.get(f"http://127.0.0.1:{port}/slow", timeout=20)
        except Exception as e:  # checked below
            result["error"] = e

    client = threading.Thread(target=slow)
    client.start()
    assert entered.wait(10), "the slow request never reached the app"
    stop.set()
    assert notify_socket.recv(64) == b"STOPPING=1"
    client.join(20)
    assert "error" not in result, result.get("error")
    assert result["response"].status_code == 200
    server.join(20)
    assert not server.is_alive(), "serve did not return after draining"
    assert stopped_hook.is_set()
    with pytest.raises(requests.exceptions.ConnectionError):
        s = requests.Session()
        s.trust_env = False
        s.get(f"http://127.0.0.1:{port}/x", timeout=5)
