"""A lean HTTP/1.1 server for a plain-HTTP WSGI port: Walrus's S3 port.

Why not cheroot there: for a 4 KiB S3 request cheroot's own work (a pure-Python buffered
reader, a selector and a queue between every two requests of a connection, several objects
per request) cost about as much CPU as the request's S3 handling.  This server gives each
connection a thread that reads the request head in one ``recv``, parses it in a few string
operations and answers with one ``send``; at most ``threads`` requests are answered at a
time (idle kept-alive connections only wait).  It speaks plain HTTP only: ports with TLS
stay on cheroot (``eucacore.serving``).

What it keeps of HTTP/1.1: keep-alive, ``Expect: 100-continue`` (answered when the app first
reads the body, so a refused upload is never sent), chunked request bodies, bodies of known
length read exactly (a short rest drained, a long one refused by closing), chunked answers
of unknown length, HEAD without a body, 400/431/501 answers and close on a bad request head,
and draining of in-flight requests on stop.
"""

import contextlib
import email.utils
import functools
import logging
import os
import queue
import socket
import struct
import sys
import threading
import time
from urllib.parse import unquote_to_bytes

log = logging.getLogger("eucalyptus.http")

#: An app that answers with more than this much of the request body unread closes the
#: connection rather than read the rest (an upload refused as too large answers at once).
MAX_DRAIN = 1024 * 1024
#: A client that waits for ``100 Continue`` before a body of at most this many bytes gets it as
#: soon as the head is read: the body then crosses while the app checks the request, and the
#: app's first read finds it there instead of sleeping for it (a wake-up is dear on these VMs:
#: 3% of a small PUT's CPU).  A refused body this short is read and dropped, as MAX_DRAIN allows.
#: A larger body still waits for the app's first read, so an upload refused up front never comes.
EARLY_CONTINUE = 64 * 1024
#: The largest request head (request line and headers) accepted; a larger one gets 431.
MAX_HEAD = 64 * 1024
#: The environ key of the request's socket (the metadata service sets its IP TTL on it).
SOCKET = "eucalyptus.socket"
_RECV = 64 * 1024
_SEND = 1024 * 1024
#: The most one sendfile(2) call of :class:`FileRange` sends.
_SEND_FILE = 64 * 1024 * 1024
#: How often the accepting thread, waiting for a free connection slot, looks whether the server stops.
_IDLE_TICK = 0.5
#: How long a connection closed with request bytes unread keeps reading (and discarding) them,
#: so that the client gets the answer instead of a reset.
_LINGER = 2.0
_NO_BODY_STATUS = frozenset((204, 304))


class BadRequest(Exception):
    """A request head this server cannot answer: answered with ``status`` and the connection closed."""

    def __init__(self, status: str, why: str):
        super().__init__(why)
        self.status = status


