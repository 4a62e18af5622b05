"""Security groups through boto3 against the live cloud: two accounts, each with its groups, and
the rules the cluster controller holds for them (read back over its SOAP face)."""

import botocore.exceptions
import pytest

from eucacore import pki, soap

pytestmark = pytest.mark.integration


def _error(call, **kwargs):
    """(code, message) of a call expected to fail."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def tenants(cloud):
    """Two accounts' (tenant, ec2 client)."""
    alpha, beta = cloud.new_account("sg-alpha"), cloud.new_account("sg-beta")
    return (alpha, alpha.client("ec2")), (beta, beta.client("ec2"))


def _group(ec2, group_id):
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def _ssh(cidr="10.0.0.0/8"):
    return {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}


def test_create_and_describe_with_filters(tenants):
    (alpha, ec2), _ = tenants
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    assert default["OwnerId"] == alpha.account_id and default["GroupId"].startswith("sg-")
    web = ec2.create_security_group(GroupName="it-web", Description="web tier",
                                    TagSpecifications=[{"ResourceType": "security-group",
                                                        "Tags": [{"Key": "tier", "Value": "front"}]}])["GroupId"]
    group = _group(ec2, web)
    assert (group["GroupName"], group["Description"], group["OwnerId"]) == ("it-web", "web tier", alpha.account_id)
    assert group["IpPermissions"] == []
    assert group["IpPermissionsEgress"][0]["IpProtocol"] == "-1"
    assert group["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    assert group["Tags"] == [{"Key": "tier", "Value": "front"}]
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[_ssh("198.51.100.0/24")])

    def named(*filters):
        groups = ec2.describe_security_groups(Filters=[{"Name": n, "Values": v} for n, v in filters])
        return sorted(g["GroupName"] for g in groups["SecurityGroups"])
    assert named(("group-name", ["it-*"])) == ["it-web"]
    assert named(("description", ["web tier"])) == ["it-web"]
    assert named(("ip-permission.cidr", ["198.51.100.0/24"]), ("ip-permission.from-port", ["22"])) == ["it-web"]
    assert named(("ip-permission.protocol", ["tcp"]), ("ip-permission.to-port", ["23"])) == []
    assert named(("egress.ip-permission.cidr", ["0.0.0.0/0"]), ("group-id", [web])) == ["it-web"]
    assert named(("tag:tier", ["front"])) == ["it-web"]
    assert _error(ec2.describe_security_groups, Filters=[{"Name": "nope", "Values": ["x"]}])[0] == \
        "InvalidParameterValue"
    assert _error(ec2.create_security_group, GroupName="it-web", Description="again")[0] == "InvalidGroup.Duplicate"
    assert _error(ec2.create_security_group, GroupName="default", Description="mine")[0] == "InvalidGroup.Reserved"
    assert _error(ec2.create_security_group, GroupName="it-bad", Description="caf\u00e9")[0] == \
        "InvalidParameterValue"


