"""What EC2 handlers share: errors named after their AWS codes, and Describe filtering."""

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Iterable

from eucacore.awsapi.errors import AWSError


def not_found(code: str, what: str, ident: str) -> AWSError:
    """``InvalidXxx.NotFound``: the answer for ids that do not exist, or are another account's."""
    return AWSError(code, f"The {what} '{ident}' does not exist")


def only_ids(rows: list[dict], wanted: list[str] | None, column: str, code: str, what: str) -> list[dict]:
    """The rows whose ``column`` is one of ``wanted`` (all rows when none is wanted); a wanted id
    that is not among them (missing, or another account's) is ``code`` (NotFound)."""
    if not wanted:
        return rows
    present = {r[column] for r in rows}
    for ident in wanted:
        if ident not in present:
            raise not_found(code, what, ident)
    return [r for r in rows if r[column] in wanted]


def apply_filters(items: Iterable[dict], filters: list[dict] | None,
                  getters: dict[str, Callable]) -> list[dict]:
    """Keep the items that match every filter (any of its values; ``*`` and ``?`` wildcards).

    A getter returns one value or a list of them (an empty list matches nothing).  The
    getter named ``"tag:"``, if present, answers every filter ``tag:<Key>`` and is called
    as ``getter(item, key)``.  An unknown filter name is ``InvalidParameterValue``, never
    silently ignored.
    """
    filters = filters or []
    chosen = [(_getter(f.get("Name"), getters), f.get("Values") or []) for f in filters]
    out = []
    for item in items:
        for getter, patterns in chosen:
            value = getter(item)
            values = value if isinstance(value, (list, tuple, set)) else [value]
            if not any(_pattern(pattern).fullmatch(str(v)) for v in values for pattern in patterns):
                break
        else:
            out.append(item)
    return out


def _getter(name: str | None, getters: dict[str, Callable]) -> Callable[[dict], object]:
    """The one-argument getter of the filter ``name``, or InvalidParameterValue."""
    if name in getters and name != "tag:":
        return getters[name]
    if name and name.startswith("tag:") and len(name) > 4 and "tag:" in getters:
        key, by_key = name[4:], getters["tag:"]
        return lambda item: by_key(item, key)
    raise AWSError("InvalidParameterValue", f"The filter '{name}' is invalid")


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern:
    """A filter value as EC2 reads it: ``*`` any run, ``?`` any one character, ``\\`` escapes."""
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    if escaped:
        out.append(re.escape("\\"))
    return re.compile("".join(out), re.DOTALL)


def checked_attribute(name: str | None, allowed: tuple[str, ...]) -> str:
    """``name`` if it is one of the ``allowed`` attributes of a Describe/Modify/Reset*Attribute,
    else InvalidParameterValue."""
    if name not in allowed:
        raise AWSError("InvalidParameterValue", f"Value ({name}) for parameter attribute is invalid. "
                                                f"Expecting one of: {', '.join(allowed)}.")
    return name


def dry_run(params: dict) -> None:
    """DryRun: the caller may do this; say so with AWS's DryRunOperation instead of doing it."""
    if params.get("DryRun"):
        raise AWSError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)


def copy_present(out: dict, row: dict, fields: dict[str, str]) -> dict:
    """Set ``out[Name]`` from ``row[column]`` for each non-empty column (EC2 omits empty fields)."""
    for name, column in fields.items():
        if row.get(column):
            out[name] = row[column]
    return out


class Page:
    """EC2's MaxResults/NextToken paging over items sorted by a key (a str or a tuple of str).

    Built from the request (before DryRun): MaxResults outside ``minimum..maximum`` is
    InvalidParameterValue, a NextToken this cloud did not give is InvalidPaginationToken.
    :meth:`of` then cuts the page and gives the output's NextToken if more follow.  A token
    is the last key given, so a page stays right while items come and go.
    """

    def __init__(self, params: dict, minimum: int = 5, maximum: int = 1000):
        self.limit = params.get("MaxResults")
        if self.limit is not None and not minimum <= self.limit <= maximum:
            raise AWSError("InvalidParameterValue", f"Value ( {self.limit} ) for parameter maxResults is invalid. "
                                                    f"Expecting a value between {minimum} and {maximum}.")
        self.after = None
        token = params.get("NextToken")
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))
            except (ValueError, binascii.Error):
                after = None
            if not isinstance(after, list) or not after or not all(isinstance(a, str) for a in after):
                raise AWSError("InvalidPaginationToken", f"Invalid pagination token: {token}")
            self.after = tuple(after)

    def of(self, items: list, key: Callable[[object], str | tuple[str, ...]]) -> tuple[list, dict]:
        """(the page of ``items``, {"NextToken": ...} or {})."""
        def as_tuple(item):
            value = key(item)
            return value if isinstance(value, tuple) else (value,)
        if self.after is not None:
            items = [i for i in items if as_tuple(i) > self.after]
        if self.limit is None or len(items) <= self.limit:
            return items, {}
        items = items[:self.limit]
        token = json.dumps(list(as_tuple(items[-1])))
        return items, {"NextToken": base64.urlsafe_b64encode(token.encode()).decode()}
