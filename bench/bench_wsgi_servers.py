#!/usr/bin/env python3
"""Benchmark candidate production WSGI servers for the five daemons.

Usage:
    /tmp/venv/bin/python bench/bench_wsgi_servers.py            # all servers
    /tmp/venv/bin/python bench/bench_wsgi_servers.py --only cheroot-http,waitress-http
    /tmp/venv/bin/python bench/bench_wsgi_servers.py --size-mib 64 --small-requests 1000

Each server runs in its own subprocess (own session/process group) on a free
127.0.0.1 port, serving the tiny WSGI ``app`` defined below:

    GET /small            -> 200, 100-byte body
    PUT /upload           -> reads wsgi.input in 1 MiB chunks up to Content-Length,
                             answers md5 hex digest (X-App-Start header = time the
                             app was called, to detect servers that spool the whole
                             request body before calling the app)
    GET /download?size=N  -> N bytes yielded in 1 MiB chunks (Content-Length set)

Measured per server:
  * small: keep-alive GETs from a few client threads -> req/s, p50/p99 latency
  * upload: 256 MiB streamed PUT (Content-Length, not chunked) -> MiB/s, digest check,
    "app start %" = how far through the client's send the app was invoked
    (~0% = streamed into the app, ~100% = server buffered the whole body first)
  * download: 256 MiB streamed GET -> MiB/s
  * server peak RSS (VmHWM, max over the server's process tree) during upload and
    during download; the peak is reset (/proc/PID/clear_refs = 5) before each phase
  * SIGTERM drain: a 64 MiB download is in flight when the server gets SIGTERM;
    "yes" = the in-flight response completed and the server then exited.
  * for TLS lines: mTLS enforced (a client without a certificate is rejected)

The benchmark stops every server it started (process-group kill) even on failure.
"""

import argparse
import atexit
import hashlib
import http.client
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

MiB = 1024 * 1024
CHUNK = MiB
SMALL_BODY = b"x" * 100
HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.splitext(os.path.basename(__file__))[0]
THREADS = 12


# --------------------------------------------------------------------------
# The WSGI application under test
# --------------------------------------------------------------------------
def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if path == "/small" and method == "GET":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(SMALL_BODY)))])
        return [SMALL_BODY]
    if path == "/upload" and method in ("PUT", "POST"):
        app_start = time.time()
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        h = hashlib.md5()
        got = 0
        while remaining > 0:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                break
            h.update(data)
            got += len(data)
            remaining -= len(data)
        body = ("%s %d\n" % (h.hexdigest(), got)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body))),
                                  ("X-App-Start", "%.6f" % app_start)])
        return [body]
    if path == "/download" and method == "GET":
        size = 0
        for part in environ.get("QUERY_STRING", "").split("&"):
            if part.startswith("size="):
                size = int(part[5:])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return _gen_download(size)
    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]


_DL_BLOCK = bytes(range(256)) * (CHUNK // 256)


def _gen_download(size):
    while size > 0:
        n = min(CHUNK, size)
        yield _DL_BLOCK if n == CHUNK else _DL_BLOCK[:n]
        size -= n


# --------------------------------------------------------------------------
# Server side (run in a subprocess: --serve NAME)
# --------------------------------------------------------------------------
def serve_cheroot(port, tls_dir):
    from cheroot import wsgi
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=THREADS,
                         request_queue_size=64, shutdown_timeout=30)
    if tls_dir:
        from cheroot.ssl.builtin import BuiltinSSLAdapter
        adapter = BuiltinSSLAdapter(os.path.join(tls_dir, "server.pem"),
                                    os.path.join(tls_dir, "server.key"),
                                    os.path.join(tls_dir, "ca.pem"))
        adapter.context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS
        server.ssl_adapter = adapter

    def on_term(signum, frame):
        # graceful: stop accepting, let in-flight requests finish (<= shutdown_timeout)
        threading.Thread(target=server.stop, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    try:
        server.start()  # returns after stop()
    finally:
        server.stop()


def serve_waitress(port, tls_dir):
    if tls_dir:
        raise SystemExit("waitress has no TLS support")
    import waitress
    # No signal handler installed: waitress has no graceful-stop API, so SIGTERM
    # keeps Python's default action (immediate termination).
    waitress.serve(app, host="127.0.0.1", port=port, threads=THREADS,
                   _quiet=True, ident=None)


def server_main(name, port, tls_dir):
    {"cheroot": serve_cheroot, "waitress": serve_waitress}[name](port, tls_dir)


# --------------------------------------------------------------------------
# Certificates (throwaway CA + server + client), via `cryptography`
# --------------------------------------------------------------------------
def make_certs(d):
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, fn):
        with open(os.path.join(d, fn), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    def write_cert(cert, fn):
        with open(os.path.join(d, fn), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder()
               .subject_name(name("bench CA")).issuer_name(name("bench CA"))
               .public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
               .add_extension(x509.KeyUsage(False, False, False, False, False,
                                            True, True, False, False), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                   ca_key.public_key()), False)
               .sign(ca_key, hashes.SHA256()))
    write_cert(ca_cert, "ca.pem")

    def leaf(cn, eku, san, prefix):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder()
             .subject_name(name(cn)).issuer_name(ca_cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
             .add_extension(x509.KeyUsage(True, False, True, False, False,
                                          False, False, False, False), True)
             .add_extension(x509.ExtendedKeyUsage([eku]), False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                 key.public_key()), False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca_key.public_key()), False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), False)
        write_cert(b.sign(ca_key, hashes.SHA256()), prefix + ".pem")
        write_key(key, prefix + ".key")

    leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
         [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
         "server")
    leaf("bench-client", ExtendedKeyUsageOID.CLIENT_AUTH, None, "client")


