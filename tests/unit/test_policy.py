"""eucacore.policy: IAM policy validation, Allow/Deny evaluation, Limit quotas and ARN helpers."""

import json

import pytest

from eucacore import policy
from eucacore.policy import Decision, PolicyError, evaluate, parse


def doc(*statements, **top):
    return json.dumps({"Version": "2012-10-17", **top, "Statement": list(statements)})


def stmt(effect="Allow", action="*", resource="*", **extra):
    return {"Effect": effect, "Action": action, "Resource": resource, **extra}


def limit(key, value, operator="NumericLessThanEquals", action="*"):
    return stmt("Limit", action, Condition={operator: {key: value}})


def decide(statements, action, resources):
    return evaluate([parse(doc(*statements))], action, resources)


# -- validation -------------------------------------------------------------

def test_parse_keeps_document_and_statements():
    text = doc(stmt(action=["ec2:Describe*", "s3:GetObject"], Sid="Read"))
    parsed = parse(text)
    assert parsed.document == text
    assert parsed.version == "2012-10-17"
    (s,) = parsed.statements
    assert (s.effect, s.actions, s.resources, s.sid) == ("Allow", ("ec2:Describe*", "s3:GetObject"), ("*",), "Read")
    assert parse(text) == parsed and hash(parse(text)) == hash(parsed)


def test_single_statement_object_and_no_version():
    parsed = parse(json.dumps({"Statement": stmt("Deny", "ec2:RunInstances")}))
    assert parsed.version is None
    assert parsed.statements[0].effect == "Deny"


@pytest.mark.parametrize("text, message", [
    ("{not json", "Syntax errors in policy"),
    ('["Statement"]', "must be a JSON object"),
    ('{"Version": "2012-10-17"}', "Policy document must contain a Statement"),
    ('{"Version": "2013-01-01", "Statement": []}', "Version must be 2012-10-17 or 2008-10-17"),
    ('{"Statement": []}', "non-empty list"),
    ('{"Statement": "Allow"}', "non-empty list"),
    ('{"Statement": [], "Extra": 1}', "unknown element 'Extra'"),
    ('{"Statement": {"Effect": "Allow"}, "Statement": []}', "Duplicate key 'Statement'"),
    ('{"Statement": {"Effect": NaN}}', "Syntax errors in policy"),
])
def test_document_errors(text, message):
    with pytest.raises(PolicyError, match=message):
        parse(text)


@pytest.mark.parametrize("statement, message", [
    ("Allow", "Statement 2: must be an object"),
    (stmt(effect="Permit"), "Statement 2: Effect must be Allow, Deny or Limit"),
    ({"Effect": "Allow", "Resource": "*"}, "exactly one of Action or NotAction"),
    (stmt(NotAction="ec2:*"), "exactly one of Action or NotAction"),
    ({"Effect": "Allow", "Action": "*"}, "exactly one of Resource or NotResource"),
    (stmt(action=[]), "Action must be a non-empty string or a non-empty list"),
    (stmt(action=["ec2:RunInstances", 5]), "Action must be a non-empty string"),
    (stmt(action="RunInstances"), "Action 'RunInstances' must be '\\*' or service:name"),
    (stmt(action="ec2:"), "must be '\\*' or service:name"),
    (stmt(action="ec2:Run Instances"), "must be '\\*' or service:name"),
    (stmt(resource="bucket-a/*"), "Resource 'bucket-a/\\*' must be '\\*' or an ARN"),
    (stmt(resource="arn:aws:s3"), "must be '\\*' or an ARN"),
    (stmt(Sid=7), "Sid must be a string"),
    (stmt(Principal="*"), "should not specify a principal"),
    (stmt(Bogus=1), "unknown element 'Bogus'"),
    (stmt(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}), "conditions are not supported"),
])
def test_statement_errors_name_the_statement(statement, message):
    with pytest.raises(PolicyError, match=f"^Statement 2: .*{message.removeprefix('Statement 2: ')}"):
        parse(doc(stmt(), statement))


def test_euca_partition_and_not_elements_are_accepted():
    parsed = parse(doc({"Effect": "Deny", "NotAction": "iam:*", "NotResource": "arn:euca:s3:::secret/*"}))
    (s,) = parsed.statements
    assert s.not_action and s.not_resource


