"""Fuzz: thousands of malformed but properly signed EC2 query requests against the live CLC.

Every answer must be an EC2 error document with a 4xx status: no 500, no traceback,
never a success, and nothing the account can see changes.  Each request carries at
least one defect (a wrong type, a missing required member, a repeated or unknown
parameter, a huge value, a broken index, bytes that are not UTF-8), so any success
would itself be a bug.
"""

import json
import random
from urllib.parse import quote

import botocore.session
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from lxml import etree

from clc.ec2 import HANDLERS

pytestmark = pytest.mark.integration
REQUESTS = 2500
SEED = 20261121


def _scalar_of(shape, rng):
    """A well-formed value for a scalar shape (the defects are added separately)."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        return str(rng.randint(0, 5))
    if kind == "boolean":
        return rng.choice(["true", "false"])
    if kind == "timestamp":
        return "2026-01-01T00:00:00Z"
    if kind == "blob":
        return "aGVsbG8="
    if kind in ("float", "double"):
        return "1.5"
    if getattr(shape, "enum", None):
        return rng.choice(shape.enum)
    return rng.choice(["fuzz", "i-00000000", "emi-00000000", "default", "zone-a", "x" * 8])


def _members(shape, prefix, rng, depth=0):
    """Flat EC2 query parameters for some members of a structure shape."""
    out = []
    for name, member in shape.members.items():
        if name not in shape.required_members and rng.random() < 0.6:
            continue
        wire = member.serialization.get("queryName") or (member.serialization.get("name", name)[:1].upper()
                                                          + member.serialization.get("name", name)[1:])
        key = f"{prefix}{wire}"
        if member.type_name == "structure" and depth < 2:
            out += _members(member, key + ".", rng, depth + 1)
        elif member.type_name == "list" and depth < 2:
            item = member.member
            if item.type_name == "structure":
                out += _members(item, f"{key}.1.", rng, depth + 1)
            else:
                out.append((f"{key}.1", _scalar_of(item, rng)))
        elif member.type_name not in ("structure", "list", "map"):
            out.append((key, _scalar_of(member, rng)))
    return out


def _defective(operation, rng):
    """(action, [(name, value)], raw body suffix) with at least one defect."""
    params = _members(operation.input_shape, "", rng) if operation.input_shape else []
    defect = rng.choice(["wrong-type", "missing", "repeated", "unknown", "huge", "index", "encoding",
                         "no-action", "bad-action"])
    action = operation.name
    scalars = [(i, p) for i, p in enumerate(params)]
    suffix = b""
    if defect == "wrong-type":
        typed = [(k, s) for k, s in _scalar_members(operation.input_shape) if s.type_name in
                 ("integer", "long", "boolean", "timestamp", "blob")]
        if typed:
            key, shape = rng.choice(typed)
            params.append((key, rng.choice(["not-a-number", "1.5e999", "tru", "\u2603", "--1", "%%%"])))
        else:
            params.append(("NoSuchParameter", "x"))
    elif defect == "missing" and operation.input_shape is not None and operation.input_shape.required_members:
        required = operation.input_shape.required_members
        params = [p for p in params if not any(p[0].split(".")[0].lower() == r.lower() for r in required)]
        if not any(True for _ in required):
            params.append(("NoSuchParameter", "x"))
    elif defect == "repeated" and scalars:
        params.append(rng.choice(params))
    elif defect == "huge":
        params.append((rng.choice([p[0] for p in params] or ["Filter.1.Name"]) + ".Huge", "A" * 200_000))
    elif defect == "index":
        params.append((rng.choice(["Filter.-1.Name", "Filter.x.Name", "InstanceId.99999999999999999999",
                                   "Filter.1.Value.1.2", "Filter..Name", "."]), "v"))
    elif defect == "encoding":
        suffix = rng.choice([b"&KeyName=%FF%FE", b"&Filter.1.Name=%C3%28", b"&%80=x"])
    elif defect == "no-action":
        action = None
    elif defect == "bad-action":
        action = rng.choice(["", "DescribeEverything", "describeinstances", "RunInstances " * 3])
    else:
        params.append(("UnknownParameter" + str(rng.randint(0, 99)), "x"))
    return action, params, suffix


def _scalar_members(shape, prefix=""):
    for name, member in (shape.members.items() if shape is not None else []):
        wire = member.serialization.get("queryName") or name
        if member.type_name not in ("structure", "list", "map"):
            yield prefix + wire, member


def _signed(cloud, tenant, action, params, suffix):
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in
                    ([("Action", action)] if action is not None else []) + [("Version", "2016-11-15")] + params)
    data = body.encode() + suffix
    request = AWSRequest(method="POST", url=cloud.ec2_url, data=data,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(tenant.access_key, tenant.secret_key), "ec2", "eucalyptus").add_auth(request)
    return request


def _visible_state(ec2):
    views = [ec2.describe_instances(), ec2.describe_key_pairs(), ec2.describe_images(Owners=["self"])]
    for optional in ("describe_security_groups", "describe_volumes", "describe_snapshots", "describe_addresses",
                     "describe_tags"):
        try:
            views.append(getattr(ec2, optional)(**({"OwnerIds": ["self"]} if optional == "describe_snapshots"
                                                   else {})))
        except Exception as e:  # an action not yet served answers Unsupported: same before and after
            views.append(str(getattr(e, "response", {}).get("Error", {}).get("Code")))
    for view in views:
        if isinstance(view, dict):
            view.pop("ResponseMetadata", None)
    return json.dumps(views, default=str, sort_keys=True)


def test_malformed_requests_get_error_documents_only(cloud):
    tenant = cloud.new_account("fuzz-tenant")
    ec2 = tenant.client("ec2")
    ec2.create_key_pair(KeyName="fuzz-key")
    before = _visible_state(ec2)
    model = botocore.session.get_session().get_service_model("ec2")
    served = sorted(HANDLERS)
    others = [name for name in model.operation_names if name not in HANDLERS]
    rng = random.Random(SEED)
    session = requests.Session()
    statuses = {}
    for n in range(REQUESTS):
        name = rng.choice(served) if rng.random() < 0.8 else rng.choice(others)
        action, params, suffix = _defective(model.operation_model(name), rng)
        request = _signed(cloud, tenant, action, params, suffix)
        response = session.post(request.url, data=request.body, headers=dict(request.headers), timeout=30)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        context = f"request {n}: {action} {params[:6]} {suffix!r} -> {response.status_code} {response.text[:300]}"
        assert 400 <= response.status_code < 500, context
        assert b"Traceback" not in response.content, context
        root = etree.fromstring(response.content)
        assert root.tag == "Response" and root.find("Errors/Error/Code").text, context
    assert _visible_state(ec2) == before
    assert sum(statuses.values()) == REQUESTS
