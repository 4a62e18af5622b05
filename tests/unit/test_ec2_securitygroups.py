"""Security groups in process: validation, rules, the default group, and what RunInstances and
the cluster controllers get from the module."""

import threading

import botocore.parsers
import pytest

from eucacore import ids
from eucacore.awsapi.ec2 import Ec2Protocol
from eucacore.awsapi.errors import AWSError
from eucacore.config import default_config
from eucacore.principal import Principal
from clc.cloud import Cloud, RequestContext
from clc.ec2 import HANDLERS, securitygroups as sg
from clc.ec2 import tags


@pytest.fixture
def cloud(tmp_path):
    return Cloud(default_config(EUCALYPTUS=str(tmp_path)))


def _ctx(cloud, name):
    account, _ = cloud.identity.create_account(name)
    principal = Principal(access_key="AK" + name, secret_key="s", account_id=account["account_id"],
                          user_id="u-" + name, is_account_admin=True)
    return RequestContext(cloud, principal, "req-" + name)


@pytest.fixture
def alice(cloud):
    return _ctx(cloud, "alice")


@pytest.fixture
def bob(cloud):
    return _ctx(cloud, "bob")


def _error(call, *args, **kwargs) -> AWSError:
    with pytest.raises(AWSError) as e:
        call(*args, **kwargs)
    return e.value


def _create(ctx, name, description="a group", **more):
    return sg.create_security_group(ctx, {"GroupName": name, "Description": description, **more})["GroupId"]


def _describe(ctx, **params):
    return sg.describe_security_groups(ctx, params)["SecurityGroups"]


def _group(ctx, group_id):
    return _describe(ctx, GroupIds=[group_id])[0]


def _ssh(cidr="10.0.0.0/8", **more):
    return {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr, **more}]}


# -- create ------------------------------------------------------------------------------------

def test_handlers_are_registered():
    for action in ("CreateSecurityGroup", "DescribeSecurityGroups", "DeleteSecurityGroup",
                   "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
                   "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress"):
        assert HANDLERS[action] is sg.HANDLERS[action]


def test_create_gives_an_sg_id_and_the_default_egress_rule(alice):
    group_id = _create(alice, "web", "web servers")
    assert sg._GROUP_ID.fullmatch(group_id) and len(group_id) == 11
    group = _group(alice, group_id)
    assert group["GroupName"] == "web" and group["Description"] == "web servers"
    assert group["OwnerId"] == alice.account_id and group["IpPermissions"] == []
    assert group["IpPermissionsEgress"] == [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                                             "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}]


def test_names_are_unique_per_account_only(alice, bob):
    _create(alice, "web")
    assert _error(_create, alice, "web").code == "InvalidGroup.Duplicate"
    assert _create(bob, "web")


@pytest.mark.parametrize("name,description,code", [
    ("default", "mine", "InvalidGroup.Reserved"),
    ("sg-12345678", "looks like an id", "InvalidParameterValue"),
    ("x" * 256, "too long", "InvalidParameterValue"),
    ("bad\tname", "tab", "InvalidParameterValue"),
    ("caf\u00e9", "not ascii", "InvalidParameterValue"),
    ("ok", "d" * 256, "InvalidParameterValue"),
    ("ok", "no <html>", "InvalidParameterValue"),
    ("ok", "", "MissingParameter"),
    ("", "no name", "MissingParameter"),
])
def test_create_refuses_what_aws_refuses(alice, name, description, code):
    assert _error(_create, alice, name, description).code == code


def test_create_accepts_aws_characters_and_255(alice):
    assert _create(alice, "a-Z 0._-:/()#,@[]+=&;{}!$*", "n" * 255)


def test_create_with_vpc_dry_run_and_tags(alice):
    assert _error(_create, alice, "v", "d", VpcId="vpc-12345678").code == "InvalidVpcID.NotFound"
    assert _error(_create, alice, "dry", "d", DryRun=True).code == "DryRunOperation"
    assert [g["GroupName"] for g in _describe(alice)] == ["default"]
    spec = [{"ResourceType": "security-group", "Tags": [{"Key": "env", "Value": "prod"}]}]
    group_id = _create(alice, "tagged", TagSpecifications=spec)
    assert _group(alice, group_id)["Tags"] == [{"Key": "env", "Value": "prod"}]
    assert [g["GroupId"] for g in _describe(alice, Filters=[{"Name": "tag:env", "Values": ["prod"]}])] == [group_id]
    wrong = [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]
    assert _error(_create, alice, "t2", "d", TagSpecifications=wrong).code == "InvalidParameterValue"


# -- the default group ---------------------------------------------------------------------------

def test_default_group_is_made_on_first_need_once(alice):
    first = sg.ensure_default_group(alice.cloud, alice.account_id)
    assert sg.ensure_default_group(alice.cloud, alice.account_id) == first
    default = _describe(alice, GroupNames=["default"])[0]
    assert default["GroupId"] == first["group_id"]
    assert default["IpPermissions"] == [{"IpProtocol": "-1", "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
                                         "UserIdGroupPairs": [{"UserId": alice.account_id, "GroupId": first["group_id"],
                                                               "GroupName": "default"}]}]


def test_default_group_is_made_once_under_concurrency(alice):
    seen, errors = [], []

    def make():
        try:
            seen.append(sg.ensure_default_group(alice.cloud, alice.account_id)["group_id"])
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)
    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(seen)) == 1 and len(seen) == 8
    assert len(list(alice.cloud.store.db["security_groups"].rows_where("name = 'default'"))) == 1


