"""Ids, request ids and the clock: one place each, so tests can fix them."""

import contextvars
import random
import secrets
import time
from datetime import datetime, timezone

#: The request id of the request being served by this thread or task.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def new_id(prefix: str) -> str:
    """A resource id in the original's form: prefix, a dash, 8 hex digits (``i-3f2a9c01``)."""
    return f"{prefix}-{secrets.token_hex(4)}"


#: Request ids and internal names need only be unique, not unguessable: drawn from a
#: generator seeded once, without the system call (getrandom) that each draw of ``secrets`` makes.
_unique = random.Random(secrets.randbits(128))


def unique_hex(nbytes: int = 16) -> str:
    """``2 * nbytes`` hex digits, unique in practice but guessable: for names nobody outside sees."""
    return f"{_unique.getrandbits(8 * nbytes):0{2 * nbytes}x}"


def new_request_id() -> str:
    """A request id: a UUID-shaped random string, as AWS returns in <requestId>."""
    h = unique_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_access_key() -> tuple[str, str]:
    """A fresh (access key id, secret key) pair in AWS's shapes: 20 upper-case chars, 40 chars."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    akid = "AKI" + "".join(secrets.choice(alphabet) for _ in range(17))
    return akid, secrets.token_urlsafe(30)[:40]


def new_account_number() -> str:
    """A 12-digit account number."""
    return f"{secrets.randbelow(10**12):012d}"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def now() -> float:
    """Seconds since the epoch."""
    return time.time()


def isoformat(t: datetime | float) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as EC2 prints times."""
    if not isinstance(t, datetime):
        t = datetime.fromtimestamp(t, timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
