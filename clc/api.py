"""The CLC's EC2 Query endpoint as a WSGI app: verify, parse, dispatch, serialize.

Every request is signature-checked against the cloud's access keys; handlers are
plain functions ``handler(ctx, params) -> dict`` looked up by action name. Any
AWSError becomes the EC2 error document; anything unexpected is logged with the
request id and answered as InternalError, never as a traceback.
"""

import logging
from urllib.parse import parse_qsl

from eucacore.awsapi.auth import verify_request
from eucacore.awsapi.ec2 import Ec2Protocol
from eucacore.awsapi.errors import AWSError
from clc.cloud import Cloud, RequestContext
from clc.ec2 import HANDLERS

log = logging.getLogger("eucalyptus.clc.api")
MAX_BODY = 1 << 20


class Ec2App:
    """WSGI app for the EC2 API of ``cloud``."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self.protocol = Ec2Protocol()

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
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY:
            raise AWSError("RequestEntityTooLarge", "Request body is too large", 413)
        return environ["wsgi.input"].read(length) if length else b""

    def _handle(self, environ, body: bytes, request_id: str) -> bytes:
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        if environ.get("CONTENT_LENGTH"):
            headers["Content-Length"] = environ["CONTENT_LENGTH"]
        query = environ.get("QUERY_STRING", "")
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        raw_path = raw_path.split("?", 1)[0]
        creds = verify_request(service="ec2", method=environ["REQUEST_METHOD"], raw_path=raw_path,
                               query_string=query, headers=headers, body=body, lookup=self.cloud.identity.lookup)
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body and "x-www-form-urlencoded" in headers.get("Content-Type", "application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        action, request = self.protocol.parse(params)
        handler = HANDLERS.get(action)
        if handler is None:
            raise AWSError("Unsupported", f"The action {action} is not supported by this cloud yet.")
        ctx = RequestContext(self.cloud, creds, request_id)
        log.info("%s %s account=%s", request_id, action, creds.account_id)
        return self.protocol.serialize(action, handler(ctx, request) or {}, request_id)