def test_size_limit():
    padding = "x" * policy.MAX_POLICY_SIZE
    with pytest.raises(PolicyError, match="^Policy document exceeds the 6144 character limit$"):
        parse(doc(stmt(Sid=padding)))
    text = doc(stmt())
    text = text + " " * (policy.MAX_POLICY_SIZE - len(text))
    assert len(parse(text).statements) == 1


# -- matching ---------------------------------------------------------------

@pytest.mark.parametrize("pattern, action, expected", [
    ("*", "ec2:RunInstances", True),
    ("ec2:*", "ec2:RunInstances", True),
    ("ec2:describe*", "ec2:DescribeInstances", True),
    ("EC2:DESCRIBEINSTANCES", "ec2:DescribeInstances", True),
    ("s3:Get*", "s3:PutObject", False),
    ("s3:Get*", "ec2:GetConsoleOutput", False),
    ("ec2:Describe?mages", "ec2:DescribeImages", True),
    ("ec2:Describe?mages", "ec2:DescribeIImages", False),
    ("ec2:Run*", "ec2:RunInstancesX", True),
])
def test_action_matching(pattern, action, expected):
    assert policy.action_matches(pattern, action) is expected


@pytest.mark.parametrize("pattern, resource, expected", [
    ("*", "arn:aws:s3:::b/k", True),
    ("arn:aws:s3:::bucket-a/*", "arn:aws:s3:::bucket-a/deep/nested/key.txt", True),
    ("arn:aws:s3:::bucket-a/*", "arn:aws:s3:::bucket-a", False),
    ("arn:aws:s3:::bucket-a*", "arn:aws:s3:::bucket-ab/x", True),
    ("arn:aws:s3:::Bucket-A/*", "arn:aws:s3:::bucket-a/x", False),
    ("arn:aws:s3:::b/[abc].txt", "arn:aws:s3:::b/[abc].txt", True),
    ("arn:aws:s3:::b/[abc].txt", "arn:aws:s3:::b/a.txt", False),
    ("arn:aws:s3:::b/x?y", "arn:aws:s3:::b/x/y", True),
    ("arn:aws:s3:::b/what?", "arn:aws:s3:::b/what?", True),
    ("arn:aws:s3:::b/a*b*c", "arn:aws:s3:::b/a-b/c", True),
    ("arn:aws:s3:::b/a*b*c", "arn:aws:s3:::b/a-c-b", False),
    ("arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:eucalyptus:123456789012:instance/i-1", True),
    ("arn:aws:ec2:*", "arn:aws:ec2:r:1:volume/vol-1", True),
    ("arn:euca:s3:::b/*", "arn:aws:s3:::b/k", True),
])
def test_resource_matching(pattern, resource, expected):
    assert policy.resource_matches(pattern, resource) is expected


def test_pathological_pattern_is_fast():
    pattern = "arn:aws:s3:::b/" + "*a" * 30 + "*b"
    assert not policy.resource_matches(pattern, "arn:aws:s3:::b/" + "a" * 1024)


# -- evaluation -------------------------------------------------------------

def test_deny_run_instances_overrides_allow_all():
    policies = [parse(doc(stmt("Deny", "ec2:RunInstances"))), parse(doc(stmt()))]
    assert evaluate(policies, "ec2:RunInstances", ["*"]) is Decision.DENY
    assert evaluate(policies, "ec2:DescribeInstances", ["*"]) is Decision.ALLOW
    assert not policy.is_allowed(policies, "ec2:RunInstances", ["*"])
    assert policy.is_allowed(policies, "ec2:DescribeInstances", ["*"])


def test_get_object_on_one_bucket_only():
    policies = [parse(doc(stmt("Allow", "s3:GetObject", "arn:aws:s3:::bucket-a/*")))]
    assert evaluate(policies, "s3:GetObject", [policy.s3_arn("bucket-a", "x")]) is Decision.ALLOW
    assert evaluate(policies, "s3:GetObject", [policy.s3_arn("bucket-b", "x")]) is Decision.IMPLICIT_DENY
    assert evaluate(policies, "s3:PutObject", [policy.s3_arn("bucket-a", "x")]) is Decision.IMPLICIT_DENY
    assert evaluate(policies, "s3:ListBucket", [policy.s3_arn("bucket-a")]) is Decision.IMPLICIT_DENY