def test_default_may_not_be_deleted(alice):
    e = _error(sg.delete_security_group, alice, {"GroupName": "default"})
    assert e.code == "CannotDelete"
    group_id = sg.ensure_default_group(alice.cloud, alice.account_id)["group_id"]
    assert _error(sg.delete_security_group, alice, {"GroupId": group_id}).code == "CannotDelete"


# -- describe ------------------------------------------------------------------------------------

def test_describe_by_name_and_id_and_missing_ones(alice):
    web, db = _create(alice, "web"), _create(alice, "db")
    assert [g["GroupId"] for g in _describe(alice, GroupNames=["web"])] == [web]
    assert {g["GroupId"] for g in _describe(alice, GroupIds=[web, db])} == {web, db}
    e = _error(sg.describe_security_groups, alice, {"GroupNames": ["nope"]})
    assert (e.code, e.message) == ("InvalidGroup.NotFound", "The security group 'nope' does not exist")
    assert _error(sg.describe_security_groups, alice, {"GroupIds": ["sg-00000000"]}).code == "InvalidGroup.NotFound"
    assert _error(sg.describe_security_groups, alice, {"GroupIds": ["web"]}).code == "InvalidGroupId.Malformed"


def test_another_accounts_group_is_answered_as_a_missing_one(alice, bob):
    theirs = _create(bob, "private")
    missing = "sg-0badc0de"
    for call, params in ((sg.describe_security_groups, lambda g: {"GroupIds": [g]}),
                         (sg.delete_security_group, lambda g: {"GroupId": g}),
                         (sg.authorize_security_group_ingress, lambda g: {"GroupId": g, "IpPermissions": [_ssh()]}),
                         (sg.revoke_security_group_egress, lambda g: {"GroupId": g, "IpPermissions": [_ssh()]})):
        a, b = _error(call, alice, params(theirs)), _error(call, alice, params(missing))
        assert (a.code, a.message.replace(theirs, "ID")) == (b.code, b.message.replace(missing, "ID"))
        assert a.code == "InvalidGroup.NotFound"
    assert _error(sg.describe_security_groups, alice, {"GroupNames": ["private"]}).code == "InvalidGroup.NotFound"
    assert theirs not in str(_describe(alice))


