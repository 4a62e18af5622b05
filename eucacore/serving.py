"""One HTTP serving layer for all five daemons: cheroot, with mutual TLS for components.

A plain-HTTP listener marked ``lean`` (Walrus's S3 port) is served by
:mod:`eucacore.httpserver` instead, which costs far less CPU per small request.

A daemon builds one ``Listener`` per port (a WSGI app plus, for component ports, the
key pair and the certificate kinds allowed to call it) and hands them to ``serve``,
which tells systemd ``READY=1`` once every port listens and drains in-flight
requests on SIGTERM before it returns.
"""

import io
import logging
import os
import select
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile, StreamReader
from cheroot.ssl.builtin import BuiltinSSLAdapter

from eucacore import httpserver
from eucacore.httpserver import MAX_DRAIN, SOCKET
from eucacore.ids import current_request_id, new_request_id
from eucacore.pki import KeyPair

log = logging.getLogger("eucalyptus.http")
#: The logger of the line each answered request leaves (see :class:`RequestLog`).
ACCESS_LOG = "eucalyptus.access"
access_log = logging.getLogger(ACCESS_LOG)

#: The header that carries a request id from component to component.
REQUEST_ID_HEADER = "X-Euca-Request-Id"
_REQUEST_ID_ENVIRON = "HTTP_X_EUCA_REQUEST_ID"
#: WSGI environ key holding the calling component's kind (the OU of its certificate).
PEER_KIND = "eucalyptus.peer_kind"


@dataclass
class Listener:
    """One port of a daemon: the app, where it listens and, for component ports, its TLS.

    ``lean``: serve with :mod:`eucacore.httpserver` rather than cheroot; it speaks plain HTTP
    only, so a listener with ``keys`` stays on cheroot whatever ``lean`` says.
    """

    name: str
    app: Callable
    host: str
    port: int
    keys: KeyPair | None = None
    allowed_peers: frozenset[str] = field(default_factory=frozenset)
    threads: int = 16
    lean: bool = False


class RequestLog:
    """Middleware: gives each request an id and logs one line when it is answered.

    A request id arriving from another component (on a mutual-TLS port only) is
    kept, so one id follows a request from the CLC to the CC to the NC.  The answer
    goes on as a :class:`_LoggedAnswer`, which keeps the app's ``file_range`` in sight
    of the server (see :class:`eucacore.httpserver.FileRange`).
    """

    def __init__(self, app, name: str, trust_incoming_id: bool):
        self.app, self.name, self.trust_incoming_id = app, name, trust_incoming_id

    def __call__(self, environ, start_response):
        incoming = environ.get(_REQUEST_ID_ENVIRON) if self.trust_incoming_id else None
        rid = incoming or new_request_id()
        environ["eucalyptus.request_id"] = rid
        answer = _LoggedAnswer(self.name, environ, current_request_id.set(rid))

        def _start(status, headers, exc_info=None):
            answer.status = status.split(" ", 1)[0]
            return start_response(status, headers + [(REQUEST_ID_HEADER, rid)], exc_info)

        try:
            answer.body = self.app(environ, _start)
        except BaseException:
            answer.close()
            raise
        return answer


class _LoggedAnswer:
    """An app's answer on its way out through :class:`RequestLog`: counts the bytes sent and
    writes the request's line once, when the answer has been iterated to its end or closed."""

    def __init__(self, name: str, environ: dict, token):
        self.name, self.environ, self.token = name, environ, token
        self.started = time.monotonic()
        self.status, self.body, self.sent, self.logged = "-", (), 0, False

    @property
    def file_range(self):
        """The app's :class:`~eucacore.httpserver.FileRange`, if its answer is one."""
        return getattr(self.body, "file_range", None)

    def __iter__(self):
        try:
            for chunk in self.body:
                self.sent += len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        if self.logged:
            return
        self.logged = True
        try:
            close = getattr(self.body, "close", None)
            if close:
                close()
        finally:
            file_range = self.file_range
            sent = self.sent + (file_range.sent if file_range is not None else 0)
            environ = self.environ
            _write_access(f"{self.name} {environ['eucalyptus.request_id']} {environ.get('REQUEST_METHOD')} "
                          f"{environ.get('PATH_INFO')} {self.status} {sent} "
                          f"{(time.monotonic() - self.started) * 1000:.1f}ms "
                          f"peer={environ.get(PEER_KIND) or environ.get('REMOTE_ADDR')}")
            current_request_id.reset(self.token)


def _log_access(line: str) -> None:
    access_log.info("%s", line)


#: Where :class:`RequestLog` sends each request's line (see :func:`write_access_with`).
_write_access = _log_access


