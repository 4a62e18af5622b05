"""walrus.nodeauth over the wire: a real WalrusApp on loopback (cheroot), requests signed with
real certificates of a real cloud CA, and forged ones."""

import base64
import datetime
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from eucacore import certsig, pki
from tests.unit.test_walrus_api import ALICE, KEYS, client, serving
from tests.unit.walrus_fixtures import error_code
from walrus.api import WalrusApp
from walrus.nodeauth import NodeAuth
from walrus.store import WalrusStore

BODY = b"an image, private to alice"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """The cloud CA with node and cluster keys, as euca_conf issues them."""
    keys_dir = tmp_path_factory.mktemp("keys")
    pki.create_ca(keys_dir)
    for kind in ("node", "cluster"):
        pki.issue(keys_dir, kind, f"{kind}-1", ["127.0.0.1"])
    return keys_dir


@pytest.fixture(scope="module")
def walrus(tmp_path_factory, keys):
    """The endpoint of a Walrus that knows ALICE and BOB and checks node certificates; ALICE's
    private object at /images/disk.img."""
    root = tmp_path_factory.mktemp("walrus")
    app = WalrusApp(WalrusStore(root / "bukkits", root / "walrus.db"), KEYS.get,
                    node_auth=NodeAuth(keys / pki.CA_CERT))
    with serving(app) as endpoint:
        s3 = client(endpoint, ALICE)
        s3.create_bucket(Bucket="images")
        s3.put_object(Bucket="images", Key="disk.img", Body=BODY)
        yield endpoint


def send(endpoint: str, method: str, path: str, signer: certsig.CertSigner | None, now=None,
         sign_as: tuple[str, str] | None = None, **kwargs) -> requests.Response:
    """``method`` of ``path`` signed by ``signer`` (signing ``sign_as`` = (method, path) instead, if given)."""
    headers = signer.headers(*(sign_as or (method, path)), now=now) if signer else {}
    with requests.Session() as session:
        session.trust_env = False
        return session.request(method, endpoint + path, headers=headers, **kwargs)


def signer_of(keys_dir: Path, kind: str) -> certsig.CertSigner:
    return certsig.CertSigner(pki.component_keys(keys_dir, kind))