def test_cloud_admin_sees_every_account_with_verbose(cloud, alice, bob):
    admin = _ctx(cloud, "eucalyptus")
    admin.credentials.is_cloud_admin = True
    theirs = _create(bob, "bobs")
    assert theirs not in {g["GroupId"] for g in _describe(admin)}
    assert theirs in {g["GroupId"] for g in _describe(admin, GroupNames=["verbose"])}
    owned = _describe(admin, Filters=[{"Name": "owner-id", "Values": [bob.account_id]}])
    assert {g["GroupName"] for g in owned} == {"bobs", "default"}


def test_filters(alice, bob):
    web, db = _create(alice, "web", "web tier"), _create(alice, "db", "database")
    bobs = _create(bob, "bobs")
    sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [_ssh("192.0.2.0/24")]})
    sg.authorize_security_group_ingress(alice, {"GroupId": db, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web}]},
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
         "UserIdGroupPairs": [{"GroupId": bobs, "UserId": bob.account_id}]}]})
    sg.authorize_security_group_egress(alice, {"GroupId": db, "IpPermissions": [_ssh("203.0.113.0/24")]})

    def names(*filters):
        return sorted(g["GroupName"] for g in _describe(alice, Filters=[{"Name": n, "Values": v} for n, v in filters]))
    assert names(("group-name", ["w*"])) == ["web"]
    assert names(("group-id", [db])) == ["db"]
    assert names(("description", ["data*"])) == ["db"]
    assert names(("owner-id", [alice.account_id])) == ["db", "default", "web"]
    assert names(("ip-permission.cidr", ["192.0.2.0/24"])) == ["web"]
    assert names(("ip-permission.from-port", ["5432"])) == ["db"]
    assert names(("ip-permission.to-port", ["22"])) == ["web"]
    assert names(("ip-permission.protocol", ["6"])) == ["db", "web"]
    assert names(("ip-permission.protocol", ["udp"])) == ["db"]
    assert names(("ip-permission.group-id", [web])) == ["db"]
    assert names(("ip-permission.group-name", ["bobs"])) == ["db"]
    assert names(("ip-permission.user-id", [bob.account_id])) == ["db"]
    assert names(("egress.ip-permission.cidr", ["203.0.113.0/24"])) == ["db"]
    assert names(("egress.ip-permission.protocol", ["-1"])) == ["db", "default", "web"]
    assert names(("ip-permission.protocol", ["tcp"]), ("ip-permission.to-port", ["53"])) == ["db"]
    assert names(("vpc-id", ["*"])) == []
    e = _error(sg.describe_security_groups, alice, {"Filters": [{"Name": "color", "Values": ["red"]}]})
    assert e.code == "InvalidParameterValue"


def test_pages(alice):
    created = {_create(alice, f"g{i}") for i in range(7)}
    first = sg.describe_security_groups(alice, {"MaxResults": 5})
    assert len(first["SecurityGroups"]) == 5 and first["NextToken"]
    rest = sg.describe_security_groups(alice, {"MaxResults": 5, "NextToken": first["NextToken"]})
    assert "NextToken" not in rest
    seen = [g["GroupId"] for g in first["SecurityGroups"] + rest["SecurityGroups"]]
    assert len(seen) == 8 and set(seen) >= created
    assert _error(sg.describe_security_groups, alice, {"MaxResults": 4}).code == "InvalidParameterValue"
    assert _error(sg.describe_security_groups, alice, {"NextToken": "garbage!"}).code == "InvalidPaginationToken"