def test_pages(tenants):
    _, (_, ec2) = tenants
    for i in range(6):
        ec2.create_security_group(GroupName=f"it-page-{i}", Description="paged")
    pages = list(ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": "description", "Values": ["paged"]}], PaginationConfig={"PageSize": 5}))
    assert [len(p["SecurityGroups"]) for p in pages] == [5, 1]
    assert sorted(g["GroupName"] for p in pages for g in p["SecurityGroups"]) == [f"it-page-{i}" for i in range(6)]


def test_authorize_and_revoke_flat_and_ip_permissions(tenants):
    (alpha, ec2), (beta, beta_ec2) = tenants
    app = ec2.create_security_group(GroupName="it-app", Description="app tier")["GroupId"]
    partner = beta_ec2.create_security_group(GroupName="it-partner", Description="of beta")["GroupId"]
    ec2.authorize_security_group_ingress(GroupName="it-app", IpProtocol="tcp", FromPort=80, ToPort=80,
                                         CidrIp="0.0.0.0/0")
    ec2.authorize_security_group_ingress(GroupName="it-app", SourceSecurityGroupName="default")
    ec2.authorize_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8100,
         "IpRanges": [{"CidrIp": "192.0.2.0/24", "Description": "office"}],
         "UserIdGroupPairs": [{"GroupId": partner, "UserId": beta.account_id, "Description": "partner"}]},
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
         "UserIdGroupPairs": [{"GroupName": "it-partner", "UserId": beta.account_id}]}])
    perms = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")): p for p in _group(ec2, app)["IpPermissions"]}
    assert set(perms) == {("tcp", 80, 80), ("tcp", 0, 65535), ("udp", 0, 65535), ("icmp", -1, -1),
                          ("tcp", 8000, 8100), ("icmp", 8, -1)}
    assert perms[("tcp", 80, 80)]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    assert perms[("tcp", 8000, 8100)]["IpRanges"] == [{"CidrIp": "192.0.2.0/24", "Description": "office"}]
    assert perms[("tcp", 8000, 8100)]["UserIdGroupPairs"] == [
        {"UserId": beta.account_id, "GroupId": partner, "GroupName": "it-partner", "Description": "partner"}]
    assert perms[("udp", 0, 65535)]["UserIdGroupPairs"][0]["GroupName"] == "default"

    # another account's group needs its owner
    assert _error(ec2.authorize_security_group_ingress, GroupId=app, IpPermissions=[
        {"IpProtocol": "udp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupName": "it-partner"}]}])[0] == \
        "InvalidGroup.NotFound"
    # duplicates, bad values
    code, message = _error(ec2.authorize_security_group_ingress, GroupId=app, IpProtocol="tcp", FromPort=80,
                           ToPort=80, CidrIp="0.0.0.0/0")
    assert code == "InvalidPermission.Duplicate" and "peer: 0.0.0.0/0, TCP, from port: 80, to port: 80" in message
    assert _error(ec2.authorize_security_group_ingress, GroupId=app, IpProtocol="tcp", FromPort=90, ToPort=80,
                  CidrIp="0.0.0.0/0")[0] == "InvalidParameterValue"
    assert _error(ec2.authorize_security_group_ingress, GroupId=app, IpProtocol="tcp", FromPort=1, ToPort=2,
                  CidrIp="10.0.0.0/40")[0] == "InvalidParameterValue"

    # revoke, and revoke what is not there
    ec2.revoke_security_group_ingress(GroupName="it-app", SourceSecurityGroupName="default")
    ec2.revoke_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
         "UserIdGroupPairs": [{"GroupId": partner, "UserId": beta.account_id}]}])
    assert _error(ec2.revoke_security_group_ingress, GroupId=app, IpPermissions=[_ssh()])[0] == \
        "InvalidPermission.NotFound"
    left = {(p["IpProtocol"], p.get("FromPort")) for p in _group(ec2, app)["IpPermissions"]}
    assert left == {("tcp", 80), ("tcp", 8000)}

    # egress
    ec2.revoke_security_group_egress(GroupId=app, IpPermissions=[{"IpProtocol": "-1",
                                                                  "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    out = ec2.authorize_security_group_egress(GroupId=app, IpPermissions=[_ssh("203.0.113.0/24")])
    assert out["SecurityGroupRules"][0]["IsEgress"] is True
    assert [p["IpRanges"] for p in _group(ec2, app)["IpPermissionsEgress"]] == [[{"CidrIp": "203.0.113.0/24"}]]
    assert _error(ec2.revoke_security_group_egress, GroupId=app, IpPermissions=[_ssh()])[0] == \
        "InvalidPermission.NotFound"

    # beta's group is referenced by alpha's: beta cannot delete it until alpha's rule goes
    assert _error(beta_ec2.delete_security_group, GroupId=partner)[0] == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8100,
         "UserIdGroupPairs": [{"GroupId": partner, "UserId": beta.account_id}]}])
    beta_ec2.delete_security_group(GroupId=partner)