def client_ctx(tls_dir, with_cert=True):
    # Explicit context: ignore SSL_CERT_FILE / REQUESTS_CA_BUNDLE etc.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=os.path.join(tls_dir, "ca.pem"))
    if with_cert:
        ctx.load_cert_chain(os.path.join(tls_dir, "client.pem"),
                            os.path.join(tls_dir, "client.key"))
    return ctx


# --------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------
_children = []


def _kill_group(proc, grace=5.0):
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)  # our child is its own session/group leader
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _cleanup():
    for p in list(_children):
        _kill_group(p, grace=2.0)
        # also sweep any survivors of the group (e.g. gunicorn workers)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _on_signal(signum, frame):
    _cleanup()
    sys.exit(128 + signum)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_tree(pid):
    """pid and all its descendants (via /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def _status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pid):
    ok = True
    for p in proc_tree(pid):
        try:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def peak_rss_mib(pid):
    return max(_status_kb(p, "VmHWM") for p in proc_tree(pid)) / 1024.0


class Server:
    def __init__(self, kind, tls_dir=None, log_dir=None):
        self.kind, self.tls_dir = kind, tls_dir
        self.log_path = os.path.join(log_dir or tempfile.gettempdir(),
                                     "%s-%s.log" % (kind, "tls" if tls_dir else "http"))
        self.port = free_port()
        self.proc = None

    def start(self):
        py = sys.executable
        if self.kind.startswith("gunicorn"):
            worker = "gthread" if self.kind == "gunicorn-gthread" else "sync"
            cmd = [py, "-m", "gunicorn", "--chdir", HERE, "--bind",
                   "127.0.0.1:%d" % self.port, "--worker-class", worker,
                   "--log-level", "warning", "--graceful-timeout", "30",
                   "--timeout", "120"]
            if worker == "gthread":
                cmd += ["--workers", "1", "--threads", str(THREADS)]
            else:
                cmd += ["--workers", "2"]
            if self.tls_dir:
                cmd += ["--certfile", os.path.join(self.tls_dir, "server.pem"),
                        "--keyfile", os.path.join(self.tls_dir, "server.key"),
                        "--ca-certs", os.path.join(self.tls_dir, "ca.pem"),
                        "--cert-reqs", str(int(ssl.CERT_REQUIRED))]
            cmd.append("%s:app" % MODULE)
        else:
            cmd = [py, os.path.abspath(__file__), "--serve", self.kind,
                   "--port", str(self.port)]
            if self.tls_dir:
                cmd += ["--tls-dir", self.tls_dir]
        with open(self.log_path, "wb") as log:  # server stdout/stderr -> log file
            self.proc = subprocess.Popen(cmd, start_new_session=True,
                                         stdout=log, stderr=subprocess.STDOUT)
        _children.append(self.proc)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited early rc=%s: %s" % (
                    self.kind, self.proc.returncode, self.log_tail()))
            try:
                c = self.conn(timeout=2)
                c.request("GET", "/small")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    # gunicorn: wait until the worker process exists
                    return self
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        raise RuntimeError("%s did not come up: %s" % (self.kind, self.log_tail()))

    def log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-1500:].decode(errors="replace")
        except OSError:
            return ""

    def conn(self, timeout=60, with_cert=True):
        if self.tls_dir:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=client_ctx(self.tls_dir, with_cert))
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self):
        if self.proc is not None:
            _kill_group(self.proc)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.proc in _children:
                _children.remove(self.proc)


# --------------------------------------------------------------------------
# Client-side measurements
# --------------------------------------------------------------------------
def bench_small(srv, total, nthreads=4):
    lat = []
    lock = threading.Lock()
    errors = []
    per = total // nthreads

    def worker():
        mine = []
        c = srv.conn()
        try:
            for _ in range(20):  # warm-up (connection + TLS handshake)
                c.request("GET", "/small")
                c.getresponse().read()
            for _ in range(per):
                t0 = time.perf_counter()
                c.request("GET", "/small")
                r = c.getresponse()
                body = r.read()
                mine.append(time.perf_counter() - t0)
                if r.status != 200 or len(body) != 100:
                    raise RuntimeError("bad small response %s" % r.status)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()
            with lock:
                lat.extend(mine)

    ths = [threading.Thread(target=worker) for _ in range(nthreads)]
    t0 = time.perf_counter()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    el = time.perf_counter() - t0
    if errors:
        raise errors[0]
    lat.sort()
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    return len(lat) / el, p50, p99


def bench_upload(srv, size):
    block = os.urandom(CHUNK)
    n = size // CHUNK
    h = hashlib.md5()
    for _ in range(n):
        h.update(block)
    expect = h.hexdigest()
    times = {}

    def body():
        times["start"] = time.time()
        for _ in range(n):
            yield block
        times["end"] = time.time()

    if not reset_peak(srv.proc.pid):
        print("warning: could not reset VmHWM; RSS is peak since start", file=sys.stderr)
    c = srv.conn(timeout=120)
    t0 = time.perf_counter()
    c.request("PUT", "/upload", body=body(), encode_chunked=False,
              headers={"Content-Length": str(n * CHUNK),
                       "Content-Type": "application/octet-stream"})
    r = c.getresponse()
    resp = r.read().decode()
    el = time.perf_counter() - t0
    c.close()
    digest, got = resp.split()
    if r.status != 200 or digest != expect or int(got) != n * CHUNK:
        raise RuntimeError("upload mismatch: %s %r" % (r.status, resp))
    app_start = float(r.getheader("X-App-Start"))
    span = max(times["end"] - times["start"], 1e-9)
    start_pct = max(0.0, min(100.0, 100.0 * (app_start - times["start"]) / span))
    return n * CHUNK / MiB / el, start_pct, peak_rss_mib(srv.proc.pid)


def bench_download(srv, size):
    reset_peak(srv.proc.pid)
    c = srv.conn(timeout=120)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    t0 = time.perf_counter()
    c.request("GET", "/download?size=%d" % size)
    r = c.getresponse()
    got = 0
    while True:
        k = r.readinto(mv)
        if not k:
            break
        got += k
    el = time.perf_counter() - t0
    c.close()
    if r.status != 200 or got != size:
        raise RuntimeError("download short: %s got %d of %d" % (r.status, got, size))
    return size / MiB / el, peak_rss_mib(srv.proc.pid)


def check_mtls_enforced(srv):
    c = srv.conn(timeout=10, with_cert=False)
    try:
        c.request("GET", "/small")
        r = c.getresponse()
        r.read()
        return "NO (%d without client cert)" % r.status
    except (ssl.SSLError, OSError, http.client.HTTPException):
        return "yes"
    finally:
        c.close()


def check_drain(srv, size=64 * MiB):
    """SIGTERM the server while a download is in flight."""
    c = srv.conn(timeout=60)
    c.request("GET", "/download?size=%d" % size)
    r = c.getresponse()
    buf = bytearray(CHUNK)
    got = 0
    while got < 8 * MiB:
        k = r.readinto(buf)
        if not k:
            break
        got += k
    os.kill(srv.proc.pid, signal.SIGTERM)  # main process only (gunicorn arbiter)
    time.sleep(0.5)  # give the server time to react while the response is in flight
    try:
        while True:
            k = r.readinto(buf)
            if not k:
                break
            got += k
    except (OSError, http.client.HTTPException):
        pass
    c.close()
    try:
        srv.proc.wait(15)
        exited = "exited"
    except subprocess.TimeoutExpired:
        exited = "still running"
    ok = got == size
    return ("yes" if ok and exited == "exited" else "NO") + \
        " (%d/%d MiB, %s)" % (got // MiB, size // MiB, exited)


CANDIDATES = [
    # key,              kind,               tls,   note
    ("cheroot-http", "cheroot", False, ""),
    ("cheroot-mtls", "cheroot", True, ""),
    ("waitress-http", "waitress", False, "no TLS support"),
    ("gunicorn-gthread", "gunicorn-gthread", False, ""),
    ("gunicorn-gthread-mtls", "gunicorn-gthread", True, ""),
    ("gunicorn-sync", "gunicorn-sync", False, "2 procs, no keep-alive"),
]
LABELS = {
    "cheroot-http": "cheroot (http)",
    "cheroot-mtls": "cheroot (mTLS)",
    "waitress-http": "waitress (http)",
    "gunicorn-gthread": "gunicorn gthread",
    "gunicorn-gthread-mtls": "gunicorn gthr mTLS",
    "gunicorn-sync": "gunicorn sync",
}


def run_one(kind, tls_dir, args, log_dir):
    srv = Server(kind, tls_dir, log_dir).start()
    res = {}
    try:
        res["small"] = bench_small(srv, args.small_requests)
        res["upload"] = bench_upload(srv, args.size_mib * MiB)
        res["download"] = bench_download(srv, args.size_mib * MiB)
        res["mtls"] = check_mtls_enforced(srv) if tls_dir else "-"
        res["drain"] = check_drain(srv)
    finally:
        srv.stop()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tls-dir", help=argparse.SUPPRESS)
    ap.add_argument("--only", help="comma list of: " + ",".join(c[0] for c in CANDIDATES))
    ap.add_argument("--small-requests", type=int, default=3000)
    ap.add_argument("--size-mib", type=int, default=256)
    args = ap.parse_args()

    if args.serve:
        server_main(args.serve, args.port, args.tls_dir)
        return 0

    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    wanted = set(args.only.split(",")) if args.only else None
    import cheroot
    import gunicorn
    import waitress  # noqa: F401
    from importlib.metadata import version
    print("python %s | cheroot %s | waitress %s | gunicorn %s | %d CPUs | %d server threads"
          % (sys.version.split()[0], cheroot.__version__, version("waitress"),
             gunicorn.__version__, os.cpu_count(), THREADS))
    print("small: %d keep-alive GETs from 4 client threads; upload/download: %d MiB "
          "in 1 MiB chunks" % (args.small_requests, args.size_mib))
    hdr = ("%-19s %9s %7s %7s %8s %6s %8s %8s %8s  %-9s %-28s %s"
           % ("server", "small r/s", "p50 ms", "p99 ms", "up MiB/s", "app@%",
              "dn MiB/s", "RSS up", "RSS dn", "mTLS", "SIGTERM drain", "note"))
    rows = []
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="wsgibench-") as tls_dir:
        make_certs(tls_dir)
        for key, kind, tls, note in CANDIDATES:
            if wanted and key not in wanted:
                continue
            try:
                r = run_one(kind, tls_dir if tls else None, args, tls_dir)
                rows.append("%-19s %9.0f %7.2f %7.2f %8.0f %5.0f%% %8.0f %8.1f %8.1f  %-9s %-28s %s" % (
                    LABELS[key], r["small"][0], r["small"][1], r["small"][2],
                    r["upload"][0], r["upload"][1], r["download"][0],
                    r["upload"][2], r["download"][1], r["mtls"], r["drain"], note))
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                rows.append("%-19s FAILED: %s" % (LABELS[key], e))
            print("  done: %s (%.1fs elapsed)" % (LABELS[key], time.time() - t_all),
                  file=sys.stderr, flush=True)
    if wanted is None or "waitress-http" in wanted:
        rows.append("%-19s (waitress has no TLS at all: cannot serve mTLS)" % "waitress (mTLS)")
    print()
    print(hdr)
    print("-" * len(hdr))
    for row in rows:
        print(row)
    print("\napp@% = point of the client's upload at which the app was called "
          "(0% = streamed, 100% = server spooled whole body first)")
    print("RSS up/dn = server peak RSS MiB (VmHWM, max over process tree) during "
          "upload / download; total %.1fs" % (time.time() - t_all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
