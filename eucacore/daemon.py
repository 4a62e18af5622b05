"""What every daemon's ``main`` shares: options, configuration, logging, serving."""

import argparse
import logging
import logging.handlers
import os
import stat
import sys
import threading
import time
from collections.abc import Callable

from eucacore import __version__
from eucacore.config import Config, load_or_exit
from eucacore.serving import ACCESS_LOG, write_access_with

_LEVELS = {"EXTREME": logging.DEBUG, "TRACE": logging.DEBUG, "DEBUG": logging.DEBUG,
           "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR,
           "FATAL": logging.CRITICAL}


def parse_args(prog: str, description: str, argv=None) -> argparse.Namespace:
    """``--help``, ``--version`` and ``--config PATH``, the same for every daemon."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument("--config", metavar="PATH", default=None,
                        help="eucalyptus.conf to read (default: $EUCALYPTUS_CONF or "
                             "/etc/eucalyptus/eucalyptus.conf)")
    return parser.parse_args(argv)


class _FormatOnce(logging.Formatter):
    """Formats a record once for all the handlers that show it.  A record goes to stderr and to
    the file, and the file's rollover check formats it too: three formats of each line were a
    tenth of the CPU of a small S3 request.  :meth:`stamp` also dates the access lines."""

    _second = (None, "")  # (a whole second, its time as the default format shows it)

    def formatTime(self, record, datefmt=None) -> str:
        """The default format's time, with the date and time part made once a second."""
        if datefmt:
            return super().formatTime(record, datefmt)
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """The time ``created`` as the default format shows it, the part to the second made once a second."""
        second, text = self._second
        if second != int(created):
            second = int(created)
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)
        return self.default_msec_format % (text, (created - second) * 1000)

    def format(self, record):
        kept = record.__dict__.get("_formatted")
        if kept is None or kept[0] is not self:
            kept = record._formatted = (self, super().format(record))
        return kept[1]


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler that counts what it writes.  Python 3.11's rollover check stats
    the path twice for every line (never to roll over something that is not a regular file:
    /dev/null, a pipe) and seeks to the end; here the file is asked once, when it is opened.
    :meth:`write_line` writes a line made elsewhere (:class:`_AccessLines`)."""

    def _open(self):
        stream = super()._open()
        status = os.fstat(stream.fileno())
        self._regular, self._size = stat.S_ISREG(status.st_mode), status.st_size
        return stream

    def _full(self, length: int) -> bool:
        """Whether a line of ``length`` characters (and its line end) would pass maxBytes."""
        if self.stream is None:
            self.stream = self._open()
        return self._regular and 0 < self.maxBytes <= self._size + length + 1

    def shouldRollover(self, record) -> bool:
        return self._full(len(self.format(record)))

    def emit(self, record) -> None:
        super().emit(record)
        self._size += len(self.format(record)) + 1

    def write_line(self, line: str) -> None:
        """Write ``line`` into the file's buffer: it reaches the file with the next record
        emitted, when the buffer fills, or at :meth:`flush`."""
        with self.lock:
            if self._full(len(line)):
                self.doRollover()
            self.stream.write(line + "\n")
            self._size += len(line) + 1


class _AccessLines:
    """Writes each request's access line (eucacore.serving.RequestLog) to the log file as the file
    handler writes a line of the ``eucalyptus.access`` logger, without making a LogRecord: the
    logging module's path cost a tenth of the CPU of a small S3 request.  The lines are flushed
    with the daemon's other lines, else within FLUSH_INTERVAL, not each with a system call of its
    own (a web server's buffered access log).  The logger's level still decides whether a line
    is written; a failed write goes through logging instead."""

    FLUSH_INTERVAL = 0.5

    def __init__(self, handler: _RotatingFile, formatter: _FormatOnce, name: str):
        self.handler, self.formatter = handler, formatter
        self.logger = logging.getLogger(ACCESS_LOG)
        self.middle = f" INFO {name}[{os.getpid()}] {ACCESS_LOG}: "
        self._pending = threading.Event()
        threading.Thread(target=self._flush_pending, name="access-log", daemon=True).start()

    def __call__(self, message: str) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        try:
            self.handler.write_line(self.formatter.stamp(time.time()) + self.middle + message)
        except OSError:
            self.logger.info("%s", message)
        self._pending.set()

    def _flush_pending(self) -> None:
        while self._pending.wait():
            time.sleep(self.FLUSH_INTERVAL)
            self._pending.clear()
            try:
                self.handler.flush()
            except (OSError, ValueError):  # a full disk, or the file closed at the daemon's end
                pass


def setup_logging(config: Config, name: str) -> None:
    """Log lines to a rotating file in the log directory, and to stderr (journald) all but the
    access line of each request when the file is there: those go to the file only, as a web
    server keeps its access log apart.  A busy S3 port would otherwise pass journald's rate
    limit (10,000 lines in 30 s), which then drops the daemon's other lines too, and pay for
    every line twice."""
    fmt = _FormatOnce(f"%(asctime)s %(levelname)s {name}[%(process)d] %(name)s: %(message)s")
    # What the format does not show is not gathered for each line (the logging HOWTO's
    # "Optimization"): where the call was made (a walk up the stack), the thread and process names.
    logging._srcfile = None
    logging.logThreads = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(_LEVELS.get(config["LOGLEVEL"], logging.INFO))
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    try:
        log_dir = config.log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = _RotatingFile(log_dir / f"{name}.log", maxBytes=config["LOGMAXSIZE"],
                                backupCount=config["LOGROLLNUMBER"])
        handler.setFormatter(fmt)
        root.addHandler(handler)
        write_access_with(_AccessLines(handler, fmt, name))
    except OSError as e:
        write_access_with(None)
        root.warning("no log file: %s", e)
    for noisy in ("zeep", "urllib3", "spyne", "botocore", "cheroot", "pyroute2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # spyne logs every client fault with a traceback; a fault sent back is an answer, not an error.
    logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)


def run(prog: str, description: str, start: Callable[[Config], None], argv=None) -> int:
    """Parse options, read the configuration, set up logging, then ``start(config)``.

    ``start`` serves until the daemon is told to stop. A bad configuration stops the
    daemon with one line on stderr and exit status 1.
    """
    args = parse_args(prog, description, argv)
    config = load_or_exit(args.config)
    setup_logging(config, prog)
    start(config)
    return 0
