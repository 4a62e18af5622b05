"""clc.ec2.tags in-process: CreateTags/DeleteTags/DescribeTags over a real store, the helpers
other modules use, tag filters of apply_filters, and tags in DescribeImages/DescribeInstances."""

import pytest

from clc.ec2 import HANDLERS, images, instances, tags
from clc.ec2.common import apply_filters
from eucacore import ids
from eucacore.awsapi.errors import AWSError
from tests.unit.ec2wire import ALICE, BOB





def seed(cloud, account_id, suffix):
    """One resource of every taggable kind for ``account_id``; their ids by resource type."""
    now = ids.now()
    made = {"instance": f"i-{suffix}", "image": f"emi-{suffix}", "volume": f"vol-{suffix}",
            "snapshot": f"snap-{suffix}", "security-group": f"sg-{suffix}", "key-pair": f"key-{suffix}",
            "elastic-ip": f"eipalloc-{suffix}"}
    with cloud.store.atomic() as db:
        db["instances"].insert({"instance_id": made["instance"], "reservation_id": f"r-{suffix}",
                                "account_id": account_id, "image_id": made["image"], "kernel_id": "",
                                "ramdisk_id": "", "instance_type": "m1.small", "key_name": "", "zone": "zone1",
                                "state": "running", "reason": "", "launch_time": now, "launch_index": 0,
                                "user_data": "", "mac": "", "private_ip": "", "public_ip": "", "node": "",
                                "groups": "default", "updated": now})
        db["images"].insert({"image_id": made["image"], "account_id": account_id, "location": "b/k",
                             "name": f"image-{suffix}", "description": "", "architecture": "x86_64",
                             "image_type": "machine", "state": "available", "kernel_id": "", "ramdisk_id": "",
                             "is_public": 1, "size": 1, "created": now})
        db["volumes"].insert({"volume_id": made["volume"], "account_id": account_id, "size": 1,
                              "state": "available", "created": now})
        db["snapshots"].insert({"snapshot_id": made["snapshot"], "account_id": account_id,
                                "state": "completed", "created": now})
        db["security_groups"].insert({"group_id": made["security-group"], "account_id": account_id,
                                      "name": f"sg-{suffix}", "description": "", "created": now})
        db["keypairs"].insert({"account_id": account_id, "name": f"key-{suffix}", "fingerprint": "",
                               "public_key": "", "key_pair_id": made["key-pair"], "created": now})
        db["addresses"].insert({"public_ip": f"10.9.{len(suffix)}.{int(suffix[-1])}",
                                "allocation_id": made["elastic-ip"], "account_id": account_id})
    return made


@pytest.fixture
def mine(cloud):
    return seed(cloud, ALICE, "a0000001")


@pytest.fixture
def theirs(cloud):
    return seed(cloud, BOB, "b0000002")


def code_of(call, *args):
    with pytest.raises(AWSError) as e:
        call(*args)
    return e.value.code


def all_tags(ctx, **params):
    return tags.describe_tags(ctx, params)["Tags"]


# -- apply_filters and its tag getter --------------------------------------------------------------

def test_apply_filters_tag_getter_answers_any_tag_key_filter():
    items = [{"id": "a", "tags": {"Name": "web-1"}}, {"id": "b", "tags": {"Name": "db"}}, {"id": "c", "tags": {}}]
    getters = {"tag:": lambda item, key: [item["tags"][key]] if key in item["tags"] else []}
    assert [i["id"] for i in apply_filters(items, [{"Name": "tag:Name", "Values": ["web*"]}], getters)] == ["a"]
    assert [i["id"] for i in apply_filters(items, [{"Name": "tag:Name", "Values": ["*"]}], getters)] == ["a", "b"]
    assert apply_filters(items, [{"Name": "tag:Other", "Values": ["*"]}], getters) == []


@pytest.mark.parametrize("name", ["tag:", "tag", "tag-key", "nonsense"])
def test_apply_filters_refuses_filters_it_has_no_getter_for(name):
    getters = {"tag:": lambda item, key: []}
    with pytest.raises(AWSError) as e:
        apply_filters([{}], [{"Name": name, "Values": ["x"]}], getters)
    assert e.value.code == "InvalidParameterValue"


@pytest.mark.parametrize("pattern,value,matches", [
    ("web-?", "web-1", True), ("web-?", "web-12", False), ("*1", "web-1", True), ("a[1]", "a[1]", True),
    ("a[1]", "a1", False), (r"a\*", "a*", True), (r"a\*", "ab", False), (r"a\?", "a?", True), ("", "", True),
    ("WEB", "web", False)])
