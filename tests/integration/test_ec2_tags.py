"""EC2 tags with boto3 against the live daemons: tagging instances and images, tag filters of
DescribeInstances/DescribeImages, RunInstances' TagSpecifications, DescribeTags' filters and
pages, DeleteTags, and that another account can neither tag nor see one's tags."""

import botocore.exceptions
import pytest

pytestmark = pytest.mark.integration


def _code(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"]


def _instance_ids(ec2, **kwargs):
    return sorted(i["InstanceId"] for r in ec2.describe_instances(**kwargs)["Reservations"] for i in r["Instances"])


def _image_ids(ec2, **kwargs):
    return sorted(i["ImageId"] for i in ec2.describe_images(**kwargs)["Images"])


def _tags(ec2, **kwargs):
    return sorted((t["ResourceId"], t["ResourceType"], t["Key"], t["Value"])
                  for t in ec2.describe_tags(**kwargs)["Tags"])


class Estate:
    """An account with two images and two instances: ``web`` launched with TagSpecifications,
    ``db`` tagged afterwards."""

    def __init__(self, cloud, name):
        self.tenant = cloud.new_account(name)
        self.ec2, s3 = self.tenant.client("ec2"), self.tenant.client("s3")
        s3.create_bucket(Bucket=f"{name}-images")
        s3.put_object(Bucket=f"{name}-images", Key="disk.img", Body=b"\0" * 4096)
        self.images = [self.ec2.register_image(ImageLocation=f"{name}-images/disk.img",
                                               Name=f"{name}-{n}")["ImageId"] for n in ("base", "plain")]
        run = self.ec2.run_instances(ImageId=self.images[0], MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "env", "Value": "prod"}]}])
        self.web = run["Instances"][0]["InstanceId"]
        self.run_tags = run["Instances"][0].get("Tags")
        self.db = self.ec2.run_instances(ImageId=self.images[0], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


@pytest.fixture(scope="module")
def estates(cloud):
    a, b = Estate(cloud, "tags-a"), Estate(cloud, "tags-b")
    yield a, b
    for estate in (a, b):
        estate.ec2.terminate_instances(InstanceIds=[estate.web, estate.db])


@pytest.fixture(scope="module")
def mine(estates):
    return estates[0]


def test_run_instances_writes_its_tag_specifications(mine):
    expected = [{"Key": "Name", "Value": "web-1"}, {"Key": "env", "Value": "prod"}]
    assert sorted(mine.run_tags, key=lambda t: t["Key"]) == expected
    [reservation] = mine.ec2.describe_instances(InstanceIds=[mine.web])["Reservations"]
    assert sorted(reservation["Instances"][0]["Tags"], key=lambda t: t["Key"]) == expected
    assert "Tags" not in mine.ec2.describe_instances(InstanceIds=[mine.db])["Reservations"][0]["Instances"][0]


def test_run_instances_refuses_bad_tag_specifications(mine):
    for spec in ({"ResourceType": "volume", "Tags": [{"Key": "a", "Value": "b"}]},
                 {"ResourceType": "instance", "Tags": [{"Key": "aws:reserved", "Value": "b"}]}):
        assert _code(mine.ec2.run_instances, ImageId=mine.images[0], MinCount=1, MaxCount=1,
                     TagSpecifications=[spec]) == "InvalidParameterValue"
    assert _code(mine.ec2.run_instances, ImageId=mine.images[0], MinCount=1, MaxCount=1, DryRun=True,
                 TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]) == \
        "DryRunOperation"


def test_tag_an_instance_and_an_image_and_filter_by_tags(mine):
    ec2 = mine.ec2
    ec2.create_tags(Resources=[mine.db, mine.images[0]], Tags=[{"Key": "Name", "Value": "db-1"},
                                                               {"Key": "role", "Value": "data[1]"}])
    assert _instance_ids(ec2, Filters=[{"Name": "tag:Name", "Values": ["web-1"]}]) == [mine.web]
    assert _instance_ids(ec2, Filters=[{"Name": "tag:Name", "Values": ["*-1"]}]) == sorted([mine.web, mine.db])
    assert _instance_ids(ec2, Filters=[{"Name": "tag:Name", "Values": ["db-?"]}]) == [mine.db]
    assert _instance_ids(ec2, Filters=[{"Name": "tag-key", "Values": ["env"]}]) == [mine.web]
    assert _instance_ids(ec2, Filters=[{"Name": "tag-value", "Values": ["prod", "data[1]"]}]) == \
        sorted([mine.web, mine.db])
    assert _instance_ids(ec2, Filters=[{"Name": "tag:Name", "Values": ["*"]},
                                       {"Name": "tag-key", "Values": ["role"]}]) == [mine.db]
    assert _instance_ids(ec2, Filters=[{"Name": "tag:Nothing", "Values": ["*"]}]) == []
    assert _image_ids(ec2, Owners=["self"], Filters=[{"Name": "tag:Name", "Values": ["db-1"]}]) == [mine.images[0]]
    assert _image_ids(ec2, Filters=[{"Name": "tag-key", "Values": ["role"]}]) == [mine.images[0]]
    assert _image_ids(ec2, Filters=[{"Name": "tag-value", "Values": ["data?1?"]}]) == [mine.images[0]]
    assert _image_ids(ec2, Filters=[{"Name": "tag-value", "Values": ["nothing"]}]) == []
    [image] = ec2.describe_images(ImageIds=[mine.images[0]])["Images"]
    assert sorted(image["Tags"], key=lambda t: t["Key"]) == [{"Key": "Name", "Value": "db-1"},
                                                             {"Key": "role", "Value": "data[1]"}]
    assert "Tags" not in ec2.describe_images(ImageIds=[mine.images[1]])["Images"][0]


