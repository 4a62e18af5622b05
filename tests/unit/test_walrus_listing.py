"""walrus.listing: the text-rendered ListObjects(V2) page is, byte for byte, what the generic
model-driven serializer renders for the same output, whatever the keys hold."""

import io

import pytest

from tests.unit.test_walrus_api import ALICE, BOB
from walrus.api import WalrusApp
from walrus.listing import serialize
from walrus.request import RequestContext
from walrus.store import WalrusStore

#: Keys with markup, quotes, a carriage return, a tab, control characters, non-ASCII and a delimiter.
KEYS = ["a/1", "a/2", "b&<>\"'", "c\r\n\tx", "d\x01\x1fe", "é/ü", "plain", "sp ace+plus", "z/y/x"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("listing")
    store = WalrusStore(root / "bukkits", root / "walrus.db")
    store.create_bucket("listed", ALICE.account_id)
    for n, key in enumerate(KEYS):
        owner = BOB.account_id if n % 3 == 0 else ALICE.account_id
        checksum = {"checksum_algorithm": "CRC32", "checksum": "AAAAAA=="} if n % 2 else {}
        store.put_object("listed", key, io.BytesIO(b"data"), 4, owner=owner, **checksum)
    return WalrusApp(store, {ALICE.access_key: ALICE}.get)


REQUESTS = [
    ("ListObjectsV2", {}),
    ("ListObjectsV2", {"FetchOwner": True, "MaxKeys": 4}),
    ("ListObjectsV2", {"Delimiter": "/", "EncodingType": "url", "StartAfter": "a/1"}),
    ("ListObjectsV2", {"Prefix": "é/", "Delimiter": "/"}),
    ("ListObjectsV2", {"Prefix": "nothing"}),
    ("ListObjects", {}),
    ("ListObjects", {"Delimiter": "/", "MaxKeys": 3, "Marker": "b&<>\"'"}),
    ("ListObjects", {"EncodingType": "url", "Prefix": "c"}),
]


@pytest.mark.parametrize("operation,request_fields", REQUESTS)
def test_text_page_equals_generic_serializer(app, operation, request_fields):
    ctx = RequestContext("req-1", ALICE, {}, None)
    handler = app.list_objects_v2 if operation == "ListObjectsV2" else app.list_objects
    output = handler(ctx, {"Bucket": "listed", **request_fields})
    generic = app.protocol.serialize(operation, output, "req-1")
    assert serialize(app.protocol, operation, output, "req-1") == generic
    assert generic[2].count(b"<Key>") == len(output.get("Contents", ()))