def test_filter_values_know_only_star_question_mark_and_backslash(pattern, value, matches):
    kept = apply_filters([{"v": value}], [{"Name": "v", "Values": [pattern]}], {"v": lambda i: i["v"]})
    assert bool(kept) is matches


# -- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", [{"Key": "aws:x", "Value": "1"}, {"Key": "AWS:x"}, {"Key": ""}, {"Value": "v"},
                                 {"Key": "k" * 129}, {"Key": "k", "Value": "v" * 257}])
def test_checked_tags_refuses_what_aws_refuses(tag):
    assert code_of(tags.checked_tags, [tag]) == "InvalidParameterValue"


def test_checked_tags_accepts_the_limits_and_defaults_the_value():
    assert tags.checked_tags([{"Key": "k" * 128, "Value": "v" * 256}, {"Key": "empty"}]) == {
        "k" * 128: "v" * 256, "empty": ""}


def test_requested_tags_takes_its_resource_type_and_refuses_others():
    params = {"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}]}
    assert tags.requested_tags(params, "instance") == [{"Key": "Name", "Value": "web"}]
    assert tags.requested_tags({}, "instance") == []
    params["TagSpecifications"].append({"ResourceType": "volume", "Tags": [{"Key": "a", "Value": "b"}]})
    assert code_of(tags.requested_tags, params, "instance") == "InvalidParameterValue"
    many = {"TagSpecifications": [{"ResourceType": "instance",
                                   "Tags": [{"Key": f"k{n}", "Value": ""} for n in range(51)]}]}
    assert code_of(tags.requested_tags, many, "instance") == "TagLimitExceeded"


# -- CreateTags ------------------------------------------------------------------------------------

def test_handlers_are_registered():
    assert HANDLERS["CreateTags"] is tags.create_tags
    assert HANDLERS["DeleteTags"] is tags.delete_tags
    assert HANDLERS["DescribeTags"] is tags.describe_tags


def test_create_tags_on_every_kind_records_its_resource_type(alice, mine):
    assert tags.create_tags(alice, {"Resources": list(mine.values()),
                                    "Tags": [{"Key": "Name", "Value": "x"}, {"Key": "env"}]}) == {}
    seen = {(t["ResourceId"], t["ResourceType"], t["Key"], t["Value"]) for t in all_tags(alice)}
    assert seen == {(rid, kind, k, v) for kind, rid in mine.items() for k, v in (("Name", "x"), ("env", ""))}


def test_create_tags_overwrites_a_value(alice, mine):
    tags.create_tags(alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "Name", "Value": "old"}]})
    tags.create_tags(alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "Name", "Value": "new"}]})
    assert tags.tag_sets(alice, [mine["instance"]]) == {mine["instance"]: [{"Key": "Name", "Value": "new"}]}


@pytest.mark.parametrize("kind,code", [
    ("instance", "InvalidInstanceID.NotFound"), ("image", "InvalidAMIID.NotFound"),
    ("volume", "InvalidVolume.NotFound"), ("snapshot", "InvalidSnapshot.NotFound"),
    ("security-group", "InvalidGroup.NotFound"), ("key-pair", "InvalidKeyPair.NotFound"),
    ("elastic-ip", "InvalidAllocationID.NotFound")])
def test_another_accounts_resource_answers_like_a_missing_one(alice, mine, theirs, kind, code):
    request = {"Tags": [{"Key": "Name", "Value": "mine now"}]}
    missing = theirs[kind].split("-")[0] + "-deadbeef"
    assert code_of(tags.create_tags, alice, {**request, "Resources": [theirs[kind]]}) == code
    assert code_of(tags.create_tags, alice, {**request, "Resources": [missing]}) == code
    assert code_of(tags.delete_tags, alice, {"Resources": [theirs[kind]]}) == code
    # Nothing was written, even for the caller's own resource named first.
    assert code_of(tags.create_tags, alice, {**request, "Resources": [mine[kind], theirs[kind]]}) == code
    assert all_tags(alice) == []


@pytest.mark.parametrize("resource_id", ["ami-12345678", "i", "i-", "bogus", "vpc-1234"])
def test_unknown_id_prefix_is_invalid_id(alice, resource_id):
    assert code_of(tags.create_tags, alice, {"Resources": [resource_id], "Tags": [{"Key": "a"}]}) == "InvalidID"


