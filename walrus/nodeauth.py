"""Node controllers fetching images: requests signed with the node certificate.

An NC holds no S3 keys. It signs its GET and HEAD with ``node-pk.pem`` and sends
``node-cert.pem`` along (eucacore.certsig, the original's ``Authorization: Euca``).
Walrus accepts such a request when the certificate was issued by the cloud CA
(``cloud-cert.pem`` in Walrus's keys directory), is valid now and names the ``node``
kind as its OU, the signature verifies and the Date is within 15 minutes. The request
then acts as a :class:`NodePrincipal`, which may read (GetObject, HeadObject) any object,
as the original NC could read any image, and do nothing else: every other operation, and
every other method, is AccessDenied, answered as the S3 error document.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from eucacore import certsig
from eucacore.awsapi.errors import AWSError
from eucacore.principal import Principal

#: The OU of the certificates that may fetch images.
NODE_KIND = "node"
NODE_METHODS = ("GET", "HEAD")
NODE_OPERATIONS = ("GetObject", "HeadObject")


@dataclass(repr=False)
class NodePrincipal(Principal):
    """A node controller known by its certificate: reads any object, changes nothing."""


def _denied(message: str) -> AWSError:
    return AWSError("AccessDenied", message, 403)


class NodeAuth:
    """Verifies node-signed requests against the cloud CA certificate at ``ca_cert`` (read on
    each verification, so a CA installed after Walrus started is used at once)."""

    def __init__(self, ca_cert: str | Path):
        self.ca_cert = Path(ca_cert)

    applies = staticmethod(certsig.is_cert_signed)

    def verify(self, method: str, raw_path: str, query_string: str, headers: dict,
               now: datetime.datetime | None = None) -> NodePrincipal:
        """The node that signed the request (lower-cased ``headers``), or the S3 error: AccessDenied,
        SignatureDoesNotMatch or RequestTimeTooSkewed."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        if method not in NODE_METHODS:
            raise _denied(f"A node certificate may only GET or HEAD objects, not {method}.")
        path = f"{raw_path}?{query_string}" if query_string else raw_path
        try:
            cert = certsig.signer_certificate(headers)
            self._check_certificate(cert, now)
            date = certsig.request_time(headers, now)
            certsig.check_signature(cert, headers, method, path, date)
        except certsig.ClockSkew as e:
            raise AWSError("RequestTimeTooSkewed", f"The difference between the request time and the server's "
                                                   f"time is too large: {e}", 403) from None
        except certsig.BadSignature as e:
            raise AWSError("SignatureDoesNotMatch", str(e), 403) from None
        except certsig.SignatureError as e:
            raise _denied(str(e)) from None
        name = _name(cert, NameOID.COMMON_NAME)
        return NodePrincipal(access_key=f"node:{name}", secret_key="", user_name=name, is_cloud_admin=True)

    def _check_certificate(self, cert: x509.Certificate, now: datetime.datetime) -> None:
        """AccessDenied unless ``cert`` is a node certificate the cloud CA issued, valid now."""
        try:
            ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        except (OSError, ValueError):
            raise _denied("This Walrus has no cloud CA certificate to check node certificates with.") from None
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise _denied("The certificate was not issued by this cloud's CA.") from None
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise _denied("The node certificate is not valid at this time.")
        kind = _name(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)
        if kind != NODE_KIND:
            raise _denied(f"A certificate of kind '{kind}' may not fetch images; only '{NODE_KIND}' may.")


def check_operation(operation: str) -> None:
    """AccessDenied unless a node may do ``operation`` (read an object)."""
    if operation not in NODE_OPERATIONS:
        raise _denied(f"A node certificate may only read objects, not {operation}.")


def _name(cert: x509.Certificate, oid) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if len(values) == 1 else ""
