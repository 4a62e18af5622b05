"""The daemons' log: each line once to stderr and to a file that rolls over at LOGMAXSIZE."""

import logging
import os
import re
import sys
import time

import pytest

from eucacore import daemon, serving
from eucacore.config import Config, default_config
from eucacore.serving import ACCESS_LOG

NAME = "eucalyptus-test"


@pytest.fixture
def logs(tmp_path, monkeypatch):
    """setup_logging under a root of tmp_path, stderr to a file; every logging global put back after."""
    saved_globals = (logging._srcfile, logging.logThreads, logging.logMultiprocessing)
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    stderr = open(tmp_path / "stderr", "w")

    def setup(**settings):
        monkeypatch.setattr(sys, "stderr", stderr)  # here: pytest sets its own at the test's start
        config = Config({**default_config(), "EUCALYPTUS": str(tmp_path), **settings}, "test")
        daemon.setup_logging(config, NAME)
        return config.log_dir()

    yield setup
    for handler in root.handlers:
        if handler not in saved_root[0]:
            handler.close()
    root.handlers[:], root.level = saved_root
    serving.write_access_with(None)
    logging._srcfile, logging.logThreads, logging.logMultiprocessing = saved_globals
    stderr.close()


def answer(app_name: str = "walrus") -> None:
    """One request through eucacore.serving's RequestLog, which writes its access line."""
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"hello"]

    request_log = serving.RequestLog(app, app_name, trust_incoming_id=False)
    list(request_log({"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket", "REMOTE_ADDR": "10.0.0.9"},
                     lambda status, headers, exc_info=None: None))


def test_each_line_goes_once_to_stderr_and_once_to_the_file_and_access_lines_only_to_the_file(logs, tmp_path):
    log_dir = logs()
    log = logging.getLogger("eucalyptus.test")
    log.info("hello %s", "world")
    answer()
    log.debug("not shown at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    logging.getLogger(ACCESS_LOG).warning("an access warning")
    for handler in logging.getLogger().handlers:
        handler.flush()
    on_stderr = (tmp_path / "stderr").read_text()
    in_file = (log_dir / f"{NAME}.log").read_text()
    assert [line for line in in_file.splitlines() if "GET /bucket" not in line] == on_stderr.splitlines()
    access = [line for line in in_file.splitlines() if "GET /bucket" in line]
    assert len(access) == 1 and re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO {NAME}\[{os.getpid()}\] {ACCESS_LOG}: walrus "
        r"[0-9a-f-]{36} GET /bucket 200 5 \d+\.\dms peer=10\.0\.0\.9", access[0])
    assert f"WARNING {NAME}" in on_stderr and "an access warning" in on_stderr
    lines = on_stderr.splitlines()
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO {NAME}\[{os.getpid()}\] "
                        r"eucalyptus\.test: hello world", lines[0])
    assert re.fullmatch(rf".* ERROR {NAME}\[{os.getpid()}\] eucalyptus\.test: it failed", lines[1])
    assert lines[-2] == "ValueError: boom"
    assert "not shown" not in on_stderr


def test_access_lines_follow_the_log_level(logs):
    log_dir = logs(LOGLEVEL="WARN")
    answer()
    logging.getLogger("eucalyptus.test").warning("shown")
    assert "GET /bucket" not in (log_dir / f"{NAME}.log").read_text()
    assert "shown" in (log_dir / f"{NAME}.log").read_text()


def test_the_time_is_the_one_the_standard_formatter_writes():
    once, standard = daemon._FormatOnce("%(asctime)s %(message)s"), logging.Formatter("%(asctime)s %(message)s")
    for created in (1_700_000_000.001, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.25):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = created, int((created - int(created)) * 1000)
        assert once.format(record) == standard.format(record)


def test_the_file_rolls_over_before_it_would_pass_logmaxsize(logs):
    log_dir = logs(LOGMAXSIZE=4096, LOGROLLNUMBER=2)
    log = logging.getLogger("eucalyptus.test")
    for n in range(300):
        log.info("line %04d %s", n, "x" * 40)
        if n % 3 == 0:
            answer(f"app{n:04d}")
    files = sorted(log_dir.iterdir())
    assert [f.name for f in files] == [f"{NAME}.log", f"{NAME}.log.1", f"{NAME}.log.2"]
    assert all(0 < f.stat().st_size <= 4096 for f in files)
    assert "line 0299" in (log_dir / f"{NAME}.log").read_text()
    assert "app0297" in (log_dir / f"{NAME}.log").read_text()
    kept = "".join(f.read_text() for f in files)
    assert len(kept.splitlines()) == len(set(kept.splitlines()))


def test_a_log_file_that_is_not_a_regular_file_is_never_rolled_over(logs, tmp_path):
    log_dir = tmp_path / "var/log/eucalyptus"
    log_dir.mkdir(parents=True)
    (log_dir / f"{NAME}.log").symlink_to(os.devnull)
    logs(LOGMAXSIZE=100)
    for n in range(50):
        logging.getLogger("eucalyptus.test").info("line %d, longer than the limit of one hundred bytes "
                                                  "all by itself, so every line would roll over", n)
    assert sorted(p.name for p in log_dir.iterdir()) == [f"{NAME}.log"]
    assert os.path.realpath(log_dir / f"{NAME}.log") == os.devnull


def test_without_a_log_file_access_lines_go_to_stderr(logs, tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var/log").write_text("a file where the log directory should be")
    logs()
    answer()
    logging.getLogger().handlers[0].flush()
    on_stderr = (tmp_path / "stderr").read_text()
    assert "WARNING" in on_stderr and "no log file" in on_stderr
    assert "GET /bucket 200" in on_stderr


def test_an_access_line_reaches_the_file_within_the_flush_interval_when_nothing_else_is_logged(logs):
    log_dir = logs()
    answer()
    deadline = time.monotonic() + 10 * daemon._AccessLines.FLUSH_INTERVAL
    while "GET /bucket" not in (log_dir / f"{NAME}.log").read_text():
        assert time.monotonic() < deadline, "the access line was not flushed"
        time.sleep(0.05)