def test_gone_resources_cannot_be_tagged(cloud, alice, mine):
    cloud.store.db["images"].update(mine["image"], {"state": "deregistered"})
    cloud.store.db["instances"].update(mine["instance"], {"state": "terminated", "updated": ids.now() - 7200})
    assert code_of(tags.create_tags, alice, {"Resources": [mine["image"]], "Tags": [{"Key": "a"}]}) == \
        "InvalidAMIID.NotFound"
    assert code_of(tags.create_tags, alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "a"}]}) == \
        "InvalidInstanceID.NotFound"


def test_recently_terminated_instance_can_still_be_tagged(cloud, alice, mine):
    cloud.store.db["instances"].update(mine["instance"], {"state": "terminated", "updated": ids.now()})
    tags.create_tags(alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "a"}]})
    assert len(all_tags(alice)) == 1


def test_fifty_tags_per_resource(alice, mine):
    resource = [mine["volume"]]
    tags.create_tags(alice, {"Resources": resource, "Tags": [{"Key": f"k{n}", "Value": ""} for n in range(49)]})
    tags.create_tags(alice, {"Resources": resource, "Tags": [{"Key": "k0", "Value": "again"}, {"Key": "k49"}]})
    assert len(all_tags(alice)) == 50
    assert code_of(tags.create_tags, alice, {"Resources": [mine["snapshot"], mine["volume"]],
                                             "Tags": [{"Key": "one-more"}]}) == "TagLimitExceeded"
    assert len(all_tags(alice)) == 50  # and the snapshot did not get it either


def test_create_tags_needs_tags_and_resources(alice, mine):
    assert code_of(tags.create_tags, alice, {"Resources": [mine["instance"]], "Tags": []}) == "MissingParameter"
    assert code_of(tags.create_tags, alice, {"Resources": [], "Tags": [{"Key": "a"}]}) == "MissingParameter"


def test_create_tags_refuses_reserved_keys(alice, mine):
    assert code_of(tags.create_tags, alice, {"Resources": [mine["instance"]],
                                             "Tags": [{"Key": "aws:cloudformation:stack-id"}]}) == \
        "InvalidParameterValue"


def test_dry_run_writes_nothing(alice, mine):
    request = {"Resources": [mine["instance"]], "Tags": [{"Key": "a", "Value": "b"}], "DryRun": True}
    assert code_of(tags.create_tags, alice, request) == "DryRunOperation"
    assert all_tags(alice) == []
    tags.create_tags(alice, {**request, "DryRun": False})
    assert code_of(tags.delete_tags, alice, request) == "DryRunOperation"
    assert len(all_tags(alice)) == 1
    # DryRun still validates: a missing id is not "would have succeeded".
    assert code_of(tags.create_tags, alice, {**request, "Resources": ["i-00000000"]}) == \
        "InvalidInstanceID.NotFound"


# -- DeleteTags ------------------------------------------------------------------------------------

def test_delete_tags_with_and_without_values(alice, mine):
    resources = [mine["instance"], mine["image"]]
    tags.create_tags(alice, {"Resources": resources, "Tags": [{"Key": "Name", "Value": "web"},
                                                               {"Key": "env", "Value": "prod"},
                                                               {"Key": "blank", "Value": ""},
                                                               {"Key": "team", "Value": "a"}]})
    tags.delete_tags(alice, {"Resources": resources, "Tags": [{"Key": "Name", "Value": "other"}]})
    tags.delete_tags(alice, {"Resources": resources, "Tags": [{"Key": "blank", "Value": "x"}]})
    assert len(all_tags(alice)) == 8  # values did not match: nothing deleted
    tags.delete_tags(alice, {"Resources": resources, "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "env"},
                                                               {"Key": "blank", "Value": ""}]})
    assert {(t["ResourceId"], t["Key"]) for t in all_tags(alice)} == {(r, "team") for r in resources}
    tags.delete_tags(alice, {"Resources": [mine["image"]]})
    assert [(t["ResourceId"], t["Key"]) for t in all_tags(alice)] == [(mine["instance"], "team")]
    tags.delete_tags(alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "never-set"}]})  # no error


def test_delete_tags_refuses_reserved_keys(alice, mine):
    assert code_of(tags.delete_tags, alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "aws:x"}]}) == \
        "InvalidParameterValue"


def test_delete_resource_tags_forgets_them(alice, mine):
    tags.create_tags(alice, {"Resources": [mine["image"], mine["volume"]], "Tags": [{"Key": "a"}]})
    tags.delete_resource_tags(alice, [mine["image"]])
    assert [t["ResourceId"] for t in all_tags(alice)] == [mine["volume"]]