def test_delete(tenants):
    (_, ec2), _ = tenants
    assert _error(ec2.delete_security_group, GroupName="default")[0] == "CannotDelete"
    target = ec2.create_security_group(GroupName="it-target", Description="referenced")["GroupId"]
    user = ec2.create_security_group(GroupName="it-user", Description="refers")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=user, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": target}]}])
    code, message = _error(ec2.delete_security_group, GroupId=target)
    assert (code, message) == ("DependencyViolation", f"resource {target} has a dependent object")
    assert ec2.delete_security_group(GroupName="it-user")["GroupId"] == user
    ec2.delete_security_group(GroupId=target)
    assert _error(ec2.describe_security_groups, GroupIds=[target])[0] == "InvalidGroup.NotFound"


def test_another_accounts_group_is_a_missing_group(tenants):
    (_, ec2), (_, beta_ec2) = tenants
    theirs = beta_ec2.create_security_group(GroupName="it-secret", Description="beta only")["GroupId"]
    missing = "sg-0badf00d"
    calls = [
        (ec2.describe_security_groups, lambda g: {"GroupIds": [g]}),
        (ec2.delete_security_group, lambda g: {"GroupId": g}),
        (ec2.authorize_security_group_ingress, lambda g: {"GroupId": g, "IpPermissions": [_ssh()]}),
        (ec2.revoke_security_group_ingress, lambda g: {"GroupId": g, "IpPermissions": [_ssh()]}),
        (ec2.authorize_security_group_egress, lambda g: {"GroupId": g, "IpPermissions": [_ssh()]}),
    ]
    for call, params in calls:
        code, message = _error(call, **params(theirs))
        assert code == "InvalidGroup.NotFound"
        assert (code, message.replace(theirs, "ID")) == \
            tuple(x.replace(missing, "ID") for x in _error(call, **params(missing)))
    listed = str(ec2.describe_security_groups())
    assert theirs not in listed and "it-secret" not in listed
    assert _error(ec2.describe_security_groups, GroupNames=["it-secret"])[0] == "InvalidGroup.NotFound"
    # beta's group is still intact
    assert _group(beta_ec2, theirs)["IpPermissions"] == []


def _cc_groups(cloud, account_id):
    """The security groups the live CC holds for the account, read over SOAP with the CLC's certificate."""
    cc = soap.client("EucalyptusCC", "127.0.0.1", cloud.ports["CC_PORT"], pki.component_keys(cloud.keys_dir(), "clc"))
    return {g.netName: [(r.protocol, r.portRangeMin, r.portRangeMax, list(r.sourceNets or []),
                         list(zip(r.userNames or [], r.sourceNames or []))) for r in g.rules or []]
            for g in cc.DescribeNetworks(accountIds=[account_id]).groups or []}


def test_the_cluster_holds_each_groups_current_rules(cloud, tenants):
    _, (beta, ec2) = tenants
    group_id = ec2.create_security_group(GroupName="it-rules", Description="pushed")["GroupId"]
    assert _cc_groups(cloud, beta.account_id)["it-rules"] == []
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        _ssh("192.0.2.0/24"), {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
                               "UserIdGroupPairs": [{"GroupName": "default"}]}])
    assert _cc_groups(cloud, beta.account_id)["it-rules"] == [
        ("tcp", 22, 22, ["192.0.2.0/24"], []), ("udp", 53, 53, [], [(beta.account_id, "default")])]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[_ssh("192.0.2.0/24")])
    assert _cc_groups(cloud, beta.account_id)["it-rules"] == [("udp", 53, 53, [], [(beta.account_id, "default")])]
    ec2.delete_security_group(GroupId=group_id)
    assert "it-rules" not in _cc_groups(cloud, beta.account_id)
