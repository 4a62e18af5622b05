"""What EC2 handlers share: errors named after their AWS codes, and Describe filtering."""

from collections.abc import Callable, Iterable

from eucacore.awsapi.errors import AWSError


def not_found(code: str, what: str, ident: str) -> AWSError:
    """``InvalidXxx.NotFound``: the answer for ids that do not exist, or are another account's."""
    return AWSError(code, f"The {what} '{ident}' does not exist")


def apply_filters(items: Iterable[dict], filters: list[dict] | None,
                  getters: dict[str, Callable[[dict], object]]) -> list[dict]:
    """Keep the items that match every filter (any of its values; ``*`` and ``?`` wildcards).

    An unknown filter name is ``InvalidParameterValue``, never silently ignored.
    """
    import fnmatch
    filters = filters or []
    for f in filters:
        if f.get("Name") not in getters:
            raise AWSError("InvalidParameterValue", f"The filter '{f.get('Name')}' is invalid")
    out = []
    for item in items:
        ok = True
        for f in filters:
            value = getters[f["Name"]](item)
            values = value if isinstance(value, (list, tuple, set)) else [value]
            if not any(fnmatch.fnmatchcase(str(v), pattern) for v in values for pattern in f.get("Values") or []):
                ok = False
                break
        if ok:
            out.append(item)
    return out


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