def test_deregister_image_forgets_its_tags(alice, mine):
    tags.create_tags(alice, {"Resources": [mine["image"]], "Tags": [{"Key": "a"}]})
    images.deregister_image(alice, {"ImageId": mine["image"]})
    assert all_tags(alice) == []


# -- DescribeTags ----------------------------------------------------------------------------------

def test_describe_tags_shows_only_the_callers_account(alice, bob, mine, theirs):
    tags.create_tags(alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "owner", "Value": "alice"}]})
    tags.create_tags(bob, {"Resources": [theirs["instance"]], "Tags": [{"Key": "owner", "Value": "bob"}]})
    assert all_tags(alice) == [{"ResourceId": mine["instance"], "ResourceType": "instance", "Key": "owner",
                                "Value": "alice"}]
    assert [t["Value"] for t in all_tags(bob)] == ["bob"]
    # Bob's public image is visible to alice, its tags are not.
    tags.create_tags(bob, {"Resources": [theirs["image"]], "Tags": [{"Key": "secret", "Value": "s"}]})
    assert tags.tag_sets(alice, [theirs["image"]]) == {theirs["image"]: []}
    described = images.describe_images(alice, {"ImageIds": [theirs["image"]]})["Images"]
    assert "Tags" not in described[0]


def test_describe_tags_filters(alice, mine):
    tags.create_tags(alice, {"Resources": [mine["instance"], mine["volume"]],
                             "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "env", "Value": "prod"}]})
    tags.create_tags(alice, {"Resources": [mine["image"]], "Tags": [{"Key": "Name", "Value": "base"}]})

    def described(*filters):
        return sorted((t["ResourceId"], t["Key"]) for t in all_tags(alice, Filters=list(filters)))

    assert described({"Name": "resource-type", "Values": ["volume"]}) == [(mine["volume"], "Name"),
                                                                         (mine["volume"], "env")]
    assert described({"Name": "key", "Values": ["Name"]}, {"Name": "value", "Values": ["web*"]}) == [
        (mine["instance"], "Name"), (mine["volume"], "Name")]
    assert described({"Name": "resource-id", "Values": [mine["image"], mine["instance"]]},
                     {"Name": "key", "Values": ["Name"]}) == [(mine["image"], "Name"), (mine["instance"], "Name")]
    assert described({"Name": "tag:Name", "Values": ["base"]}) == [(mine["image"], "Name")]
    assert described({"Name": "value", "Values": ["?ro?"]}) == [(mine["instance"], "env"), (mine["volume"], "env")]
    with pytest.raises(AWSError) as e:
        all_tags(alice, Filters=[{"Name": "owner-id", "Values": [ALICE]}])
    assert e.value.code == "InvalidParameterValue"


def test_describe_tags_pages(alice, mine):
    resources = [mine["instance"], mine["image"], mine["volume"]]
    tags.create_tags(alice, {"Resources": resources, "Tags": [{"Key": f"k{n}", "Value": str(n)} for n in range(4)]})
    pages, token = [], None
    while True:
        params = {"MaxResults": 5, **({"NextToken": token} if token else {})}
        answer = tags.describe_tags(alice, params)
        pages.append(answer["Tags"])
        token = answer.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [5, 5, 2]
    listed = [(t["ResourceId"], t["Key"]) for page in pages for t in page]
    assert listed == sorted((r, f"k{n}") for r in resources for n in range(4))
    assert "NextToken" not in tags.describe_tags(alice, {"MaxResults": 12})


def test_describe_tags_pages_filtered_results(alice, mine):
    tags.create_tags(alice, {"Resources": [mine["instance"]],
                             "Tags": [{"Key": f"k{n:02}", "Value": "even" if n % 2 == 0 else "odd"}
                                      for n in range(14)]})
    first = tags.describe_tags(alice, {"MaxResults": 5, "Filters": [{"Name": "value", "Values": ["even"]}]})
    second = tags.describe_tags(alice, {"MaxResults": 5, "NextToken": first["NextToken"],
                                        "Filters": [{"Name": "value", "Values": ["even"]}]})
    assert [t["Key"] for t in first["Tags"] + second["Tags"]] == [f"k{n:02}" for n in range(0, 14, 2)]
    assert "NextToken" not in second


@pytest.mark.parametrize("params,code", [({"MaxResults": 4}, "InvalidParameterValue"),
                                         ({"MaxResults": 1001}, "InvalidParameterValue"),
                                         ({"NextToken": "not a token"}, "InvalidPaginationToken"),
                                         ({"NextToken": "WzFd"}, "InvalidPaginationToken"),
                                         ({"DryRun": True}, "DryRunOperation")])
def test_describe_tags_refusals(alice, params, code):
    assert code_of(tags.describe_tags, alice, params) == code


# -- the helpers -----------------------------------------------------------------------------------

def test_tag_sets_answers_every_id_asked(alice, mine):
    tags.create_tags(alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "b", "Value": "2"},
                                                                        {"Key": "a", "Value": "1"}]})
    assert tags.tag_sets(alice, [mine["instance"], "i-nothing"]) == {
        mine["instance"]: [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}], "i-nothing": []}


