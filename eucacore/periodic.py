"""Work repeated on an interval in a background thread: the pollers of the CLC and the CC."""

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("eucalyptus.periodic")


def run_periodically(name: str, work: Callable[[], None], interval: Callable[[], float],
                     stop: threading.Event) -> threading.Thread:
    """Call ``work`` now and then every ``interval()`` seconds until ``stop`` is set.

    A failing round is logged and the next one runs as usual.
    """
    def loop():
        while not stop.is_set():
            try:
                work()
            except Exception:
                log.exception("%s failed", name)
            stop.wait(interval())
    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
