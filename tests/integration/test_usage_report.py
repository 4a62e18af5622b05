"""Usage reports (GenerateReport) of a tenant's instance and S3 use, against the live daemons."""

import csv
import datetime
import io
import json
import os
import time

import botocore.exceptions
import pytest

from clc.usage import COLUMNS
from tests.cloudharness import register_image, wait_for

pytestmark = pytest.mark.integration

MIB = 2**20


def _code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _state(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _csv_rows(data: str, kind: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(data))
    assert reader.fieldnames == COLUMNS[kind]
    return list(reader)


class Window:
    """Reports over a time range that starts before the account existed and ends in the future."""

    def __init__(self, cloud, start: datetime.datetime):
        self.reporting = cloud.client("reporting")
        self.start, self.end = start, start + datetime.timedelta(hours=1)

    def data(self, kind: str, fmt: str = "csv", **window) -> str:
        window = {"StartDate": self.start, "EndDate": self.end, **window}
        return self.reporting.generate_report(Type=kind, Format=fmt, **window)["Data"]

    def rows(self, kind: str, account_id: str, **window) -> list[dict]:
        return [r for r in _csv_rows(self.data(kind, **window), kind) if r["account_id"] == account_id]


@pytest.fixture(scope="module")
def used(cloud):
    """A tenant that ran an m1.small for about 2 s, stored 1 MiB, read it twice and deleted another object."""
    window = Window(cloud, _now() - datetime.timedelta(seconds=1))
    tenant = cloud.new_account("usage-tenant")
    ec2, s3 = tenant.client("ec2"), tenant.client("s3")
    image_id = register_image(ec2, s3, "usage-bucket", "usage-image", key="u.img")
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    try:
        wait_for(lambda: _state(ec2, instance_id) == "running", timeout=60, what="running")
        time.sleep(2)  # the usage itself: two seconds of instance time
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
    s3.put_object(Bucket="usage-bucket", Key="data", Body=os.urandom(MIB))
    for _ in range(2):
        assert len(s3.get_object(Bucket="usage-bucket", Key="data")["Body"].read()) == MIB
    s3.delete_object(Bucket="usage-bucket", Key="u.img")  # the instance is running: its image is cached
    return window, tenant


def test_instance_report(used):
    window, tenant = used
    rows = window.rows("instance", tenant.account_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["account_name"], row["instance_type"], row["instances"]) == ("usage-tenant", "m1.small", "1")
    assert 0 < float(row["hours"]) < 0.01


def test_s3_report(used):
    window, tenant = used

    def reported():
        rows = window.rows("s3", tenant.account_id)
        return rows if rows and int(rows[0]["bytes_out"]) >= 2 * MIB and \
            int(rows[0]["stored_bytes_at_end"]) == MIB else None

    rows = wait_for(reported, timeout=30, what="Walrus' usage report")
    assert len(rows) == 1 and rows[0]["account_name"] == "usage-tenant"
    assert int(rows[0]["bytes_in"]) >= MIB
    assert float(rows[0]["storage_gib_hours"]) >= 0


def test_json_report(used):
    window, tenant = used
    report = json.loads(window.data("instance", "json"))
    assert report["type"] == "instance" and set(report) == {"type", "start", "end", "rows"}
    rows = [r for r in report["rows"] if r["account_id"] == tenant.account_id]
    assert len(rows) == 1 and set(rows[0]) == set(COLUMNS["instance"])
    assert rows[0]["instances"] == 1 and 0 < rows[0]["hours"] < 0.01
    # AccountName narrows the report to one account.
    only = json.loads(window.reporting.generate_report(Type="instance", Format="json", StartDate=window.start,
                                                       EndDate=window.end, AccountName="usage-tenant")["Data"])
    assert only["rows"] == rows


def test_window_before_the_account_existed(used):
    window, tenant = used
    before = {"StartDate": window.start - datetime.timedelta(hours=2),
              "EndDate": window.start - datetime.timedelta(hours=1)}
    for kind in ("instance", "s3"):
        assert window.rows(kind, tenant.account_id, **before) == []
        assert _csv_rows(window.data(kind, AccountName="usage-tenant", **before), kind) == []


@pytest.mark.parametrize("params", [
    {"Type": "cpu"},
    {"Type": "instance", "Format": "xml"},
    {"Type": "instance", "AccountName": "usage-no-such-account"},
    {"Type": "instance", "StartDate": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc),
     "EndDate": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},
])
def test_bad_parameters(cloud, params):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cloud.client("reporting").generate_report(**params)
    assert _code(e) == "InvalidParameterValue"


def test_only_the_cloud_admin_reports(used):
    _, tenant = used
    with pytest.raises(botocore.exceptions.ClientError) as e:
        tenant.client("reporting").generate_report(Type="instance", AccountName="usage-tenant")
    assert _code(e) == "AccessDenied"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_s3_usage_survives_kill9_of_walrus(cloud):
    """Walrus' usage outbox is durable: what it acknowledged before kill -9 still reaches the CLC."""
    window = Window(cloud, _now() - datetime.timedelta(seconds=1))
    tenant = cloud.new_account("usage-kill9")
    s3 = tenant.client("s3")
    s3.create_bucket(Bucket="usage-kill9")
    s3.put_object(Bucket="usage-kill9", Key="k", Body=b"k" * 300_000)
    cloud.kill9("walrus")
    cloud.start_daemon("walrus")

    def reported():
        rows = window.rows("s3", tenant.account_id)
        return rows if rows and int(rows[0]["stored_bytes_at_end"]) == 300_000 else None

    rows = wait_for(reported, timeout=30, what="the killed Walrus' usage")
    assert int(rows[0]["bytes_in"]) == 300_000
    assert tenant.client("s3").get_object(Bucket="usage-kill9", Key="k")["Body"].read() == b"k" * 300_000