def test_describe_output_reads_back_through_botocore(alice, bob):
    web = _create(alice, "web")
    bobs = _create(bob, "bobs")
    sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [
        _ssh(Description="admins"),
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
         "UserIdGroupPairs": [{"GroupName": "bobs", "UserId": bob.account_id, "Description": "pings"}]}]})
    out = sg.describe_security_groups(alice, {"GroupIds": [web]})
    protocol = Ec2Protocol()
    body = protocol.serialize("DescribeSecurityGroups", out, "rid")
    model = protocol.service_model.operation_model("DescribeSecurityGroups")
    parsed = botocore.parsers.EC2QueryParser().parse({"body": body, "headers": {}, "status_code": 200},
                                                     model.output_shape)
    group = parsed["SecurityGroups"][0]
    assert group["GroupId"] == web
    assert group["IpPermissions"][0]["IpRanges"] == [{"CidrIp": "10.0.0.0/8", "Description": "admins"}]
    assert group["IpPermissions"][1] == {
        "IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
        "UserIdGroupPairs": [{"UserId": bob.account_id, "GroupId": bobs, "GroupName": "bobs",
                              "Description": "pings"}]}


# -- authorize and revoke ------------------------------------------------------------------------

def test_flat_parameters(alice):
    web = _create(alice, "web")
    sg.authorize_security_group_ingress(alice, {"GroupName": "web", "IpProtocol": "tcp", "FromPort": 80,
                                                "ToPort": 80, "CidrIp": "0.0.0.0/0"})
    sg.authorize_security_group_ingress(alice, {"GroupName": "web", "SourceSecurityGroupName": "default"})
    perms = _group(alice, web)["IpPermissions"]
    assert [(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")) for p in perms] == [
        ("tcp", 80, 80), ("tcp", 0, 65535), ("udp", 0, 65535), ("icmp", -1, -1)]
    default_id = sg.ensure_default_group(alice.cloud, alice.account_id)["group_id"]
    assert perms[3]["UserIdGroupPairs"] == [{"UserId": alice.account_id, "GroupId": default_id,
                                             "GroupName": "default"}]
    sg.revoke_security_group_ingress(alice, {"GroupName": "web", "SourceSecurityGroupName": "default"})
    sg.revoke_security_group_ingress(alice, {"GroupId": web, "IpProtocol": "6", "FromPort": 80, "ToPort": 80,
                                             "CidrIp": "0.0.0.0/0"})
    assert _group(alice, web)["IpPermissions"] == []


@pytest.mark.parametrize("params,code", [
    ({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}, "MissingParameter"),
    ({"CidrIp": "10.0.0.0/8"}, "MissingParameter"),
    ({}, "MissingParameter"),
    ({"SourceSecurityGroupOwnerId": "123456789012"}, "MissingParameter"),
    ({"SourceSecurityGroupName": "default", "CidrIp": "10.0.0.0/8"}, "InvalidParameterCombination"),
    ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "CidrIp": "10.0.0.0/8", "IpPermissions": [_ssh()]},
     "InvalidParameterCombination"),
    ({"IpProtocol": "gre", "CidrIp": "10.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": 22, "CidrIp": "10.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": 80, "ToPort": 22, "CidrIp": "10.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "udp", "FromPort": 0, "ToPort": 65536, "CidrIp": "10.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": -1, "ToPort": 22, "CidrIp": "10.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "icmp", "FromPort": 256, "ToPort": -1, "CidrIp": "10.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "icmp", "FromPort": -1, "ToPort": 3, "CidrIp": "10.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "CidrIp": "10.0.0.0/33"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "CidrIp": "10.0.0.0"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "CidrIp": "fe80::/64"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "CidrIp": "300.0.0.0/8"}, "InvalidParameterValue"),
    ({"IpPermissions": [{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2}]}, "MissingParameter"),
    ({"IpPermissions": [_ssh(Description="<script>")]}, "InvalidParameterValue"),
    ({"IpPermissions": [{**_ssh(), "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]}, "InvalidParameterValue"),
    ({"IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{}]}]}, "MissingParameter"),
    ({"IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupName": "nope"}]}]}, "InvalidGroup.NotFound"),
    ({"IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "nope"}]}]},
     "InvalidGroupId.Malformed"),
])
def test_authorize_refuses_what_aws_refuses(alice, params, code):
    web = _create(alice, "web")
    assert _error(sg.authorize_security_group_ingress, alice, {"GroupId": web, **params}).code == code
    assert _group(alice, web)["IpPermissions"] == []


def test_ports_protocols_and_cidrs_are_normalized(alice):
    web = _create(alice, "web")
    out = sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "17", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "10.1.2.3/8"}]},
        {"IpProtocol": "1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "-1", "FromPort": 5, "ToPort": 9, "IpRanges": [{"CidrIp": "192.0.2.1/32"}]}]})
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIpv4"]) for r in out["SecurityGroupRules"]] == [
        ("udp", 53, 53, "10.0.0.0/8"), ("icmp", -1, -1, "0.0.0.0/0"), ("-1", -1, -1, "192.0.2.1/32")]
    assert all(r["SecurityGroupRuleId"].startswith("sgr-") and not r["IsEgress"] for r in out["SecurityGroupRules"])
    perms = _group(alice, web)["IpPermissions"]
    assert "FromPort" not in perms[2] and perms[2]["IpProtocol"] == "-1"