def write_access_with(writer: Callable[[str], None] | None) -> None:
    """Send each request's access line to ``writer`` rather than through the ``eucalyptus.access``
    logger (None: back to it).  :func:`eucacore.daemon.setup_logging` installs a writer straight
    to the log file."""
    global _write_access
    _write_access = writer or _log_access


class HealthCheck:
    """Middleware: answers ``GET /healthcheck`` with 200 ``OK``; passes anything else on."""

    def __init__(self, app, check: Callable[[], None] | None = None):
        self.app, self.check = app, check

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/healthcheck" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            try:
                if self.check:
                    self.check()
                body, status = b"OK\n", "200 OK"
            except Exception as e:  # a failed check is an answer, not a crash
                body, status = f"UNHEALTHY {e}\n".encode(), "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


class PeerCheck:
    """Middleware for component ports: only a caller whose certificate the cloud CA
    issued to one of ``allowed`` kinds gets through; the handshake already refused
    certificates of any other CA."""

    def __init__(self, app, allowed: frozenset[str]):
        self.app, self.allowed = app, allowed

    def __call__(self, environ, start_response):
        verified = environ.get("SSL_CLIENT_VERIFY") == "SUCCESS"
        kind = environ.get("SSL_CLIENT_S_DN_OU", "")
        if not verified or (self.allowed and kind not in self.allowed):
            why = "no client certificate" if not verified else f"certificate kind {kind!r} not allowed here"
            body = (b'<?xml version="1.0" encoding="UTF-8"?><soap11env:Envelope '
                    b'xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/"><soap11env:Body>'
                    b"<soap11env:Fault><faultcode>soap11env:Client.Unauthorized</faultcode><faultstring>"
                    + f"refused: {why}".encode() + b"</faultstring></soap11env:Fault></soap11env:Body>"
                    b"</soap11env:Envelope>")
            start_response("403 Forbidden", [("Content-Type", "text/xml; charset=utf-8"),
                                              ("Content-Length", str(len(body)))])
            return [body]
        environ[PEER_KIND] = kind
        return self.app(environ, start_response)


