"""What every daemon's ``main`` shares: options, configuration, logging, serving."""

import argparse
import logging
import logging.handlers
import sys
from collections.abc import Callable

from eucacore import __version__
from eucacore.config import Config, load_or_exit

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


def setup_logging(config: Config, name: str) -> None:
    """Log lines to stderr (journald) and to a rotating file in the log directory."""
    fmt = logging.Formatter(f"%(asctime)s %(levelname)s {name}[%(process)d] %(name)s: %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(_LEVELS.get(config["LOGLEVEL"], logging.INFO))
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    try:
        log_dir = config.log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_dir / f"{name}.log", maxBytes=config["LOGMAXSIZE"],
                                                       backupCount=config["LOGROLLNUMBER"])
        handler.setFormatter(fmt)
        root.addHandler(handler)
    except OSError as e:
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