def test_duplicates_are_refused_and_nothing_is_added(alice):
    web = _create(alice, "web")
    sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [_ssh()]})
    e = _error(sg.authorize_security_group_ingress, alice, {"GroupId": web, "IpPermissions": [
        _ssh("192.0.2.0/24"), _ssh(Description="same rule, other words")]})
    assert e.code == "InvalidPermission.Duplicate"
    assert e.message == 'the specified rule "peer: 10.0.0.0/8, TCP, from port: 22, to port: 22, ALLOW" already exists'
    assert [r["CidrIp"] for p in _group(alice, web)["IpPermissions"] for r in p["IpRanges"]] == ["10.0.0.0/8"]
    # the same rule in a request twice
    e = _error(sg.authorize_security_group_ingress, alice, {"GroupId": web, "IpPermissions": [
        _ssh("172.16.0.0/12"), _ssh("172.16.0.0/12")]})
    assert e.code == "InvalidPermission.Duplicate"
    # the same peer outbound is another rule
    sg.authorize_security_group_egress(alice, {"GroupId": web, "IpPermissions": [_ssh()]})


def test_revoke_missing_rule_is_not_found_and_removes_nothing(alice):
    web = _create(alice, "web")
    sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [_ssh()]})
    e = _error(sg.revoke_security_group_ingress, alice, {"GroupId": web, "IpPermissions": [_ssh(), _ssh("1.2.3.4/32")]})
    assert (e.code, e.message) == ("InvalidPermission.NotFound",
                                   "The specified rule does not exist in this security group.")
    assert len(_group(alice, web)["IpPermissions"]) == 1
    assert _error(sg.revoke_security_group_egress, alice, {"GroupId": web, "IpPermissions": [_ssh()]}).code == \
        "InvalidPermission.NotFound"
    sg.revoke_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [_ssh(Description="ignored")]})
    assert _group(alice, web)["IpPermissions"] == []


def test_revoke_by_rule_id(alice):
    web = _create(alice, "web")
    rule = sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [_ssh()]})[
        "SecurityGroupRules"][0]["SecurityGroupRuleId"]
    e = _error(sg.revoke_security_group_egress, alice, {"GroupId": web, "SecurityGroupRuleIds": [rule]})
    assert e.code == "InvalidSecurityGroupRuleId.NotFound"
    assert _error(sg.revoke_security_group_ingress, alice, {"GroupId": web, "SecurityGroupRuleIds": ["sgr-1"]}).code \
        == "InvalidSecurityGroupRuleId.Malformed"
    sg.revoke_security_group_ingress(alice, {"GroupId": web, "SecurityGroupRuleIds": [rule]})
    assert _group(alice, web)["IpPermissions"] == []