def server_tls_context(keys: KeyPair) -> ssl.SSLContext:
    """TLS for a component port: our certificate; client certificates checked against the cloud CA.

    Verification is optional at the handshake so that ``/healthcheck`` answers a
    prober with no certificate; ``PeerCheck`` refuses every other request without one.
    A certificate from another CA fails the handshake itself.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(keys.cert), str(keys.key))
    ctx.load_verify_locations(str(keys.ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def wrap_app(listener: Listener, health: Callable[[], None] | None = None):
    """The full middleware stack of a listener, outermost first: request log, health, peer check."""
    app = listener.app
    if listener.keys:
        app = PeerCheck(app, listener.allowed_peers)
    app = HealthCheck(app, health)
    return RequestLog(app, listener.name, trust_incoming_id=bool(listener.keys))


class _KnownLengthInput(cheroot_server.KnownLengthRFile):
    """cheroot's request body of known length, with ``readinto``: a large upload goes from the
    socket straight into the app's buffer instead of through a new bytes object per read."""

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` as ``read(len(buffer))`` would, short only at the end of the body.

        Built on ``readinto1``: the pure-Python ``readinto`` below it can fail with "lvalue and
        rvalue have different structures" when a read ends in the middle of its buffered bytes.
        """
        view = memoryview(buffer)[:self.remaining]
        got = 0
        while got < len(view):
            n = self.rfile.readinto1(view[got:])
            if not n:
                break
            got += n
        self.remaining -= got
        return got


class _Gateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, which also hands the app the connection's socket and a
    body of known length that supports ``readinto``."""

    def __init__(self, req):
        if type(req.rfile) is cheroot_server.KnownLengthRFile:
            req.rfile = _KnownLengthInput(req.rfile.rfile, req.rfile.remaining)
        super().__init__(req)

    def get_environ(self):
        environ = super().get_environ()
        environ[SOCKET] = self.req.conn.socket
        return environ

    def start_response(self, status, headers, exc_info=None):
        if getattr(self.req.rfile, "remaining", 0) > MAX_DRAIN:
            self.req.close_connection = True
        return super().start_response(status, headers, exc_info)


class _Request(cheroot_server.HTTPRequest):
    """cheroot's request, also answering ``Expect: 100-Continue`` (any case, as RFC 9110 has it;
    aws-sdk-go sends it capitalized and would otherwise wait a second per upload)."""

    def read_request_headers(self):
        ok = super().read_request_headers()
        expect = self.inheaders.get(b"Expect", b"")
        if ok and expect != b"100-continue" and expect.lower() == b"100-continue":
            self.conn.wfile.write(self.server.protocol.encode("ascii") + b" 100 Continue\r\n\r\n")
        return ok


class _StreamReader(StreamReader):
    """cheroot's socket reader, whose ``readline`` takes a line already in its buffer in one step.

    cheroot reads the request line and every header with ``readline``, which the pure-Python
    ``io`` it builds on answers with a peek and a read per call; that was a good part of the
    cost of a small request.  A line not wholly buffered takes the usual way.
    """

    def readline(self, size=-1):
        with self._read_lock:
            buffer, start = self._read_buf, self._read_pos
            end = buffer.find(b"\n", start) + 1
            if end and (size is None or size < 0 or end - start <= size):
                self._read_pos = end
                self.bytes_read += end - start
                return buffer[start:end]
        return super().readline(size)


def _make_file(sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):
    """cheroot's ``MakeFile`` (also what its TLS adapter builds), reading with :class:`_StreamReader`."""
    if "r" in mode:
        return _StreamReader(sock, mode, bufsize)
    return MakeFile(sock, mode, bufsize)


class _Connection(cheroot_server.HTTPConnection):
    """cheroot's connection, whose worker stays for the next request of a quick client.

    cheroot answers one request per turn of a worker, then hands the kept-alive connection back
    to its selector thread, which hands it to a worker again when the next request arrives:
    a selector registration, a queue and two thread switches per request, more than a small
    request's own parsing.  A client whose last request came within NEXT_REQUEST_WAIT of the
    answer before (an SDK making calls one after another) keeps its worker that long for the
    next one, at most TURN requests in a row so that other connections get their turn; a
    slower client (a busy server's many connections) is handed back at once, as cheroot does.
    """

    RequestHandlerClass = _Request
    NEXT_REQUEST_WAIT = 0.005
    TURN = 100

    def __init__(self, server, sock, cheroot_makefile=None):
        """cheroot passes its ``MakeFile`` (or its TLS adapter's, the same classes): ours replaces it."""
        super().__init__(server, sock, _make_file)
        self._handed_back_at = None

    def communicate(self):
        """Answer requests while they keep coming; True when the connection stays open."""
        quick = self._handed_back_at is not None \
            and time.monotonic() - self._handed_back_at < self.NEXT_REQUEST_WAIT
        for _ in range(self.TURN):
            if not super().communicate():
                return False
            if not (self.server.ready and self._next_request_waiting(self.NEXT_REQUEST_WAIT if quick else 0)):
                break
        self._handed_back_at = time.monotonic()
        return True

    def _next_request_waiting(self, wait: float) -> bool:
        if self.rfile.has_data():
            return True
        readable, _, _ = select.select([self.socket], [], [], wait)
        return bool(readable)


def make_server(listener: Listener, health: Callable[[], None] | None = None) -> wsgi.Server | httpserver.Server:
    """The server (cheroot, or the lean one for a plain ``lean`` listener) of one listener, not yet started."""
    if listener.lean and not listener.keys:
        return httpserver.Server((listener.host, listener.port), wrap_app(listener, health), listener.name,
                                 threads=listener.threads)
    server = wsgi.Server((listener.host, listener.port), wrap_app(listener, health),
                         numthreads=listener.threads, server_name=listener.name,
                         shutdown_timeout=30)
    server.gateway = _Gateway
    server.ConnectionClass = _Connection
    if listener.keys:
        adapter = BuiltinSSLAdapter(str(listener.keys.cert), str(listener.keys.key))
        adapter.context = server_tls_context(listener.keys)
        server.ssl_adapter = adapter
    return server


def sd_notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd if it asked for notifications."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as e:  # the supervisor went away; serving goes on regardless
        log.warning("cannot notify %s: %s", address, e)
        return False
    return True


def serve(listeners: Iterable[Listener], *, on_stop: Callable[[], None] | None = None,
          health: Callable[[], None] | None = None, stop_event: threading.Event | None = None) -> None:
    """Serve every listener until SIGTERM/SIGINT (or ``stop_event``), then drain and return.

    Sends ``READY=1`` once all ports listen and ``STOPPING=1`` when asked to stop;
    in-flight requests are allowed to finish (cheroot's shutdown timeout) before return.
    """
    stop = stop_event or threading.Event()
    servers = [make_server(listener, health) for listener in listeners]
    for server in servers:
        server.prepare()  # binds now, so a busy port fails start-up, not a thread
    threads = [threading.Thread(target=s.serve, name=f"serve-{s.server_name}", daemon=True) for s in servers]
    for t in threads:
        t.start()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    for s in servers:
        log.info("listening on %s:%s (%s%s)", *s.bind_addr, s.server_name, ", mutual TLS" if s.ssl_adapter else "")
    try:
        sd_notify("READY=1")
        stop.wait()
        sd_notify("STOPPING=1")
        log.info("stopping: draining in-flight requests")
        if on_stop:
            on_stop()
    finally:
        for s in servers:
            s.stop()
        for t in threads:
            t.join(timeout=35)
        log.info("stopped")
