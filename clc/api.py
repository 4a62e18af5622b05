"""The CLC's public port as WSGI: EC2, Euare (IAM), Properties and Reporting.

Each API is a :class:`QueryApi`: verify the signature, parse by the service's
botocore model, authorize, dispatch to ``handler(ctx, params) -> dict``,
serialize.  Any AWSError becomes the service's own error document; anything
unexpected is logged with the request id and answered as InternalError, never
as a traceback.  :class:`CloudApi` routes by path as the original did
(``/services/Euare``...) and serves the instance metadata service (clc/imds.py);
every other path is EC2.
"""

import logging
from collections import Counter
from urllib.parse import parse_qsl

from eucacore.awsapi import models
from eucacore.awsapi.auth import verify_request
from eucacore.awsapi.ec2 import Ec2Protocol
from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.query import QueryProtocol
from clc import admin, euare
from clc.imds import MetadataApp, is_metadata_path
from clc.cloud import Cloud, RequestContext
from clc.ec2 import HANDLERS as EC2_HANDLERS
from clc.ec2.access import authorize as authorize_ec2

log = logging.getLogger("eucalyptus.clc.api")
MAX_BODY = 1 << 20


class QueryApi:
    """One query-protocol API of ``cloud``: ``signing_name`` is the SigV4 service name."""

    def __init__(self, cloud: Cloud, protocol, signing_name: str, handlers: dict, authorize=None):
        self.cloud, self.protocol, self.signing_name = cloud, protocol, signing_name
        self.handlers, self.authorize = handlers, authorize

    def __call__(self, environ, start_response):
        request_id = environ.get("eucalyptus.request_id", "")
        try:
            body = self._body(environ)
            status, payload = 200, self._handle(environ, body, request_id)
        except AWSError as e:
            status, payload = self.protocol.serialize_error(e, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            status, payload = self.protocol.serialize_error(
                AWSError("InternalError", "An internal error has occurred", 500), request_id)
        start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                       [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(payload)))])
        return [payload]

    @staticmethod
    def _body(environ) -> bytes:
        if environ.get("REQUEST_METHOD") != "POST":
            return b""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise AWSError("InvalidParameterValue", "Invalid Content-Length") from None
        if length > MAX_BODY:
            raise AWSError("RequestEntityTooLarge", "Request body is too large", 413)
        return environ["wsgi.input"].read(length) if length > 0 else b""

    def _handle(self, environ, body: bytes, request_id: str) -> bytes:
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        if environ.get("CONTENT_LENGTH"):
            headers["Content-Length"] = environ["CONTENT_LENGTH"]
        query = environ.get("QUERY_STRING", "")
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        raw_path = raw_path.split("?", 1)[0]
        principal = verify_request(service=self.signing_name, method=environ["REQUEST_METHOD"], raw_path=raw_path,
                                   query_string=query, headers=headers, body=body,
                                   lookup=self.cloud.identity.lookup)
        action, request = self.protocol.parse(_parameters(query, headers, body))
        handler = self.handlers.get(action)
        if handler is None:
            raise AWSError("Unsupported", f"The action {action} is not supported by this cloud yet.")
        ctx = RequestContext(self.cloud, principal, request_id)
        log.info("%s %s account=%s user=%s", request_id, action, principal.account_id, principal.user_name)
        if self.authorize is not None:
            self.authorize(ctx, action, request)
        return self.protocol.serialize(action, handler(ctx, request) or {}, request_id)


def _parameters(query: str, headers: dict, body: bytes) -> dict:
    """The query string's and the form body's parameters; each must be UTF-8 and given once."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
        if body and "x-www-form-urlencoded" in headers.get("Content-Type", "application/x-www-form-urlencoded"):
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise AWSError("InvalidParameterValue", "The request's parameters are not UTF-8") from None
    counts = Counter(name for name, _ in pairs)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise AWSError("InvalidParameterValue", f"The parameter {repeated[0]} is given more than once")
    return dict(pairs)


class CloudApi:
    """Routes the CLC's public port: the original's service paths, the instance metadata
    service (``/latest/...``, unsigned, for instances), EC2 for everything else."""

    def __init__(self, cloud: Cloud):
        self.metadata = MetadataApp(cloud)
        self.ec2 = QueryApi(cloud, Ec2Protocol(), "ec2", EC2_HANDLERS, authorize_ec2)
        self.routes = {
            "/services/Euare": QueryApi(cloud, QueryProtocol(models.service_model("euare")), "iam",
                                        euare.HANDLERS),
            "/services/Properties": QueryApi(cloud, QueryProtocol(models.service_model("properties")),
                                             "properties", admin.PROPERTIES_HANDLERS),
            "/services/Reporting": QueryApi(cloud, QueryProtocol(models.service_model("reporting")),
                                            "reporting", admin.REPORTING_HANDLERS),
        }

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if is_metadata_path(path):
            return self.metadata(environ, start_response)
        return self.routes.get(path.rstrip("/"), self.ec2)(environ, start_response)