def test_no_policies_is_implicit_deny():
    assert evaluate([], "ec2:DescribeInstances", ["*"]) is Decision.IMPLICIT_DENY


def test_every_resource_needs_an_allow():
    allow_a = stmt("Allow", "s3:GetObject", "arn:aws:s3:::a/*")
    allow_b = stmt("Allow", "s3:GetObject", "arn:aws:s3:::b/*")
    both = ["arn:aws:s3:::a/1", "arn:aws:s3:::b/2"]
    assert decide([allow_a], "s3:GetObject", both) is Decision.IMPLICIT_DENY
    assert decide([allow_a, allow_b], "s3:GetObject", both) is Decision.ALLOW


def test_deny_on_any_resource_wins():
    statements = [stmt(), stmt("Deny", "s3:*", "arn:aws:s3:::secret/*")]
    assert decide(statements, "s3:CopyObject", ["arn:aws:s3:::a/1", "arn:aws:s3:::secret/2"]) is Decision.DENY
    assert decide(statements, "s3:CopyObject", ["arn:aws:s3:::a/1", "arn:aws:s3:::public/2"]) is Decision.ALLOW


def test_not_action():
    statements = [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]
    assert decide(statements, "ec2:RunInstances", ["*"]) is Decision.ALLOW
    assert decide(statements, "iam:CreateUser", ["*"]) is Decision.IMPLICIT_DENY
    deny = [stmt(), {"Effect": "Deny", "NotAction": ["ec2:Describe*", "s3:Get*"], "Resource": "*"}]
    assert decide(deny, "ec2:DescribeImages", ["*"]) is Decision.ALLOW
    assert decide(deny, "ec2:TerminateInstances", ["*"]) is Decision.DENY


def test_not_resource():
    statements = [stmt(), {"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::home/*"}]
    assert decide(statements, "s3:PutObject", ["arn:aws:s3:::home/me"]) is Decision.ALLOW
    assert decide(statements, "s3:PutObject", ["arn:aws:s3:::other/me"]) is Decision.DENY
    allow = [{"Effect": "Allow", "Action": "s3:*", "NotResource": ["arn:aws:s3:::secret", "arn:aws:s3:::secret/*"]}]
    assert decide(allow, "s3:GetObject", ["arn:aws:s3:::public/x"]) is Decision.ALLOW
    assert decide(allow, "s3:GetObject", ["arn:aws:s3:::secret/x"]) is Decision.IMPLICIT_DENY


def test_limit_statements_do_not_allow_or_deny():
    statements = [limit("ec2:quota-vminstancenumber", "0", action="ec2:RunInstances")]
    assert decide(statements, "ec2:RunInstances", ["*"]) is Decision.IMPLICIT_DENY
    assert decide(statements + [stmt()], "ec2:RunInstances", ["*"]) is Decision.ALLOW


def test_resources_must_be_a_non_empty_sequence():
    policies = [parse(doc(stmt()))]
    with pytest.raises(TypeError):
        evaluate(policies, "s3:GetObject", "arn:aws:s3:::b/k")
    with pytest.raises(ValueError):
        evaluate(policies, "s3:GetObject", [])


def test_policies_may_be_a_generator():
    texts = [doc(stmt("Allow", "ec2:*"))]
    assert evaluate((parse(t) for t in texts), "ec2:RunInstances", ["*"]) is Decision.ALLOW


# -- quotas -----------------------------------------------------------------

def test_quota_table():
    assert set(policy.QUOTAS) == {"instances", "cores", "memory", "volumes", "volume-gib", "snapshots",
                                  "addresses", "buckets", "bucket-storage-mib"}
    for name, quota in policy.QUOTAS.items():
        assert quota.name == name
        assert policy.action_matches(quota.action, quota.action)
    assert policy.QUOTAS["instances"].key == "ec2:quota-vminstancenumber"
    assert policy.QUOTAS["memory"].unit == "MiB"
    assert policy.QUOTAS["bucket-storage-mib"].action == "s3:PutObject"


