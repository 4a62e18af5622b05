"""eucacore.httpserver over real loopback sockets: keep-alive, 100-continue, chunked bodies,
bodies left unread, bad request heads, answers of unknown length, file ranges sent with
sendfile, errors and stopping."""

import hashlib
import io
import os
import socket
import threading
import time

import pytest

from eucacore import httpserver, serving
from eucacore.httpserver import EARLY_CONTINUE, MAX_DRAIN


def digest_app(environ, start_response):
    """Reads the whole body (``readinto`` into a 1 MiB buffer) and answers its size and MD5,
    with the environ fields a test asks about in headers."""
    body, buffer, md5, size = environ["wsgi.input"], bytearray(2**20), hashlib.md5(), 0
    while got := body.readinto(buffer):
        md5.update(memoryview(buffer)[:got])
        size += got
    answer = f"{size} {md5.hexdigest()}".encode()
    fields = [(f"X-{name}", environ.get(name, "-")) for name in
              ("PATH_INFO", "QUERY_STRING", "REQUEST_URI", "CONTENT_LENGTH", "HTTP_X_TWICE")]
    start_response("200 OK", [("Content-Length", str(len(answer)))] + fields)
    return [answer]


def refusing_app(environ, start_response):
    """Answers 400 without reading the body, as an upload refused up front is."""
    start_response("400 Bad Request", [("Content-Length", "7")])
    return [b"refused"]