def test_egress_rules(alice):
    web = _create(alice, "web")
    everything = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    sg.revoke_security_group_egress(alice, {"GroupId": web, "IpPermissions": [everything]})
    assert _group(alice, web)["IpPermissionsEgress"] == []
    out = sg.authorize_security_group_egress(alice, {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupName": "default"}]}]})
    assert out["SecurityGroupRules"][0]["IsEgress"] is True
    assert _group(alice, web)["IpPermissionsEgress"][0]["UserIdGroupPairs"][0]["GroupName"] == "default"


def test_source_groups_of_another_account(alice, bob):
    web = _create(alice, "web")
    bobs = _create(bob, "bobs")
    by_name_without_owner = {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "UserIdGroupPairs": [{"GroupName": "bobs"}]}]}
    assert _error(sg.authorize_security_group_ingress, alice, by_name_without_owner).code == "InvalidGroup.NotFound"
    by_id_without_owner = {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "UserIdGroupPairs": [{"GroupId": bobs}]}]}
    assert _error(sg.authorize_security_group_ingress, alice, by_id_without_owner).code == "InvalidGroup.NotFound"
    sg.authorize_security_group_ingress(alice, {"GroupName": "web", "SourceSecurityGroupName": "bobs",
                                                "SourceSecurityGroupOwnerId": bob.account_id, "IpProtocol": "tcp",
                                                "FromPort": 1, "ToPort": 2})
    sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "udp", "FromPort": 1, "ToPort": 2, "UserIdGroupPairs": [{"GroupId": bobs,
                                                                                "UserId": bob.account_id}]},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
         "UserIdGroupPairs": [{"GroupName": "default", "UserId": bob.account_id}]}]})
    pairs = [p["UserIdGroupPairs"][0] for p in _group(alice, web)["IpPermissions"]]
    bob_default = sg.ensure_default_group(bob.cloud, bob.account_id)["group_id"]
    assert [(p["UserId"], p["GroupId"], p["GroupName"]) for p in pairs] == [
        (bob.account_id, bobs, "bobs"), (bob.account_id, bobs, "bobs"), (bob.account_id, bob_default, "default")]
    # referenced by alice's group: bob cannot delete it
    assert _error(sg.delete_security_group, bob, {"GroupId": bobs}).code == "DependencyViolation"


def test_dry_run_changes_nothing(alice):
    web = _create(alice, "web")
    for call, params in ((sg.authorize_security_group_ingress, {"GroupId": web, "IpPermissions": [_ssh()]}),
                         (sg.delete_security_group, {"GroupId": web}),
                         (sg.describe_security_groups, {})):
        assert _error(call, alice, {**params, "DryRun": True}).code == "DryRunOperation"
    assert _group(alice, web)["IpPermissions"] == []


# -- delete --------------------------------------------------------------------------------------

def test_delete_by_name_or_id_with_its_rules_and_tags(alice):
    web, db = _create(alice, "web"), _create(alice, "db")
    sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": web}]}]})  # itself: no obstacle
    tags.add_tags(alice, [web], [{"Key": "k", "Value": "v"}], "security-group")
    assert sg.delete_security_group(alice, {"GroupId": web}) == {"Return": True, "GroupId": web}
    assert sg.delete_security_group(alice, {"GroupName": "db"})["GroupId"] == db
    assert not list(alice.cloud.store.db["security_group_rules"].rows_where("group_id IN (?, ?)", [web, db]))
    assert not list(alice.cloud.store.db["tags"].rows_where("resource_id = ?", [web]))
    assert _error(sg.delete_security_group, alice, {"GroupId": web}).code == "InvalidGroup.NotFound"
    assert _error(sg.delete_security_group, alice, {}).code == "MissingParameter"


def test_delete_refused_while_another_group_refers_to_it(alice):
    web, db = _create(alice, "web"), _create(alice, "db")
    sg.authorize_security_group_ingress(alice, {"GroupId": db, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web}]}]})
    e = _error(sg.delete_security_group, alice, {"GroupId": web})
    assert (e.code, e.message) == ("DependencyViolation", f"resource {web} has a dependent object")
    sg.delete_security_group(alice, {"GroupId": db})
    sg.delete_security_group(alice, {"GroupId": web})