def test_create_tags_refusals(mine):
    ec2 = mine.ec2
    assert _code(ec2.create_tags, Resources=["i-00000000"], Tags=[{"Key": "a", "Value": "b"}]) == \
        "InvalidInstanceID.NotFound"
    assert _code(ec2.create_tags, Resources=["emi-00000000"], Tags=[{"Key": "a", "Value": "b"}]) == \
        "InvalidAMIID.NotFound"
    assert _code(ec2.create_tags, Resources=["vpc-00000000"], Tags=[{"Key": "a", "Value": "b"}]) == "InvalidID"
    assert _code(ec2.create_tags, Resources=[mine.db], Tags=[{"Key": "aws:x", "Value": "b"}]) == \
        "InvalidParameterValue"
    assert _code(ec2.create_tags, Resources=[mine.db], Tags=[{"Key": "k" * 129, "Value": "b"}]) == \
        "InvalidParameterValue"
    assert _code(ec2.create_tags, Resources=[mine.images[1]],
                 Tags=[{"Key": f"k{n}", "Value": ""} for n in range(51)]) == "TagLimitExceeded"
    assert _code(ec2.create_tags, Resources=[mine.images[1]], Tags=[{"Key": "a", "Value": "b"}], DryRun=True) == \
        "DryRunOperation"
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [mine.images[1]]}])["Tags"] == []


def test_another_account_can_neither_tag_nor_see_my_tags(estates):
    mine, other = estates
    for resource in (mine.web, mine.db):
        assert _code(other.ec2.create_tags, Resources=[resource], Tags=[{"Key": "Name", "Value": "hijack"}]) == \
            "InvalidInstanceID.NotFound"
        assert _code(other.ec2.delete_tags, Resources=[resource]) == "InvalidInstanceID.NotFound"
    assert _code(other.ec2.create_tags, Resources=[mine.images[0]], Tags=[{"Key": "Name", "Value": "x"}]) == \
        "InvalidAMIID.NotFound"
    assert _code(other.ec2.create_tags, Resources=[other.web, mine.web], Tags=[{"Key": "Name", "Value": "x"}]) == \
        "InvalidInstanceID.NotFound"
    theirs = _tags(other.ec2)
    assert theirs and {t[0] for t in theirs} == {other.web}  # only their own, and the failed request wrote nothing
    assert other.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [mine.web]}])["Tags"] == []
    assert _instance_ids(other.ec2, Filters=[{"Name": "tag:Name", "Values": ["web-1"]}]) == [other.web]
    assert [t for t in _tags(mine.ec2) if t[3] == "x"] == []


def test_describe_tags_filters_and_pages(mine):
    ec2 = mine.ec2
    ec2.create_tags(Resources=[mine.images[1]], Tags=[{"Key": f"page-{n:02}", "Value": str(n)} for n in range(11)])
    everything = _tags(ec2)
    assert (mine.web, "instance", "Name", "web-1") in everything
    assert (mine.images[0], "image", "Name", "db-1") in everything
    assert _tags(ec2, Filters=[{"Name": "resource-type", "Values": ["image"]},
                               {"Name": "key", "Values": ["Name"]}]) == [(mine.images[0], "image", "Name", "db-1")]
    assert _tags(ec2, Filters=[{"Name": "value", "Values": ["web-*"]}]) == [(mine.web, "instance", "Name", "web-1")]
    assert {t[0] for t in _tags(ec2, Filters=[{"Name": "resource-id", "Values": [mine.web, mine.db]}])} == \
        {mine.web, mine.db}
    assert _code(ec2.describe_tags, Filters=[{"Name": "owner-id", "Values": ["x"]}]) == "InvalidParameterValue"

    pages = list(ec2.get_paginator("describe_tags").paginate(
        Filters=[{"Name": "key", "Values": ["page-*"]}], PaginationConfig={"PageSize": 5}))
    assert [len(p["Tags"]) for p in pages] == [5, 5, 1]
    assert [t["Key"] for p in pages for t in p["Tags"]] == [f"page-{n:02}" for n in range(11)]
    all_pages = [t for p in ec2.get_paginator("describe_tags").paginate(PaginationConfig={"PageSize": 5})
                 for t in p["Tags"]]
    assert sorted((t["ResourceId"], t["ResourceType"], t["Key"], t["Value"]) for t in all_pages) == _tags(ec2)
    assert _code(ec2.describe_tags, MaxResults=4) == "InvalidParameterValue"
    assert _code(ec2.describe_tags, NextToken="garbage") == "InvalidPaginationToken"


def test_delete_tags_with_and_without_values(mine):
    ec2 = mine.ec2
    image = mine.images[1]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "color", "Value": "blue"}, {"Key": "size", "Value": "big"},
                                             {"Key": "empty", "Value": ""}])

    def keys():
        return sorted(t[2] for t in _tags(ec2, Filters=[{"Name": "resource-id", "Values": [image]}]))

    ec2.delete_tags(Resources=[image], Tags=[{"Key": "color", "Value": "red"}, {"Key": "empty", "Value": "x"}])
    assert {"color", "empty", "size"} <= set(keys())
    ec2.delete_tags(Resources=[image], Tags=[{"Key": "color", "Value": "blue"}, {"Key": "size"},
                                             {"Key": "empty", "Value": ""}])
    assert not {"color", "empty", "size"} & set(keys()) and keys()
    assert _code(ec2.delete_tags, Resources=[image], DryRun=True) == "DryRunOperation"
    ec2.delete_tags(Resources=[image])
    assert keys() == []
    assert "Tags" not in ec2.describe_images(ImageIds=[image])["Images"][0]
