"""Shared by the Walrus S3 REST tests: a WalrusApp served by eucacore.httpserver on loopback, boto3 clients
of its principals, and raw signed or anonymous requests for what boto3 will not send.

The store lives on tmpfs when there is one: fsync is then free, so a listing over ten
thousand keys or a 10 MiB multipart upload stays fast.
"""

import itertools
import json
import os
import tempfile
from pathlib import Path

import botocore.credentials
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from eucacore.principal import Principal
from tests.unit.test_walrus_api import ALICE, BOB, client, code, serving, status  # noqa: F401 (re-exported)
from walrus.api import WalrusApp
from walrus.store import WalrusStore

#: A user of ALICE's account (not its admin) whose IAM policy allows reading only.
READER = Principal("AKIAREADER00000000RR", "reader-secret/key+00000000000000000000000", ALICE.account_id,
                   user_name="reader", policies=(json.dumps({"Version": "2012-10-17", "Statement": [{
                       "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                       "Resource": "*"}]}),))
PRINCIPALS = {p.access_key: p for p in (ALICE, BOB, READER)}
_FAST_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_names = itertools.count()


@pytest.fixture(scope="module")
def server():
    """(endpoint URL, WalrusStore) of a Walrus serving ALICE, BOB and READER."""
    with tempfile.TemporaryDirectory(dir=_FAST_DIR, prefix="walrus-test-") as root:
        store = WalrusStore(Path(root) / "bukkits", Path(root) / "walrus.db")
        app = WalrusApp(store, PRINCIPALS.get, max_buckets_per_account=-1)  # a bucket per test
        with serving(app, threads=8) as endpoint:
            yield endpoint, store


@pytest.fixture(scope="module")
def s3(server):
    return client(server[0], ALICE)


@pytest.fixture(scope="module")
def s3_bob(server):
    return client(server[0], BOB)


@pytest.fixture(scope="module")
def s3_reader(server):
    return client(server[0], READER)


@pytest.fixture
def bucket(s3):
    """A fresh private bucket of ALICE's."""
    return new_bucket(s3)


def new_bucket(s3, **kwargs) -> str:
    name = f"bucket-{next(_names)}"
    s3.create_bucket(Bucket=name, **kwargs)
    return name


def files_of(server, bucket: str) -> list[str]:
    """The names of the files in ``bucket``'s directory (objects, parts, temp files), once the
    store has removed the ones it let go of."""
    server[1].removals.wait()
    return sorted(os.listdir(server[1].root / bucket))


def anonymous(method: str, url: str, **kwargs) -> requests.Response:
    """An unsigned request, as a browser or curl sends it."""
    with requests.Session() as session:
        session.trust_env = False
        return session.request(method, url, **kwargs)


def signed(endpoint: str, method: str, path: str, creds=ALICE, body: bytes = b"",
           headers: dict | None = None) -> requests.Response:
    """A SigV4-signed request for ``path`` (already URL-encoded, with any query string)."""
    request = AWSRequest(method, f"{endpoint}{path}", data=body, headers=headers or {})
    S3SigV4Auth(botocore.credentials.Credentials(creds.access_key, creds.secret_key), "s3",
                "eucalyptus").add_auth(request)
    prepared = request.prepare()
    return anonymous(method, prepared.url, data=prepared.body, headers=dict(prepared.headers))


def error_code(response: requests.Response) -> str | None:
    """The <Code> of an S3 error document."""
    text = response.text
    start = text.find("<Code>")
    return text[start + 6:text.find("</Code>")] if start >= 0 else None