def _instance(ctx, groups: str, state: str = "running") -> str:
    instance_id = ids.new_id("i")
    ctx.cloud.store.db["instances"].insert({
        "instance_id": instance_id, "reservation_id": "r-1", "account_id": ctx.account_id, "user_id": "u",
        "image_id": "emi-1", "kernel_id": "", "ramdisk_id": "", "instance_type": "m1.small", "key_name": "",
        "zone": "z", "state": state, "reason": "", "launch_time": ids.now(), "launch_index": 0, "user_data": "",
        "mac": "", "private_ip": "", "public_ip": "", "node": "", "groups": groups, "updated": ids.now()})
    return instance_id


def test_delete_refused_while_instances_use_it(alice, bob):
    _create(alice, "web")
    db = _create(alice, "db")
    _instance(alice, "default,web")
    _instance(alice, db, state="terminated")
    _instance(bob, "web")  # bob's instance in bob's (unrelated) web group
    e = _error(sg.delete_security_group, alice, {"GroupName": "web"})
    assert (e.code, e.message) == ("InvalidGroup.InUse", "There are active instances using security group 'web'")
    sg.delete_security_group(alice, {"GroupId": db})
    running = _instance(alice, f"{_create(alice, 'api')}")
    assert _error(sg.delete_security_group, alice, {"GroupName": "api"}).code == "InvalidGroup.InUse"
    alice.cloud.store.db["instances"].update(running, {"state": "terminated"})
    sg.delete_security_group(alice, {"GroupName": "api"})


# -- for RunInstances and the cluster controllers ------------------------------------------------

def test_resolve_groups(alice, bob):
    web, db = _create(alice, "web"), _create(alice, "db")
    bobs = _create(bob, "bobs")
    default = sg.resolve_groups(alice, None, None)
    assert [g["name"] for g in default] == ["default"] and default[0]["account_id"] == alice.account_id
    assert [g["group_id"] for g in sg.resolve_groups(alice, ["web", "default"], [db, web])] == \
        [web, default[0]["group_id"], db]
    assert _error(sg.resolve_groups, alice, ["nope"], None).code == "InvalidGroup.NotFound"
    assert _error(sg.resolve_groups, alice, None, [bobs]).code == "InvalidGroup.NotFound"
    assert _error(sg.resolve_groups, alice, ["bobs"], []).code == "InvalidGroup.NotFound"


def test_rules_of(alice, bob):
    web = _create(alice, "web")
    _create(bob, "bobs")
    sg.authorize_security_group_ingress(alice, {"GroupId": web, "IpPermissions": [
        _ssh(), {"IpProtocol": "icmp", "FromPort": 8, "ToPort": 0,
                 "UserIdGroupPairs": [{"GroupName": "bobs", "UserId": bob.account_id}]}]})
    default = sg.ensure_default_group(alice.cloud, alice.account_id)
    rules = sg.rules_of(alice.cloud, [web, default["group_id"]])
    assert {(r["destName"], r["protocol"], r["portRangeMin"], r["portRangeMax"], tuple(r["sourceNets"]),
             tuple(r["sourceNames"]), tuple(r["userNames"])) for r in rules} == {
        ("web", "tcp", 22, 22, ("10.0.0.0/8",), (), ()),
        ("web", "icmp", 8, 0, (), ("bobs",), (bob.account_id,)),
        ("default", "all", -1, -1, (), ("default",), (alice.account_id,))}
    assert all(r["type"] == "firewall-open" and r["destUserName"] == alice.account_id for r in rules)
    assert sg.rules_of(alice.cloud, []) == [] and sg.rules_of(alice.cloud, ["sg-00000000"]) == []
