"""clc.networks: the CLC pushes every change of a security group to the clusters (a real
ClusterController reached by zeep in-process), a cluster that is down never fails the call,
and the poller pushes it every group when it is back, missed a push, or is due."""

import pytest

from cc.cluster import ClusterController
from cc.service import application as cc_application
from clc.cloud import Cloud
from clc.poller import ClusterPoller
from eucacore import ids
from eucacore.config import default_config
from tests.unit.ec2wire import ALICE, BOB, Ec2
from tests.unit.test_cc_cluster import soap_proxy

def default(account):
    """What the cluster holds for an account's default group: everything from its own members."""
    return [("all", -1, -1, [], [(account, "default")])]


SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}


@pytest.fixture
def cloud(tmp_path):
    """A CLC whose one cluster, cc-a, is a real ClusterController (no nodes); ``cloud.link.down``
    takes it off the network, ``cloud.pushes`` counts the ConfigureNetwork calls that reached it."""
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path / "clc")))
    with cloud.store.atomic() as db:
        db["components"].insert({"kind": "cluster", "name": "cc-a", "partition": "zone-a", "host": "127.0.0.1",
                                 "port": 1, "state": "ENABLED", "last_seen": ids.now(), "registered": ids.now()})
    cloud.cluster = ClusterController(default_config(EUCALYPTUS=str(tmp_path / "cc"), NODES=""))
    proxy, cloud.link = soap_proxy("EucalyptusCC", cc_application(cloud.cluster), "/axis2/services/EucalyptusCC")
    cloud.pushes = 0
    real = cloud.cluster.configure_network

    def counted(*args, **kwargs):
        cloud.pushes += 1
        return real(*args, **kwargs)
    cloud.cluster.configure_network = counted
    cloud.cc = lambda cluster: proxy
    yield cloud
    cloud.store.close()


def held(cloud) -> dict:
    """What the cluster holds: (account, group) -> [(protocol, from, to, nets, source groups)]."""
    return {(g["userName"], g["netName"]): [(r["protocol"], r["portRangeMin"], r["portRangeMax"], r["sourceNets"],
                                             list(zip(r["userNames"], r["sourceNames"]))) for r in g["rules"]]
            for g in cloud.cluster.network_groups()}


def component(cloud) -> dict:
    return cloud.store.db["components"].get(("cluster", "cc-a"))


def poll(cloud):
    ClusterPoller(cloud).poll_once()


def test_every_change_of_a_group_is_pushed(cloud):
    alice = Ec2(cloud, ALICE)
    web = alice("CreateSecurityGroup", GroupName="web", Description="web")["GroupId"]
    assert held(cloud) == {(ALICE, "web"): []}
    alice("AuthorizeSecurityGroupIngress", GroupId=web, IpPermissions=[SSH])
    alice("AuthorizeSecurityGroupIngress", GroupName="web", SourceSecurityGroupName="default")
    assert held(cloud)[(ALICE, "web")] == [
        ("tcp", 22, 22, ["10.0.0.0/8"], []), ("tcp", 0, 65535, [], [(ALICE, "default")]),
        ("udp", 0, 65535, [], [(ALICE, "default")]), ("icmp", -1, -1, [], [(ALICE, "default")])]
    pushes = cloud.pushes
    assert alice.error("AuthorizeSecurityGroupIngress", GroupId=web, IpPermissions=[SSH], DryRun=True) == \
        "DryRunOperation"
    alice("AuthorizeSecurityGroupEgress", GroupId=web, IpPermissions=[SSH])  # egress is not in the rules
    alice("RevokeSecurityGroupIngress", GroupName="web", SourceSecurityGroupName="default")
    assert held(cloud)[(ALICE, "web")] == [("tcp", 22, 22, ["10.0.0.0/8"], [])]
    assert cloud.pushes == pushes + 2
    alice("DeleteSecurityGroup", GroupId=web)
    assert (ALICE, "web") not in held(cloud)
    assert component(cloud)["network_resync"] == 0


def test_a_cluster_that_is_down_misses_pushes_then_gets_everything_again(cloud):
    alice, bob = Ec2(cloud, ALICE), Ec2(cloud, BOB)
    gone = alice("CreateSecurityGroup", GroupName="gone", Description="to be deleted")["GroupId"]
    web = alice("CreateSecurityGroup", GroupName="web", Description="web")["GroupId"]
    cloud.link.down = True
    alice("AuthorizeSecurityGroupIngress", GroupId=web, IpPermissions=[SSH])  # answered all the same
    assert component(cloud)["network_resync"] == 1
    cloud.link.down = False
    alice("DeleteSecurityGroup", GroupId=gone)  # not pushed: the cluster awaits its resync
    bob("CreateSecurityGroup", GroupName="db", Description="db")
    assert held(cloud) == {(ALICE, "gone"): [], (ALICE, "web"): []}
    poll(cloud)
    assert held(cloud) == {(ALICE, "default"): default(ALICE), (ALICE, "web"): [("tcp", 22, 22, ["10.0.0.0/8"], [])],
                           (BOB, "default"): default(BOB), (BOB, "db"): []}
    assert component(cloud)["network_resync"] == 0 and component(cloud)["network_synced"] > 0
    alice("RevokeSecurityGroupIngress", GroupId=web, IpPermissions=[SSH])  # single pushes again
    assert held(cloud)[(ALICE, "web")] == []


def test_a_cluster_back_from_notready_gets_every_group(cloud):
    alice = Ec2(cloud, ALICE)
    web = alice("CreateSecurityGroup", GroupName="web", Description="web")["GroupId"]
    poll(cloud)
    cloud.link.down = True
    poll(cloud)
    assert component(cloud)["state"] == "NOTREADY"
    with cloud.cluster.store.atomic() as db:  # the cluster lost its state meanwhile
        db.execute("DELETE FROM network_groups")
    alice("AuthorizeSecurityGroupIngress", GroupId=web, IpPermissions=[SSH])
    cloud.link.down = False
    assert held(cloud) == {}
    poll(cloud)
    assert component(cloud)["state"] == "ENABLED"
    assert held(cloud)[(ALICE, "web")] == [("tcp", 22, 22, ["10.0.0.0/8"], [])]


def test_a_periodic_resync_restores_what_the_cluster_lost_and_forgets_unknown_accounts(cloud):
    alice = Ec2(cloud, ALICE)
    alice("CreateSecurityGroup", GroupName="web", Description="web")
    poll(cloud)
    cloud.cluster.configure_network("999999999999", [], ["stray"])
    with cloud.cluster.store.atomic() as db:
        db.execute("DELETE FROM network_groups WHERE account_id = ?", [ALICE])
    poll(cloud)  # synced a moment ago: not due yet
    assert held(cloud) == {("999999999999", "stray"): []}
    with cloud.store.atomic() as db:
        db["components"].update(("cluster", "cc-a"), {"network_synced": ids.now() - 61})
    poll(cloud)
    assert held(cloud) == {(ALICE, "default"): default(ALICE), (ALICE, "web"): []}
    cloud.properties.modify("cloud.network.resync_interval", "0")  # every poll
    cloud.cluster.configure_network("999999999999", [], ["stray"])
    poll(cloud)
    assert held(cloud) == {(ALICE, "default"): default(ALICE), (ALICE, "web"): []}