class FileRange:
    """A WSGI answer body: ``length`` bytes of the open binary ``file`` from ``offset``.

    Any WSGI server iterates it, a CHUNK at a time; this server sends it with sendfile(2)
    instead, from the page cache to the socket without a copy through Python, when ``file``
    is a real file.  Middleware passes it on as ``file_range`` (eucacore.serving.RequestLog).
    ``sent`` counts the bytes :meth:`send_to` sent.  Closing it closes ``file``.
    """

    CHUNK = _SEND  # one send's worth

    def __init__(self, file, offset: int, length: int):
        self.file, self.offset, self.length = file, offset, length
        self.sent = 0

    @property
    def file_range(self) -> "FileRange":
        return self

    def __iter__(self):
        self.file.seek(self.offset)
        left = self.length
        while left > 0:
            chunk = self.file.read(min(self.CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk

    def fileno(self) -> int | None:
        """The file's descriptor, or None for a file-like object without one (io.BytesIO)."""
        try:
            return self.file.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
            return None

    def send_to(self, sock: socket.socket) -> None:
        """Send the range with sendfile(2); stops early if the file is shorter.  The socket's
        send timeout holds per call, so a reader that stalls ends it with an OSError."""
        fd, out = self.fileno(), sock.fileno()
        while self.sent < self.length:
            sent = os.sendfile(out, fd, self.offset + self.sent, min(self.length - self.sent, _SEND_FILE))
            if not sent:
                return
            self.sent += sent

    def close(self) -> None:
        self.file.close()


class _Input:
    """The receiving side of a connection: what the peer sent and the app has not read yet."""

    __slots__ = ("sock", "buf", "pos")

    def __init__(self, sock: socket.socket):
        self.sock, self.buf, self.pos = sock, b"", 0

    def buffered(self) -> int:
        return len(self.buf) - self.pos

    def fill(self) -> bool:
        """Receive more (one ``recv``); False at the end of the stream."""
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.buf = self.buf[self.pos:] + data if self.pos < len(self.buf) else data
        self.pos = 0
        return True

    def head(self) -> str | None:
        """The next request's line and header lines as text, without the blank line that ends
        them; None when the peer closed between requests."""
        while True:
            while self.buf.startswith(b"\r\n", self.pos):  # RFC 9112: ignore empty lines before a request
                self.pos += 2
            end = self.buf.find(b"\r\n\r\n", self.pos)
            if end - self.pos > MAX_HEAD or end < 0 and self.buffered() > MAX_HEAD:
                raise BadRequest("431 Request Header Fields Too Large", "the request head is too large")
            if end >= 0:
                head = self.buf[self.pos:end].decode("latin-1")
                self.pos = end + 4
                return head
            newline = self.buf.find(b"\n", self.pos)
            if newline >= 0 and (newline == self.pos or self.buf[newline - 1] != 13):
                raise BadRequest("400 Bad Request", "HTTP requires CRLF terminators")
            if not self.fill():
                if self.buffered():
                    raise BadRequest("400 Bad Request", "the request head ended early")
                return None

    def line(self) -> bytes:
        """One line (a chunk size or a trailer) with its line end; short at the end of the stream."""
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end + 1]
                self.pos = end + 1
                return line
            if self.buffered() > MAX_HEAD:
                raise ValueError("chunk size or trailer line too long")
            if not self.fill():
                line = self.buf[self.pos:]
                self.pos = len(self.buf)
                return line

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes: what is buffered, else one ``recv``; b"" at the end of the stream."""
        if self.pos < len(self.buf):
            data = self.buf[self.pos:self.pos + size]
            self.pos += len(data)
            return data
        return self.sock.recv(min(size, _SEND))

    def readinto(self, view: memoryview) -> int:
        """Like :meth:`read`, into ``view``: a large body goes from the socket straight into it."""
        if self.pos < len(self.buf):
            n = min(len(view), len(self.buf) - self.pos)
            view[:n] = self.buf[self.pos:self.pos + n]
            self.pos += n
            return n
        return self.sock.recv_into(view)


class _Body:
    """``wsgi.input`` of a request with a Content-Length: exactly that many bytes.

    ``read(n)`` and ``readinto`` return short only at the end of the body (or when the client
    stopped sending: ``truncated``).  The first read sends ``100 Continue`` to a client that
    waits for it.
    """

    def __init__(self, conn: "_Connection", length: int):
        self.conn, self.remaining, self.truncated = conn, length, False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        if not size:
            return b""
        self.conn.send_continue()
        parts = []
        while size:
            data = self.conn.input.read(size)
            if not data:
                self.truncated = True
                break
            parts.append(data)
            size -= len(data)
            self.remaining -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")[:self.remaining]
        if not view:
            return 0
        self.conn.send_continue()
        got = 0
        while got < len(view):
            n = self.conn.input.readinto(view[got:])
            if not n:
                self.truncated = True
                break
            got += n
        self.remaining -= got
        return got

    def unread(self) -> int | None:
        """Bytes of the body still to come (None: unknown)."""
        return self.remaining

    def drain(self, limit: int) -> bool:
        """Read and drop the rest of the body if it is at most ``limit`` bytes; True when all of it was read."""
        if self.remaining > limit:
            return False
        while self.remaining and self.read(_RECV):
            pass
        return not self.remaining and not self.truncated


class _ChunkedBody:
    """``wsgi.input`` of a request sent with ``Transfer-Encoding: chunked``: the decoded payload."""

    def __init__(self, conn: "_Connection"):
        self.conn, self.left, self.done, self.truncated = conn, 0, False, False

    def _next_chunk(self) -> None:
        """Read the next chunk-size line (and, after the last chunk, the trailer)."""
        line = self.conn.input.line()
        if not line:
            self.truncated = self.done = True
            return
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ValueError(f"bad chunk size line {line[:40]!r}") from None
        if size:
            self.left = size
            return
        while self.conn.input.line() not in (b"\r\n", b"\n", b""):
            pass  # trailer fields: S3 reads its trailers from aws-chunked bodies, not from here
        self.done = True

    def read(self, size: int = -1) -> bytes:
        self.conn.send_continue()
        parts, want = [], size if size is not None and size >= 0 else None
        while (want is None or want > 0) and not self.done:
            if not self.left:
                self._next_chunk()
                continue
            data = self.conn.input.read(self.left if want is None else min(want, self.left))
            if not data:
                self.truncated = self.done = True
                break
            parts.append(data)
            self.left -= len(data)
            if want is not None:
                want -= len(data)
            if not self.left and self.conn.input.line() not in (b"\r\n", b"\n"):
                raise ValueError("chunk data not followed by CRLF")
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def unread(self) -> int | None:
        return 0 if self.done else None

    def drain(self, limit: int) -> bool:
        while not self.done and limit > 0:
            limit -= len(self.read(min(_RECV, limit)))
        return self.done and not self.truncated


def _path_info(path: str) -> str:
    """WSGI's PATH_INFO: the path percent-decoded (as latin-1 text), except ``%2F``, which
    stays encoded so that it is not taken for a separator (as cheroot has it)."""
    if "%" not in path:
        return path
    pieces = path.replace("%2f", "%2F").split("%2F")
    return b"%2F".join(unquote_to_bytes(piece) for piece in pieces).decode("latin-1")


def _request_line(line: str) -> tuple[str, str, str]:
    """(method, target, version) of a request line, or BadRequest."""
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest("400 Bad Request", "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/1.") or version not in ("HTTP/1.0", "HTTP/1.1"):
        if version.startswith("HTTP/") and version[5:6].isdigit() and version[5:6] != "1":
            raise BadRequest("505 HTTP Version Not Supported", "only HTTP/1.x is served")
        raise BadRequest("400 Bad Request", "malformed request line")
    if target[0] != "/" and target != "*" and "://" not in target:
        raise BadRequest("400 Bad Request", "malformed request target")
    return method, target, version


@functools.lru_cache(maxsize=1024)  # clients send the same few dozen field names over and over
def _environ_key(name: str) -> str:
    """The environ key of a header field name (``X-Amz-Date`` -> ``HTTP_X_AMZ_DATE``), or BadRequest."""
    if not name or name != name.strip(" \t"):
        raise BadRequest("400 Bad Request", "illegal header line")
    return "HTTP_" + name.upper().replace("-", "_")


def _header_fields(lines: list[str], environ: dict) -> None:
    """Put header lines into ``environ`` as WSGI has them (HTTP_*, CONTENT_TYPE, CONTENT_LENGTH);
    a repeated field's values are joined with ", ", a folded line continues the one before."""
    key = None
    for line in lines:
        if line[0] in " \t":
            if key is None:
                raise BadRequest("400 Bad Request", "a header continuation line comes first")
            environ[key] += " " + line.strip(" \t")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest("400 Bad Request", "illegal header line")
        key = _environ_key(name)
        value = value.strip(" \t")
        environ[key] = environ[key] + ", " + value if key in environ else value
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = environ.pop("HTTP_" + name, None)
        if value is not None:
            environ[name] = value


class _Connection:
    """One client connection, answered request after request in its own thread."""

    def __init__(self, server: "Server", sock: socket.socket, address):
        self.server, self.sock = server, sock
        self.remote = (str(address[0]), str(address[1])) if isinstance(address, tuple) else ("", "")
        self.input = _Input(sock)
        self._continue_pending = False
        #: True while the connection waits for its next request: :meth:`Server.stop` then
        #: shuts its receiving side, which ends that wait at once.
        self.idle = False

    # -- the connection

    def run(self) -> None:
        """Answer requests until the peer or this server closes the connection."""
        try:
            while self._next_request_arrives() and self._one_request():
                pass
        except OSError:  # the peer went away or stalled past the timeout (EAGAIN): nothing to answer
            pass
        finally:
            self.sock.close()
            self.server.forget(self)

    def _next_request_arrives(self) -> bool:
        """Wait for the next request's first bytes; False when the peer closed or the server
        stops.  The wait is one blocking ``recv``: the socket's receive timeout (the server's
        timeout) ends it with EAGAIN, an OSError that closes the connection, and :meth:`Server.stop`
        ends it by shutting the receiving side of an idle connection."""
        if self.input.buffered():
            return not self.server.stopping
        self.idle = True
        try:
            # Set before stopping is read, and stop sets stopping before it reads idle: either
            # this sees the stop, or the stop sees this wait and shuts the socket's receiving side.
            return not self.server.stopping and self.input.fill()
        finally:
            self.idle = False

    def _one_request(self) -> bool:
        """Read, answer and finish one request; True when the connection stays open."""
        try:
            head = self.input.head()
            if head is None:
                return False
            environ, body, keep_alive = self._parse(head)
        except BadRequest as bad:
            self.send_simple(bad.status, str(bad))
            self._linger()
            return False
        if self._continue_pending and isinstance(body, _Body) and body.remaining <= EARLY_CONTINUE:
            self.send_continue()  # before the app runs: see EARLY_CONTINUE
        slots = self.server.slots
        slots.get()  # wait while ``threads`` requests are being answered
        try:
            keep_alive = _Exchange(self, environ, body, keep_alive).answer()
        finally:
            slots.put(None)
        if not keep_alive and body.unread() != 0:
            self._linger()
        return keep_alive and not self.server.stopping

    def _parse(self, head: str) -> tuple[dict, "_Body | _ChunkedBody", bool]:
        """The WSGI environ, body reader and keep-alive wish of a request head."""
        line, _, fields = head.partition("\r\n")
        method, target, version = _request_line(line)
        if fields.count("\n") != fields.count("\r\n"):
            raise BadRequest("400 Bad Request", "HTTP requires CRLF terminators")
        environ = self.server.base_environ.copy()
        _header_fields(fields.split("\r\n") if fields else [], environ)
        path = target if target[0] == "/" else "/" + target.split("://", 1)[-1].partition("/")[2]
        path, _, query = path.partition("?")
        environ.update({"REQUEST_METHOD": method, "REQUEST_URI": target, "PATH_INFO": _path_info(path),
                        "QUERY_STRING": query, "SERVER_PROTOCOL": version, "REMOTE_ADDR": self.remote[0],
                        "REMOTE_PORT": self.remote[1], SOCKET: self.sock})
        connection = environ.get("HTTP_CONNECTION", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        body, keep_alive = self._body(environ, version, keep_alive)
        environ["wsgi.input"], environ["wsgi.input_terminated"] = body, isinstance(body, _ChunkedBody)
        self._continue_pending = version == "HTTP/1.1" and \
            environ.get("HTTP_EXPECT", "").lower() == "100-continue"
        return environ, body, keep_alive

    def _body(self, environ: dict, version: str, keep_alive: bool) -> tuple["_Body | _ChunkedBody", bool]:
        """The body reader the headers call for, and whether the connection may still be kept."""
        coding = environ.get("HTTP_TRANSFER_ENCODING")
        if coding and version == "HTTP/1.1":
            if [c.strip().lower() for c in coding.split(",") if c.strip()] != ["chunked"]:
                raise BadRequest("501 Not Implemented", f"transfer coding {coding!r} is not supported")
            # A Content-Length beside it may be a smuggling attempt: answer, then close (RFC 9112).
            return _ChunkedBody(self), keep_alive and "CONTENT_LENGTH" not in environ
        length = environ.get("CONTENT_LENGTH", "0")
        if not length.isdigit() or not length.isascii():
            raise BadRequest("400 Bad Request", "malformed Content-Length")
        return _Body(self, int(length)), keep_alive

    # -- sending

    def send_continue(self) -> None:
        """Tell a client that waits for it to send the body (once, before the first read)."""
        if self._continue_pending:
            self._continue_pending = False
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def continue_pending(self) -> bool:
        """True while a client waits for ``100 Continue`` before it sends the body."""
        return self._continue_pending

    def send(self, data) -> None:
        """Send all of ``data``; the timeout holds per send, so a slow reader of a large
        answer is not cut off as long as it keeps reading."""
        if len(data) <= _SEND:
            self.sock.sendall(data)
            return
        view = memoryview(data)
        while view:
            view = view[self.sock.send(view[:_SEND]):]

    def send_simple(self, status: str, message: str) -> None:
        """Answer ``status`` with ``message`` as plain text, asking the client to close."""
        body = message.encode("latin-1", "replace")
        with contextlib.suppress(OSError):
            self.send(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                      f"Connection: close\r\n\r\n".encode("latin-1") + body)

    def _linger(self) -> None:
        """Close with request bytes unread: stop sending, then read and drop what still comes for
        a moment, so that the client reads the answer instead of a connection reset."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(_LINGER)
            deadline = time.monotonic() + _LINGER
            while time.monotonic() < deadline and self.sock.recv(_RECV):
                pass


class _Exchange:
    """One request's answer: calls the app and sends what it gives as HTTP/1.1."""

    def __init__(self, conn: _Connection, environ: dict, body, keep_alive: bool):
        self.conn, self.environ, self.body, self.keep_alive = conn, environ, body, keep_alive
        self.head_only = environ["REQUEST_METHOD"] == "HEAD"
        self.status = self.headers = self.head = None
        self.length = None  # the declared Content-Length, when there is one
        self.sent = 0
        self.chunked = self.bodiless = False

    def answer(self) -> bool:
        """Run the app and send its answer; True when the connection may be kept."""
        result = None
        try:
            result = self.conn.server.app(self.environ, self.start_response)
            if not self._send_file(getattr(result, "file_range", None)):
                for chunk in result:
                    if chunk:
                        self.write(chunk)
            self._finish()
        except Exception as error:  # the app's failure: a 500 if nothing was sent yet, else a cut answer
            if self.head is None or not isinstance(error, OSError):  # not just the peer gone
                log.exception("%s %s: unhandled error", self.environ["REQUEST_METHOD"], self.environ["PATH_INFO"])
            if self.head is None:
                self.conn.send_simple("500 Internal Server Error", "The server met an unexpected condition.")
            return False
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return self.keep_alive and self._body_done()

    def start_response(self, status: str, headers: list, exc_info=None):
        """WSGI's start_response; also decides whether the connection can be kept after this answer."""
        if exc_info and self.head is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        if self.status is not None and not exc_info:
            raise RuntimeError("start_response called a second time without exc_info")
        self.status, self.headers = status, headers
        unread = self.body.unread()
        if unread and (unread > MAX_DRAIN or self.conn.continue_pending()) or self.conn.server.stopping:
            self.keep_alive = False
        return self.write

    def write(self, chunk: bytes) -> None:
        """Send a piece of the body (the head goes with the first one)."""
        if self.head is None:
            self._build_head()
            if self.head_only or self.bodiless:
                self.conn.send(self.head)
                return
            self.conn.send(self.head + self._framed(chunk))
        elif not (self.head_only or self.bodiless):
            self.conn.send(self._framed(chunk))
        self.sent += len(chunk)

    def _send_file(self, body: FileRange | None) -> bool:
        """Send the head and then ``body`` with sendfile(2), when it is a range of a real file
        whose length the Content-Length declares; False (nothing sent) otherwise: the caller
        iterates the answer."""
        if body is None or self.status is None or self.head is not None or self.head_only:
            return False
        declared = str(body.length)
        if body.fileno() is None or not any(name.lower() == "content-length" and value.strip() == declared
                                            for name, value in self.headers):
            return False
        self._build_head()
        self.conn.send(self.head)
        if not self.bodiless:
            body.send_to(self.conn.sock)
            self.sent += body.sent
        return True

    def _framed(self, chunk: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(chunk), chunk) if self.chunked else chunk

    def _finish(self) -> None:
        if self.head is None:
            if self.status is None:
                raise RuntimeError("the app returned without calling start_response")
            self._build_head()
            self.conn.send(self.head)
        elif self.chunked:
            self.conn.send(b"0\r\n\r\n")
        if self.length is not None and self.sent != self.length and not (self.head_only or self.bodiless):
            self.keep_alive = False  # the framing is broken: the client cannot find the next answer

    def _body_done(self) -> bool:
        """Whether the request body was read whole, reading a short rest if need be."""
        if self.conn.continue_pending():
            return self.body.unread() == 0
        try:
            return self.body.drain(MAX_DRAIN)
        except ValueError:  # broken chunked framing: the next request cannot be found
            return False

    def _build_head(self) -> None:
        code = int(self.status[:3])
        self.bodiless = code < 200 or code in _NO_BODY_STATUS
        names = set()
        for name, value in self.headers:
            lowered = name.lower()
            names.add(lowered)
            if lowered == "content-length":
                self.length = int(value)
        extra = []
        if "content-length" not in names and not self.bodiless and not self.head_only:
            if self.environ["SERVER_PROTOCOL"] == "HTTP/1.1":
                self.chunked = True
                extra.append(("Transfer-Encoding", "chunked"))
            else:
                self.keep_alive = False  # only the end of the connection can end this body
        if "connection" not in names:
            if not self.keep_alive:
                extra.append(("Connection", "close"))
            elif self.environ["SERVER_PROTOCOL"] == "HTTP/1.0":
                extra.append(("Connection", "Keep-Alive"))
        if "date" not in names:
            extra.append(("Date", self.conn.server.date()))
        if "server" not in names:
            extra.append(("Server", self.conn.server.server_name))
        lines = "".join(f"{name}: {value}\r\n" for name, value in (*self.headers, *extra))
        self.head = f"HTTP/1.1 {self.status}\r\n{lines}\r\n".encode("latin-1")


class Server:
    """A WSGI server on one plain-HTTP port; ``prepare``, ``serve`` and ``stop`` as cheroot's.

    Each connection has a thread (at most ``max_connections``); at most ``threads`` requests
    run the app at once.  ``stop`` refuses new connections, closes idle ones and lets requests
    in flight finish for up to ``shutdown_timeout`` seconds.
    """

    ssl_adapter = None  # plain HTTP only (serving's listening log line asks)

    def __init__(self, bind_addr: tuple[str, int], app, server_name: str, threads: int = 16,
                 max_connections: int = 1024, timeout: float = 10, shutdown_timeout: float = 30):
        self.bind_addr, self.app, self.server_name = bind_addr, app, server_name
        self.timeout, self.shutdown_timeout = timeout, shutdown_timeout
        #: A token for each request that may be answered at once (a C queue: cheaper than a semaphore).
        self.slots = queue.SimpleQueue()
        for _ in range(threads):
            self.slots.put(None)
        self._connection_slots = threading.BoundedSemaphore(max_connections)
        self._connections: dict[_Connection, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket = None
        self._date = (0, "")
        self.base_environ = {}

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def prepare(self) -> None:
        """Bind and listen now, so that a busy port fails start-up rather than a thread."""
        family = socket.AF_INET6 if ":" in self.bind_addr[0] else socket.AF_INET
        self._socket = socket.create_server(self.bind_addr, family=family, backlog=1024)
        self.bind_addr = self._socket.getsockname()[:2]
        self.base_environ = {
            "SCRIPT_NAME": "", "SERVER_NAME": self.server_name, "SERVER_PORT": str(self.bind_addr[1]),
            "SERVER_SOFTWARE": "eucalyptus-httpserver", "ACTUAL_SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        }

    def serve(self) -> None:
        """Accept connections until :meth:`stop`, each answered in a thread of its own."""
        try:
            while not self.stopping:
                if not self._connection_slots.acquire(timeout=_IDLE_TICK):
                    continue
                try:
                    sock, address = self._socket.accept()
                except OSError:
                    self._connection_slots.release()
                    if not self.stopping:  # e.g. out of file descriptors: try again shortly
                        time.sleep(0.1)
                    continue
                self._start(sock, address)
        finally:
            self._socket.close()

    def _start(self, sock: socket.socket, address) -> None:
        # The timeout of each receive and send is the kernel's: Python's own (settimeout) would
        # poll before every recv and send, twice the system calls of a small request.
        sock.settimeout(None)
        timeval = struct.pack("ll", int(self.timeout), int(self.timeout % 1 * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(self, sock, address)
        thread = threading.Thread(target=conn.run, name=f"{self.server_name}-conn", daemon=True)
        with self._lock:
            self._connections[conn] = thread
        thread.start()

    def forget(self, conn: _Connection) -> None:
        """Called by a connection's thread as it ends."""
        with self._lock:
            self._connections.pop(conn, None)
        self._connection_slots.release()

    def stop(self) -> None:
        """Stop accepting, let idle connections close and requests in flight finish, then return."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        deadline = time.monotonic() + self.shutdown_timeout
        with self._lock:
            threads = list(self._connections.items())
        for conn, _ in threads:
            if conn.idle:  # waiting for a next request: that wait ends now (see _next_request_arrives)
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RD)
        for conn, thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)

    def date(self) -> str:
        """The Date header's value, formatted once a second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]