def streaming_app(environ, start_response):
    """Answers three pieces without a Content-Length."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"one ", b"two ", b"three"])


def failing_app(environ, start_response):
    raise RuntimeError("broken app")


def slow_app(environ, start_response):
    environ["test.entered"].set()
    time.sleep(1.0)
    start_response("200 OK", [("Content-Length", "4")])
    return [b"done"]


ROUTES = {"/refuse": refusing_app, "/stream": streaming_app, "/fail": failing_app, "/slow": slow_app}


class Running:
    """An httpserver.Server on a free loopback port, serving in a thread until stopped."""

    def __init__(self, app, **kwargs):
        self.entered = threading.Event()

        def route(environ, start_response):
            environ["test.entered"] = self.entered
            return ROUTES.get(environ["PATH_INFO"], app)(environ, start_response)

        self.server = httpserver.Server(("127.0.0.1", 0), route, "test", **kwargs)
        self.server.prepare()
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def connect(self) -> "Client":
        return Client(socket.create_connection(self.server.bind_addr, timeout=10))

    def stop(self):
        self.server.stop()
        self.thread.join(10)


class Client:
    """A raw HTTP/1.1 client: sends bytes, reads whole responses (Content-Length or chunked)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        part, self.buf = self.buf.split(marker, 1)
        return part

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        part, self.buf = self.buf[:n], self.buf[n:]
        return part

    def response(self, head_only=False) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body) of the next response."""
        lines = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        headers = {name.lower(): value for name, value in headers.items()}
        status = int(lines[0].split()[1])
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._until(b"\r\n"), 16):
                body += self._exactly(size)
                self._exactly(2)
            self._exactly(2)
            return status, headers, body
        if "content-length" in headers:
            return status, headers, self._exactly(int(headers["content-length"]))
        while True:
            try:
                self._fill()
            except EOFError:
                body, self.buf = self.buf, b""
                return status, headers, body

    def closed(self) -> bool:
        """True when the server closed the connection (nothing more arrives)."""
        try:
            return not self.buf and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    running = Running(digest_app, threads=4)
    yield running
    running.stop()


@pytest.fixture
def client(server):
    c = server.connect()
    yield c
    c.close()


def put(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"PUT {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_keep_alive_answers_requests_one_after_another_on_one_connection(client):
    bodies = [os.urandom(n) for n in (0, 10, 70000)]
    for body in bodies:
        client.send(put("/k", body))
        status, headers, answer = client.response()
        assert status == 200 and answer == f"{len(body)} {hashlib.md5(body).hexdigest()}".encode()
        assert "connection" not in headers and "date" in headers and headers["server"] == "test"


def test_pipelined_requests_are_answered_in_order(client):
    client.send(put("/a", b"first") + put("/b", b"second!"))
    assert client.response()[2] == f"5 {hashlib.md5(b'first').hexdigest()}".encode()
    assert client.response()[2] == f"7 {hashlib.md5(b'second!').hexdigest()}".encode()


def test_expect_100_continue_in_any_case_is_answered_before_the_body(client):
    body = os.urandom(5000)
    head = put("/e", b"", "Expect: 100-Continue").replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
    client.send(head)
    assert client.response()[0] == 100
    client.send(body)
    status, _, answer = client.response()
    assert status == 200 and answer.startswith(b"5000 ")


def expecting(path: str, length: int) -> bytes:
    """A PUT head that declares ``length`` body bytes and waits for 100 Continue before sending them."""
    return put(path, b"", "Expect: 100-continue").replace(b"Content-Length: 0", f"Content-Length: {length}".encode())


def test_expect_100_continue_for_a_short_body_is_sent_before_the_app_runs(server, client):
    body = os.urandom(EARLY_CONTINUE)
    started = time.monotonic()
    client.send(expecting("/slow", len(body)))
    assert client.response()[0] == 100
    assert time.monotonic() - started < 0.9  # slow_app takes 1 s before it answers
    client.send(body)
    status, _, answer = client.response()
    assert (status, answer) == (200, b"done") and server.entered.is_set()
    client.send(put("/after", b"next"))  # the body slow_app never read was drained: the connection goes on
    assert client.response()[2].startswith(b"4 ")


def test_expect_100_continue_refused_short_upload_is_read_and_the_connection_kept(client):
    client.send(expecting("/refuse", 1000))
    assert client.response()[0] == 100
    client.send(b"x" * 1000 + put("/after", b"next"))
    assert client.response()[:1] == (400,)
    assert client.response()[2].startswith(b"4 ")


def test_expect_100_continue_refused_upload_is_answered_without_the_body_and_closed(client):
    assert 99999 > EARLY_CONTINUE  # a body this long waits for the app's first read
    client.send(expecting("/refuse", 99999))
    status, headers, answer = client.response()
    assert (status, answer, headers["connection"]) == (400, b"refused", "close")
    assert client.closed()


def test_short_unread_body_is_drained_and_the_connection_kept(client):
    client.send(put("/refuse", b"x" * 1000) + put("/after", b"next"))
    assert client.response()[:1] == (400,)
    status, _, answer = client.response()
    assert status == 200 and answer.startswith(b"4 ")


def test_long_unread_body_gets_an_early_answer_and_close(client):
    client.send(put("/refuse", b"").replace(b"Content-Length: 0", f"Content-Length: {MAX_DRAIN + 1}".encode()))
    status, headers, answer = client.response()
    assert (status, answer, headers["connection"]) == (400, b"refused", "close")
    assert client.closed()


def test_chunked_request_body_is_decoded_and_the_connection_kept(client):
    data = os.urandom(100000)
    chunks = [data[:1], data[1:65536], data[65536:]]
    encoded = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\nX-Trailer: t\r\n\r\n"
    client.send(b"PUT /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded)
    status, headers, answer = client.response()
    assert status == 200 and answer == f"{len(data)} {hashlib.md5(data).hexdigest()}".encode()
    assert headers["x-content_length"] == "-"
    client.send(put("/again", b"ok"))
    assert client.response()[2].startswith(b"2 ")


def test_unsupported_transfer_coding_is_501_and_closed(client):
    client.send(b"PUT /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    assert client.response()[0] == 501
    assert client.closed()


def test_head_answer_has_no_body(client):
    client.send(b"HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n" + put("/next", b"abc"))
    status, headers, _ = client.response(head_only=True)
    assert status == 200 and headers["content-length"] == "34"
    assert client.response()[2].startswith(b"3 ")  # nothing of the HEAD's body came in between


@pytest.mark.parametrize("request_line", [b"GARBAGE", b"GET /", b"GET / HTTP/1.1 extra", b"GET nopath HTTP/1.1",
                                          b"GET / FTP/1.0"])
def test_malformed_request_line_is_400_and_closed(client, request_line):
    client.send(request_line + b"\r\nHost: test\r\n\r\n")
    assert client.response()[0] == 400
    assert client.closed()


def test_bare_line_feeds_are_400_and_closed(client):
    client.send(b"GET / HTTP/1.1\nHost: test\n\n")
    assert client.response()[0] == 400
    assert client.closed()


def test_http_2_request_line_is_505(client):
    client.send(b"GET / HTTP/2.0\r\n\r\n")
    assert client.response()[0] == 505


def test_oversized_request_head_is_431_and_closed(client):
    client.send(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (httpserver.MAX_HEAD + 10) + b"\r\n\r\n")
    assert client.response()[0] == 431
    assert client.closed()


def test_malformed_content_length_is_400(client):
    client.send(b"PUT / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n")
    assert client.response()[0] == 400


def test_environ_fields_as_wsgi_has_them(client):
    client.send(b"PUT /a%20b%2Fc/d?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nX-Twice: 1\r\nX-Twice: 2\r\n"
                b"Content-Length: 2\r\n\r\nhi")
    _, headers, _ = client.response()
    assert headers["x-path_info"] == "/a b%2Fc/d" and headers["x-query_string"] == "x=1&y=%20"
    assert headers["x-request_uri"] == "/a%20b%2Fc/d?x=1&y=%20"
    assert headers["x-content_length"] == "2" and headers["x-http_x_twice"] == "1, 2"


def test_answer_of_unknown_length_is_chunked_for_http_1_1_and_closed_for_1_0(client, server):
    client.send(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
    status, headers, body = client.response()
    assert (status, headers["transfer-encoding"], body) == (200, "chunked", b"one two three")
    old = server.connect()
    try:
        old.send(b"GET /stream HTTP/1.0\r\n\r\n")
        status, headers, body = old.response()
        assert (status, headers["connection"], body) == (200, "close", b"one two three")
    finally:
        old.close()


def test_http_1_0_keep_alive_on_request(server):
    c = server.connect()
    try:
        c.send(b"PUT /k HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nz")
        status, headers, _ = c.response()
        assert (status, headers["connection"]) == (200, "Keep-Alive")
        c.send(b"PUT /k HTTP/1.0\r\nContent-Length: 1\r\n\r\nz")
        assert c.response()[0] == 200
        assert c.closed()
    finally:
        c.close()


def test_connection_close_is_honoured(client):
    client.send(put("/x", b"1", "Connection: close"))
    assert client.response()[1]["connection"] == "close"
    assert client.closed()


def test_failing_app_is_500_and_closed(client):
    client.send(b"GET /fail HTTP/1.1\r\nHost: test\r\n\r\n")
    assert client.response()[0] == 500
    assert client.closed()


def test_body_sent_in_pieces_fills_each_readinto_whole(client):
    """A read that ends short of the app's buffer is completed from what arrives later."""
    data = os.urandom(2**20 + 12345)
    message = put("/p", data)
    client.send(message[:len(message) - len(data) + 2**20 - 100])
    time.sleep(0.2)
    client.send(message[len(message) - len(data) + 2**20 - 100:])
    assert client.response()[2] == f"{len(data)} {hashlib.md5(data).hexdigest()}".encode()