def test_eucalyptus_limit_example():
    text = ('{"Statement":[{"Effect":"Limit","Action":"ec2:RunInstances","Resource":"*",'
            '"Condition":{"NumericLessThanEquals":{"ec2:quota-vminstancenumber":"5"}}}]}')
    assert policy.limits([parse(text)]) == {"instances": 5}


def test_limits_take_the_smallest_value_across_policies():
    first = parse(doc(limit("ec2:quota-vminstancenumber", "5"), limit("s3:quota-bucketnumber", 10)))
    second = parse(doc(limit("EC2:Quota-VMInstanceNumber", "8"),
                       limit("ec2:quota-vminstancenumber", "4", operator="NumericLessThan")))
    assert policy.limits([first, second]) == {"instances": 3, "buckets": 10}
    assert policy.limits([parse(doc(stmt()))]) == {}


@pytest.mark.parametrize("statement, message", [
    (stmt("Limit"), "a Limit statement needs a Condition"),
    (limit("ec2:quota-nosuchthing", "5"), "unknown quota key 'ec2:quota-nosuchthing'"),
    (limit("ec2:quota-volumenumber", "-1"), "must be a non-negative integer"),
    (limit("ec2:quota-volumenumber", "2.5"), "must be a non-negative integer"),
    (limit("ec2:quota-volumenumber", True), "must be a non-negative integer"),
    (limit("ec2:quota-volumenumber", ["1", "2"]), "must be a non-negative integer"),
    (limit("ec2:quota-volumenumber", "5", operator="NumericGreaterThan"), "operator 'NumericGreaterThan'"),
    (limit("ec2:quota-volumenumber", "5", action="ec2:RunInstances"), "limits ec2:CreateVolume"),
])
def test_limit_errors(statement, message):
    with pytest.raises(PolicyError, match=f"^Statement 1: .*{message}"):
        parse(doc(statement))


def test_quota_policy_round_trips():
    values = {name: i * 7 for i, name in enumerate(policy.QUOTAS)}
    text = policy.quota_policy(values)
    parsed = parse(text)
    assert parsed.version == "2012-10-17"
    assert policy.limits([parsed]) == values
    assert {s.actions for s in parsed.statements} == {(q.action,) for q in policy.QUOTAS.values()}
    assert all(s.effect == "Limit" and s.resources == ("*",) for s in parsed.statements)
    # A Limit-only policy grants nothing.
    assert evaluate([parsed], "ec2:RunInstances", ["*"]) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize("values, message", [
    ({"instances": 5, "gpus": 1}, "Unknown quota 'gpus'"),
    ({"instances": -1}, "non-negative integer"),
    ({"instances": "5"}, "non-negative integer"),
    ({}, "at least one quota"),
])
def test_quota_policy_errors(values, message):
    with pytest.raises(PolicyError, match=message):
        policy.quota_policy(values)


# -- ARNs -------------------------------------------------------------------

def test_arn_helpers():
    assert policy.ec2_arn("eucalyptus", "123456789012", "instance", "i-3f2a9c01") == \
        "arn:aws:ec2:eucalyptus:123456789012:instance/i-3f2a9c01"
    assert policy.s3_arn("photos") == "arn:aws:s3:::photos"
    assert policy.s3_arn("photos", "2024/[raw] cat?.jpg") == "arn:aws:s3:::photos/2024/[raw] cat?.jpg"
    assert policy.iam_arn("123456789012", "user", "/", "alice") == "arn:aws:iam::123456789012:user/alice"
    assert policy.iam_arn("123456789012", "role", "/dev/", "ci") == "arn:aws:iam::123456789012:role/dev/ci"
    with pytest.raises(ValueError):
        policy.iam_arn("123456789012", "user", "dev", "alice")


def test_helper_arns_are_valid_policy_resources():
    arns = [policy.ec2_arn("r", "1", "volume", "vol-1"), policy.s3_arn("b", "k"), policy.iam_arn("1", "user", "/", "u")]
    parsed = parse(doc(stmt(resource=arns)))
    assert all(evaluate([parsed], "ec2:AttachVolume", [arn]) is Decision.ALLOW for arn in arns)
