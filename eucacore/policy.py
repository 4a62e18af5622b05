"""IAM-style policies: parsing, Allow/Deny evaluation and Eucalyptus' Limit (quota) statements.

Shared by the cloud controller (EC2 and IAM requests) and Walrus (S3 requests).
``parse`` validates a document the way IAM's MalformedPolicyDocument does
(simplified); ``evaluate`` applies AWS's logic (explicit Deny wins, then every
resource needs an Allow, otherwise implicit deny); ``limits`` reads the quotas
that account policies set with ``"Effect": "Limit"``.  Pure functions, no I/O.
"""

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

MAX_POLICY_SIZE = 6144
VERSIONS = ("2012-10-17", "2008-10-17")

ALLOW, DENY, LIMIT = "Allow", "Deny", "Limit"
EFFECTS = (ALLOW, DENY, LIMIT)

_TOP_KEYS = {"Version", "Id", "Statement"}
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
_LIMIT_OPERATORS = ("NumericLessThanEquals", "NumericLessThan")
_ARN_PREFIXES = ("arn:aws:", "arn:euca:")
_ACTION_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*?")
_SERVICE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


class PolicyError(ValueError):
    """A malformed policy document; the message is one line, as IAM's MalformedPolicyDocument."""


class Decision(enum.Enum):
    """The outcome of evaluating a request against policies."""

    ALLOW = "Allow"
    DENY = "Deny"  # an explicit Deny statement matched
    IMPLICIT_DENY = "ImplicitDeny"  # nothing allowed it


@dataclass(frozen=True)
class Quota:
    """A per-account quota: our short name, the IAM condition key, the action it limits."""

    name: str
    key: str
    action: str
    unit: str
    description: str


QUOTAS: dict[str, Quota] = {q.name: q for q in (
    Quota("instances", "ec2:quota-vminstancenumber", "ec2:RunInstances", "count", "instances"),
    Quota("cores", "ec2:quota-cputotalsize", "ec2:RunInstances", "count", "virtual CPUs of all instances"),
    Quota("memory", "ec2:quota-memorytotalsize", "ec2:RunInstances", "MiB", "memory of all instances"),
    Quota("volumes", "ec2:quota-volumenumber", "ec2:CreateVolume", "count", "volumes"),
    Quota("volume-gib", "ec2:quota-volumetotalsize", "ec2:CreateVolume", "GiB", "size of all volumes"),
    Quota("snapshots", "ec2:quota-snapshotnumber", "ec2:CreateSnapshot", "count", "snapshots"),
    Quota("addresses", "ec2:quota-addressnumber", "ec2:AllocateAddress", "count", "elastic IP addresses"),
    Quota("buckets", "s3:quota-bucketnumber", "s3:CreateBucket", "count", "buckets"),
    Quota("bucket-storage-mib", "s3:quota-buckettotalsize", "s3:PutObject", "MiB", "size of all objects"),
)}
# Condition keys are case-insensitive in IAM.
_QUOTA_BY_KEY = {q.key.lower(): q for q in QUOTAS.values()}


@dataclass(frozen=True)
class Statement:
    """One parsed statement.  ``limits`` holds (quota key, largest allowed value) of a Limit statement."""

    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_action: bool = False
    not_resource: bool = False
    sid: str | None = None
    limits: tuple[tuple[str, int], ...] = ()

    def covers_action(self, action: str) -> bool:
        """Whether the statement applies to ``action`` (``NotAction``: matches none of the patterns)."""
        matched = any(action_matches(p, action) for p in self.actions)
        return matched != self.not_action

    def covers_resource(self, resource: str) -> bool:
        """Whether the statement applies to ``resource`` (``NotResource``: matches none of the patterns)."""
        matched = any(resource_matches(p, resource) for p in self.resources)
        return matched != self.not_resource


@dataclass(frozen=True)
class Policy:
    """A parsed policy: the original text and its statements; immutable and hashable, so cacheable."""

    document: str
    statements: tuple[Statement, ...]
    version: str | None = None


# -- matching ---------------------------------------------------------------