def test_stop_lets_a_request_in_flight_finish_and_closes_idle_connections():
    running = Running(digest_app, threads=2)
    busy, idle = running.connect(), running.connect()
    try:
        idle.send(put("/idle", b"i"))
        assert idle.response()[0] == 200
        busy.send(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        assert running.entered.wait(10)
        stopper = threading.Thread(target=running.stop)
        stopper.start()
        status, headers, body = busy.response()
        assert (status, body, headers["connection"]) == (200, b"done", "close")
        assert idle.closed() and busy.closed()
        stopper.join(10)
        assert not stopper.is_alive()
        with pytest.raises(OSError):
            socket.create_connection(running.server.bind_addr, timeout=2).close()
    finally:
        busy.close()
        idle.close()


def test_a_client_that_stalls_in_a_body_or_between_requests_is_closed_after_the_timeout():
    running = Running(digest_app, threads=2, timeout=0.5)
    stalled, idle = running.connect(), running.connect()
    try:
        stalled.send(put("/stall", b"x" * 100)[:-90])  # 10 of the 100 body bytes, then nothing
        idle.send(put("/idle", b"i"))
        assert idle.response()[0] == 200
        started = time.monotonic()
        assert stalled.response()[0] == 500  # the app's read failed: it could not answer
        assert stalled.closed() and idle.closed()
        assert time.monotonic() - started < 5
    finally:
        stalled.close()
        idle.close()
        running.stop()


class _NotIterated(httpserver.FileRange):
    """A FileRange that fails if the server iterates it instead of sending it with sendfile."""

    def __iter__(self):
        raise AssertionError("iterated")


def file_range_app(path, cls=httpserver.FileRange, declared=None):
    """Answers ``/range/<offset>/<length>`` with that range of the file at ``path``, through the
    RequestLog middleware, as the daemons' stack has it."""

    def app(environ, start_response):
        offset, length = map(int, environ["PATH_INFO"].split("/")[2:])
        start_response("200 OK", [("Content-Length", str(declared or length))])
        return cls(open(path, "rb"), offset, length)
    return serving.RequestLog(app, "test", trust_incoming_id=False)


@pytest.fixture
def access_lines():
    lines = []
    serving.write_access_with(lines.append)
    yield lines
    serving.write_access_with(None)


def test_a_file_range_is_sent_with_sendfile_and_counted_in_the_access_line(tmp_path, access_lines):
    data = os.urandom(3 * 2**20 + 11)
    (tmp_path / "f").write_bytes(data)
    running = Running(file_range_app(tmp_path / "f", _NotIterated))
    client = running.connect()
    try:
        for offset, length in ((1000, 2 * 2**20 + 7), (0, len(data)), (len(data) - 1, 1)):
            client.send(f"GET /range/{offset}/{length} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            status, headers, body = client.response()
            assert (status, headers["content-length"]) == (200, str(length))
            assert body == data[offset:offset + length]  # and the connection is kept for the next
    finally:
        client.close()
        running.stop()  # the last line is written as the server closes its answer, after sending it
    assert [line.split()[4:6] for line in access_lines] == \
        [["200", str(2 * 2**20 + 7)], ["200", str(len(data))], ["200", "1"]]


def test_a_file_range_without_a_descriptor_is_iterated(access_lines):
    data = os.urandom(2**20 + 5)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(data) - 5))])
        return httpserver.FileRange(io.BytesIO(data), 5, len(data) - 5)
    running = Running(serving.RequestLog(app, "test", trust_incoming_id=False))
    client = running.connect()
    try:
        client.send(b"GET /bytes HTTP/1.1\r\nHost: test\r\n\r\n")
        assert client.response()[2] == data[5:]
    finally:
        client.close()
        running.stop()
    assert [line.split()[4:6] for line in access_lines] == [["200", str(len(data) - 5)]]


def test_a_file_shorter_than_its_declared_range_ends_the_connection(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    running = Running(file_range_app(tmp_path / "f", _NotIterated))
    client = running.connect()
    try:
        client.send(b"GET /range/0/200 HTTP/1.1\r\nHost: test\r\n\r\n")
        status, headers, body = client.response(head_only=True)
        assert (status, headers["content-length"]) == (200, "200")
        received = client._exactly(100)
        assert received == b"x" * 100 and client.closed()  # the client cannot mistake it for a whole answer
    finally:
        client.close()
        running.stop()