def test_add_tags_rolls_back_with_its_transaction(cloud, alice, mine):
    with pytest.raises(RuntimeError):
        with cloud.store.atomic():
            tags.add_tags(alice, [mine["instance"]], [{"Key": "Name", "Value": "x"}], "instance")
            raise RuntimeError("the resource could not be created")
    assert all_tags(alice) == []


def test_tag_getters_read_tags_only_when_a_tag_filter_is_used(alice, mine, monkeypatch):
    calls = []
    real = tags.tag_sets
    monkeypatch.setattr(tags, "tag_sets", lambda ctx, ids_: calls.append(ids_) or real(ctx, ids_))
    items = [{"id": mine["volume"]}]
    getters = {"id": lambda i: i["id"], **tags.tag_getters(alice, [mine["volume"]], lambda i: i["id"])}
    apply_filters(items, [{"Name": "id", "Values": ["*"]}], getters)
    assert calls == []
    tags.create_tags(alice, {"Resources": [mine["volume"]], "Tags": [{"Key": "Name", "Value": "data"}]})
    assert apply_filters(items, [{"Name": "tag-key", "Values": ["Name"]}], getters) == items
    assert apply_filters(items, [{"Name": "tag-value", "Values": ["da*"]}], getters) == items
    assert apply_filters(items, [{"Name": "tag:Name", "Values": ["x"]}], getters) == []
    assert len(calls) == 1


# -- Describe of images and instances --------------------------------------------------------------

def test_describe_images_shows_and_filters_tags(alice, mine, theirs):
    tags.create_tags(alice, {"Resources": [mine["image"]], "Tags": [{"Key": "Name", "Value": "base-os"}]})
    everything = images.describe_images(alice, {})["Images"]
    assert {i["ImageId"] for i in everything} == {mine["image"], theirs["image"]}  # theirs is public
    by_id = {i["ImageId"]: i for i in everything}
    assert by_id[mine["image"]]["Tags"] == [{"Key": "Name", "Value": "base-os"}]
    assert "Tags" not in by_id[theirs["image"]]
    for f in ({"Name": "tag:Name", "Values": ["base*"]}, {"Name": "tag-key", "Values": ["Name"]},
              {"Name": "tag-value", "Values": ["*-os"]}):
        assert [i["ImageId"] for i in images.describe_images(alice, {"Filters": [f]})["Images"]] == [mine["image"]]
    assert images.describe_images(alice, {"Filters": [{"Name": "tag:Name", "Values": ["other"]}]})["Images"] == []


def test_describe_instances_shows_and_filters_tags(alice, mine):
    tags.create_tags(alice, {"Resources": [mine["instance"]], "Tags": [{"Key": "Name", "Value": "web-1"}]})
    [reservation] = instances.describe_instances(alice, {})["Reservations"]
    assert reservation["Instances"][0]["Tags"] == [{"Key": "Name", "Value": "web-1"}]
    assert instances.describe_instances(alice, {"Filters": [{"Name": "tag:Name", "Values": ["web-?"]}]})[
        "Reservations"] == [reservation]
    assert instances.describe_instances(alice, {"Filters": [{"Name": "tag:Name", "Values": ["db"]}]})[
        "Reservations"] == []
    tags.delete_tags(alice, {"Resources": [mine["instance"]]})
    assert "Tags" not in instances.describe_instances(alice, {})["Reservations"][0]["Instances"][0]


def test_run_instances_validates_tag_specifications_before_dry_run(alice, mine):
    request = {"ImageId": mine["image"], "MinCount": 1, "MaxCount": 1, "DryRun": True,
               "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}]}
    assert code_of(instances.run_instances, alice, request) == "DryRunOperation"
    for spec in ({"ResourceType": "volume", "Tags": [{"Key": "a"}]},
                 {"ResourceType": "instance", "Tags": [{"Key": "aws:a"}]}):
        assert code_of(instances.run_instances, alice, {**request, "TagSpecifications": [spec]}) == \
            "InvalidParameterValue"