def _glob_match(pattern: str, text: str) -> bool:
    """``*`` (any run, including "/" and ":") and ``?`` (one character); everything else literal.

    Two pointers with backtracking to the last star: O(len(pattern) * len(text))
    at worst, so a policy cannot make matching a long S3 key exponential as a
    regex translation could.
    """
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            p += 1
            t += 1
        elif star >= 0:
            mark += 1
            p, t = star + 1, mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an Action pattern (case-insensitive glob, e.g. ``ec2:Describe*``) matches ``action``."""
    return _glob_match(pattern.lower(), action.lower())


def _canonical_arn(arn: str) -> str:
    # "arn:euca:" is Eucalyptus' spelling of the partition; callers build "arn:aws:" ARNs.
    return "arn:aws:" + arn[len("arn:euca:"):] if arn.startswith("arn:euca:") else arn


def resource_matches(pattern: str, resource: str) -> bool:
    """Whether a Resource pattern (case-sensitive glob, ``*`` spans "/" and ":") matches ``resource``."""
    return _glob_match(_canonical_arn(pattern), _canonical_arn(resource))


# -- parsing ----------------------------------------------------------------

def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    data: dict = {}
    for key, value in pairs:
        if key in data:
            # Last-one-wins would let a second "Effect" silently flip a statement.
            raise PolicyError(f"Duplicate key {key!r} in policy document")
        data[key] = value
    return data


def _reject_constant(name: str) -> None:
    raise PolicyError(f"Syntax errors in policy: {name} is not valid JSON")


def _load(document: str) -> dict:
    if not isinstance(document, str):
        raise PolicyError("Policy document must be text")
    if len(document) > MAX_POLICY_SIZE:
        raise PolicyError(f"Policy document exceeds the {MAX_POLICY_SIZE} character limit")
    try:
        data = json.loads(document, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise PolicyError(f"Syntax errors in policy: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, dict):
        raise PolicyError("Policy document must be a JSON object")
    return data


def parse(document: str) -> Policy:
    """Validate and parse an IAM policy document; raises PolicyError with IAM-like messages."""
    data = _load(document)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise PolicyError(f"Policy document has an unknown element {unknown[0]!r}")
    version = data.get("Version")
    if version is not None and version not in VERSIONS:
        raise PolicyError(f"Version must be {' or '.join(VERSIONS)}")
    if "Id" in data and not isinstance(data["Id"], str):
        raise PolicyError("Id must be a string")
    if "Statement" not in data:
        raise PolicyError("Policy document must contain a Statement")
    raw = data["Statement"]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError("Statement must be an object or a non-empty list of objects")
    statements = tuple(_parse_statement(n, s) for n, s in enumerate(raw, 1))
    return Policy(document=document, statements=statements, version=version)


def _parse_statement(n: int, raw: object) -> Statement:
    def fail(message: str) -> PolicyError:
        return PolicyError(f"Statement {n}: {message}")

    if not isinstance(raw, dict):
        raise fail("must be an object")
    if "Principal" in raw or "NotPrincipal" in raw:
        raise fail("Policy document should not specify a principal")
    unknown = sorted(set(raw) - _STATEMENT_KEYS)
    if unknown:
        raise fail(f"unknown element {unknown[0]!r}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise fail("Sid must be a string")
    effect = raw.get("Effect")
    if effect not in EFFECTS:
        raise fail("Effect must be Allow, Deny or Limit")
    action_key = _one_of(raw, "Action", "NotAction", fail)
    actions = _strings(raw[action_key], action_key, fail)
    for action in actions:
        if not _is_action_pattern(action):
            raise fail(f"{action_key} {action!r} must be '*' or service:name, e.g. ec2:RunInstances")
    resource_key = _one_of(raw, "Resource", "NotResource", fail)
    resources = _strings(raw[resource_key], resource_key, fail)
    for resource in resources:
        if not _is_resource_pattern(resource):
            raise fail(f"{resource_key} {resource!r} must be '*' or an ARN (arn:aws:service:region:account:resource)")
    statement = Statement(effect=effect, actions=actions, resources=resources,
                          not_action=action_key == "NotAction", not_resource=resource_key == "NotResource",
                          sid=sid)
    if effect != LIMIT:
        if "Condition" in raw:
            raise fail("conditions are not supported on Allow or Deny statements")
        return statement
    limits = _parse_limits(raw.get("Condition"), fail)
    for key, _ in limits:
        quota = _QUOTA_BY_KEY[key.lower()]
        if not statement.covers_action(quota.action):
            raise fail(f"quota key {quota.key} limits {quota.action}, "
                       f"which the statement's {action_key} does not cover")
    return replace(statement, limits=limits)


def _one_of(raw: dict, key: str, not_key: str, fail) -> str:
    if (key in raw) == (not_key in raw):
        raise fail(f"must contain exactly one of {key} or {not_key}")
    return key if key in raw else not_key


def _strings(value: object, name: str, fail) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise fail(f"{name} must be a non-empty string or a non-empty list of strings")
    return tuple(values)


def _is_action_pattern(action: str) -> bool:
    if action == "*":
        return True
    service, sep, name = action.partition(":")
    return (bool(sep) and bool(service) and bool(name) and set(service.lower()) <= _SERVICE_CHARS
            and set(name) <= _ACTION_CHARS)


def _is_resource_pattern(resource: str) -> bool:
    # arn:partition:service:region:account:resource -- region and account may be empty (S3, IAM).
    return resource == "*" or (resource.startswith(_ARN_PREFIXES) and len(resource.split(":", 5)) == 6)


def _parse_limits(condition: object, fail) -> tuple[tuple[str, int], ...]:
    if condition is None:
        raise fail("a Limit statement needs a Condition")
    if not isinstance(condition, dict) or not condition:
        raise fail("Condition must be a non-empty object")
    limits = []
    for operator, keys in condition.items():
        if operator not in _LIMIT_OPERATORS:
            raise fail(f"Condition operator {operator!r} is not supported on Limit; "
                       f"use {' or '.join(_LIMIT_OPERATORS)}")
        if not isinstance(keys, dict) or not keys:
            raise fail(f"{operator} must be a non-empty object of quota keys")
        for key, value in keys.items():
            quota = _QUOTA_BY_KEY.get(key.lower())
            if quota is None:
                raise fail(f"unknown quota key {key!r}")
            number = _quota_value(value)
            if number is None:
                raise fail(f"quota {quota.key} must be a non-negative integer, not {value!r}")
            # "less than 0" can never hold: the same as allowing nothing.
            limits.append((quota.key, max(number - 1, 0) if operator == "NumericLessThan" else number))
    return tuple(limits)


def _quota_value(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        return None
    return number if number >= 0 else None


# -- evaluation and quotas --------------------------------------------------

def evaluate(policies: Iterable[Policy], action: str, resources: Sequence[str]) -> Decision:
    """AWS's decision for ``action`` on ``resources``; Limit statements are ignored.

    An explicit Deny matching the action and any resource wins; otherwise ALLOW
    when every resource is covered by some Allow; otherwise IMPLICIT_DENY.
    Actions without resource-level permissions are evaluated on ``["*"]``.
    """
    if isinstance(resources, str):
        raise TypeError("resources must be a sequence of ARNs, not one string")
    if not resources:
        raise ValueError("evaluate needs at least one resource; use ['*'] for actions without resources")
    relevant = [s for p in policies for s in p.statements if s.effect != LIMIT and s.covers_action(action)]
    if any(s.effect == DENY and s.covers_resource(r) for s in relevant for r in resources):
        return Decision.DENY
    allows = [s for s in relevant if s.effect == ALLOW]
    if all(any(s.covers_resource(r) for s in allows) for r in resources):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def is_allowed(policies: Iterable[Policy], action: str, resources: Sequence[str]) -> bool:
    """Whether ``evaluate`` says ALLOW."""
    return evaluate(policies, action, resources) is Decision.ALLOW


def limits(policies: Iterable[Policy]) -> dict[str, int]:
    """The quotas set by Limit statements: short quota name -> smallest value set."""
    found: dict[str, int] = {}
    for policy in policies:
        for statement in policy.statements:
            for key, value in statement.limits:
                name = _QUOTA_BY_KEY[key.lower()].name
                found[name] = min(value, found.get(name, value))
    return found


def quota_policy(values: Mapping[str, int]) -> str:
    """An account policy document with one Limit statement per quota (short name -> value)."""
    if not values:
        raise PolicyError("A quota policy needs at least one quota")
    statements = []
    for name, value in values.items():
        quota = QUOTAS.get(name)
        if quota is None:
            raise PolicyError(f"Unknown quota {name!r}; known: {', '.join(QUOTAS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PolicyError(f"Quota {name} must be a non-negative integer, not {value!r}")
        statements.append({"Effect": LIMIT, "Action": quota.action, "Resource": "*",
                           "Condition": {"NumericLessThanEquals": {quota.key: str(value)}}})
    return json.dumps({"Version": VERSIONS[0], "Statement": statements}, indent=2)


# -- ARNs -------------------------------------------------------------------

def ec2_arn(region: str, account_id: str, kind: str, resource_id: str) -> str:
    """``arn:aws:ec2:{region}:{account}:{kind}/{id}``, e.g. kind "instance", "volume"."""
    return f"arn:aws:ec2:{region}:{account_id}:{kind}/{resource_id}"


def s3_arn(bucket: str, key: str | None = None) -> str:
    """``arn:aws:s3:::bucket`` for a bucket, ``arn:aws:s3:::bucket/key`` for an object."""
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


def iam_arn(account_id: str, kind: str, path: str, name: str) -> str:
    """``arn:aws:iam::{account}:{kind}{path}{name}``; ``path`` starts and ends with "/"."""
    if not (path.startswith("/") and path.endswith("/")):
        raise ValueError(f"IAM path must start and end with '/': {path!r}")
    return f"arn:aws:iam::{account_id}:{kind}{path}{name}"
