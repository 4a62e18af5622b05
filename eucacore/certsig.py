"""HTTP requests signed with a component's certificate: the original's ``Authorization: Euca``.

The original NC fetched images from Walrus with three headers besides ``Date``:
``Authorization: Euca``, ``EucaCert`` (base64 of its certificate PEM) and ``EucaSignature``
(base64 of an RSA signature by its private key over ``VERB\\nDATE\\nPATH\\n``). We keep the
scheme and modernise the signature to RSA-SHA256 (PKCS#1 v1.5); the signed path includes the
query string, so a captured signature cannot be replayed for another request. Who may be
trusted with what (the CA, the certificate's kind, the operations) is the verifier's business
(walrus.nodeauth); this module only makes and checks signatures.
"""

import base64
import binascii
import datetime
from email.utils import format_datetime, parsedate_to_datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from eucacore.pki import KeyPair

SCHEME = "Euca"
CERT_HEADER = "EucaCert"
SIGNATURE_HEADER = "EucaSignature"
#: How far the signer's clock may be from the verifier's.
MAX_SKEW = datetime.timedelta(minutes=15)


class SignatureError(Exception):
    """A certificate-signed request whose headers are missing, undecodable or do not verify."""


class ClockSkew(SignatureError):
    """A certificate-signed request whose Date is more than MAX_SKEW away."""


class BadSignature(SignatureError):
    """A certificate-signed request whose signature is not its certificate's key's."""


def string_to_sign(method: str, date: str, path: str) -> bytes:
    """What is signed: the verb, the Date header and the path with its query, as the original."""
    return f"{method}\n{date}\n{path}\n".encode("utf-8")


class CertSigner:
    """Signs requests with a component's key pair; the verifier learns who signed from the
    certificate sent along. Keys are read when first needed."""

    def __init__(self, keys: KeyPair):
        self.keys = keys
        self._cert_b64: str | None = None
        self._key: rsa.RSAPrivateKey | None = None

    def _load(self) -> None:
        if self._key is None:
            self._cert_b64 = base64.b64encode(self.keys.cert.read_bytes()).decode()
            self._key = serialization.load_pem_private_key(self.keys.key.read_bytes(), password=None)

    def headers(self, method: str, path: str, now: datetime.datetime | None = None) -> dict[str, str]:
        """The headers that sign ``method`` of ``path`` (path and query as sent on the wire)."""
        self._load()
        date = format_datetime(now or datetime.datetime.now(datetime.timezone.utc), usegmt=True)
        signature = self._key.sign(string_to_sign(method, date, path), padding.PKCS1v15(), hashes.SHA256())
        return {"Authorization": SCHEME, "Date": date, CERT_HEADER: self._cert_b64,
                SIGNATURE_HEADER: base64.b64encode(signature).decode()}


def is_cert_signed(headers: dict) -> bool:
    """Whether a request (lower-cased header names) claims to be signed this way."""
    return headers.get("authorization", "").strip() == SCHEME


def signer_certificate(headers: dict) -> x509.Certificate:
    """The certificate a request (lower-cased header names) carries; SignatureError if none."""
    text = headers.get(CERT_HEADER.lower(), "")
    try:
        return x509.load_pem_x509_certificate(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise SignatureError(f"the {CERT_HEADER} header does not hold a base64 PEM certificate") from None


def request_time(headers: dict, now: datetime.datetime) -> str:
    """The request's Date header if it is within MAX_SKEW of ``now``; ClockSkew if it is not,
    SignatureError if it is no date."""
    date = headers.get("date", "")
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        raise SignatureError(f"the Date header '{date}' is not an HTTP date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    if abs(now - when) > MAX_SKEW:
        raise ClockSkew(f"the request's Date {date} is more than {MAX_SKEW} away from the server's time")
    return date


def check_signature(cert: x509.Certificate, headers: dict, method: str, path: str, date: str) -> None:
    """BadSignature unless EucaSignature is ``cert``'s key's signature of the request."""
    try:
        signature = base64.b64decode(headers.get(SIGNATURE_HEADER.lower(), ""), validate=True)
        cert.public_key().verify(signature, string_to_sign(method, date, path), padding.PKCS1v15(),
                                 hashes.SHA256())
    except (binascii.Error, ValueError, TypeError, InvalidSignature):
        raise BadSignature("the request's EucaSignature does not verify with its certificate") from None