def forged_signer(tmp_path: Path, ou: str = "node", issuer: tuple | None = None,
                  valid: tuple[datetime.datetime, datetime.datetime] | None = None) -> certsig.CertSigner:
    """A signer with a certificate of OU ``ou`` issued by ``issuer`` (CA cert, CA key), or
    self-signed, valid over ``valid`` (default: now +- a day)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                         x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = valid or (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .sign(signing_key, hashes.SHA256()))
    (tmp_path / "forged-cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "forged-pk.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return signer_of(tmp_path, "forged")


def the_ca(keys: Path):
    return (x509.load_pem_x509_certificate((keys / pki.CA_CERT).read_bytes()),
            serialization.load_pem_private_key((keys / pki.CA_KEY).read_bytes(), password=None))


def refused(response: requests.Response, code: str = "AccessDenied") -> bool:
    return response.status_code == 403 and error_code(response) == code


# -- accepted --------------------------------------------------------------------------------------

def test_a_node_reads_any_object_with_its_certificate(walrus, keys):
    node = signer_of(keys, "node")
    got = send(walrus, "GET", "/images/disk.img", node)
    assert (got.status_code, got.content) == (200, BODY)
    head = send(walrus, "HEAD", "/images/disk.img", node)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(BODY)
    assert send(walrus, "GET", "/images/missing.img", node).status_code == 404


def test_a_clock_within_15_minutes_is_accepted(walrus, keys):
    now = datetime.datetime.now(datetime.timezone.utc)
    node = signer_of(keys, "node")
    for skew in (-14, 14):
        assert send(walrus, "GET", "/images/disk.img", node, now=now + datetime.timedelta(minutes=skew)).ok


def test_the_s3_paths_are_unchanged(walrus):
    assert refused(send(walrus, "GET", "/images/disk.img", None))  # anonymous, private object
    assert client(walrus, ALICE).get_object(Bucket="images", Key="disk.img")["Body"].read() == BODY


# -- refused ---------------------------------------------------------------------------------------

def test_a_self_signed_node_certificate_is_refused(walrus, tmp_path):
    response = send(walrus, "GET", "/images/disk.img", forged_signer(tmp_path))
    assert refused(response) and "not issued by this cloud's CA" in response.text


def test_a_node_certificate_of_another_cloud_is_refused(walrus, tmp_path):
    other = tmp_path / "other"
    pki.create_ca(other)
    pki.issue(other, "node", "node-1", ["127.0.0.1"])
    assert refused(send(walrus, "GET", "/images/disk.img", signer_of(other, "node")))


def test_a_certificate_of_another_kind_is_refused(walrus, keys):
    response = send(walrus, "GET", "/images/disk.img", signer_of(keys, "cluster"))
    assert refused(response) and "of kind 'cluster' may not fetch images" in response.text


def test_an_expired_node_certificate_is_refused(walrus, keys, tmp_path):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    expired = forged_signer(tmp_path, issuer=the_ca(keys), valid=(past, past + datetime.timedelta(days=1)))
    response = send(walrus, "GET", "/images/disk.img", expired)
    assert refused(response) and "not valid at this time" in response.text
    # The same forger's certificate, valid now, is accepted: the CA's signature is all that counts.
    assert send(walrus, "GET", "/images/disk.img", forged_signer(tmp_path, issuer=the_ca(keys))).ok


def test_a_bad_signature_is_refused(walrus, keys):
    node = signer_of(keys, "node")
    other_path = send(walrus, "GET", "/images/disk.img", node, sign_as=("GET", "/images/other.img"))
    assert refused(other_path, "SignatureDoesNotMatch")
    headers = node.headers("GET", "/images/disk.img")
    headers[certsig.SIGNATURE_HEADER] = base64.b64encode(b"\0" * 256).decode()
    with requests.Session() as session:
        session.trust_env = False
        assert refused(session.get(walrus + "/images/disk.img", headers=headers), "SignatureDoesNotMatch")
    # Signed by the cluster's key, presenting the node's certificate.
    by_cluster = signer_of(keys, "cluster").headers("GET", "/images/disk.img")
    by_cluster[certsig.CERT_HEADER] = headers[certsig.CERT_HEADER]
    with requests.Session() as session:
        session.trust_env = False
        assert refused(session.get(walrus + "/images/disk.img", headers=by_cluster), "SignatureDoesNotMatch")


def test_the_query_string_is_signed(walrus, keys):
    node = signer_of(keys, "node")
    response = send(walrus, "GET", "/images/disk.img?response-content-type=text/html", node,
                    sign_as=("GET", "/images/disk.img"))
    assert refused(response, "SignatureDoesNotMatch")


def test_a_skewed_clock_is_refused(walrus, keys):
    node = signer_of(keys, "node")
    for skew in (-16, 16):
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=skew)
        assert refused(send(walrus, "GET", "/images/disk.img", node, now=when), "RequestTimeTooSkewed")


def test_a_node_may_not_write_delete_or_list(walrus, keys):
    node = signer_of(keys, "node")
    assert refused(send(walrus, "PUT", "/images/disk.img", node, data=b"overwritten"))
    assert refused(send(walrus, "PUT", "/images/new.img", node, data=b"new"))
    assert refused(send(walrus, "DELETE", "/images/disk.img", node))
    assert refused(send(walrus, "POST", "/images/disk.img?uploads", node))
    for path in ("/images", "/", "/images/disk.img?acl", "/images?acl"):
        response = send(walrus, "GET", path, node)
        assert refused(response), (path, response.text)
    assert client(walrus, ALICE).get_object(Bucket="images", Key="disk.img")["Body"].read() == BODY
    assert "Contents" not in client(walrus, ALICE).list_objects(Bucket="images", Prefix="new")


def test_a_walrus_without_node_auth_does_not_know_the_scheme(tmp_path, keys):
    app = WalrusApp(WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db"), KEYS.get)
    with serving(app) as endpoint:
        client(endpoint, ALICE).create_bucket(Bucket="images")
        response = send(endpoint, "GET", "/images", signer_of(keys, "node"))
    assert response.status_code == 400 and error_code(response) == "AuthorizationHeaderMalformed"
