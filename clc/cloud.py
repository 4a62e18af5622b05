"""The CLC's per-process context: configuration, store, identities, and clients of the
components below it. Handlers receive it (never a global)."""

import functools
from dataclasses import dataclass

import boto3
import botocore.config

from eucacore import pki, soap
from eucacore.awsapi.auth import Credentials
from eucacore.config import Config
from eucacore.db import Store
from eucacore.principal import Principal
from clc.identity import Identity
from clc.networks import NetworkRules
from clc.properties import Properties
from clc.quotas import Quotas
from clc.secrets import SecretBox
from clc.store import open_store
from clc.usage import UsageLog

REGION = "eucalyptus"


class Cloud:
    """Everything a CLC request handler may use."""

    def __init__(self, config: Config, store: Store | None = None):
        self.config = config
        self.store = store or open_store(config)
        self.identity = Identity(self.store, SecretBox.for_keys_dir(config.keys_dir()))
        self.properties = Properties(self.store, config)
        self.quotas = Quotas(self.store, self.properties)
        self.usage = UsageLog(self.store)
        self.keys = pki.component_keys(config.keys_dir(), "clc")
        self.networks = NetworkRules(self)

    # -- the components below ------------------------------------------------

    def components(self, kind: str) -> list[dict]:
        return list(self.store.db["components"].rows_where("kind = ?", [kind], order_by="name"))

    def clusters(self) -> list[dict]:
        """Registered clusters, one per availability zone (``partition``)."""
        return self.components("cluster")

    def cc(self, cluster: dict):
        """A SOAP client of a cluster controller."""
        return soap.client("EucalyptusCC", cluster["host"], cluster["port"], self.keys, timeout=60)

    def walrus_url(self) -> str | None:
        walruses = self.components("walrus")
        if not walruses:
            return None
        w = walruses[0]
        return f"http://{w['host']}:{w['port']}"

    def s3(self, creds: Credentials):
        """A boto3 S3 client of Walrus acting with ``creds``."""
        url = self.walrus_url()
        if url is None:
            return None
        return _s3_client(url, creds.access_key, creds.secret_key)

    def ec2_url(self) -> str:
        host = self.config["CLOUD_HOST"]
        return f"http://{host}:{self.config['CLOUD_PORT']}/services/compute"

    def instance_types(self) -> dict[str, dict]:
        return {r["name"]: r for r in self.store.db["instance_types"].rows}


@functools.lru_cache(maxsize=64)
def _s3_client(url: str, access_key: str, secret_key: str):
    return boto3.session.Session().client(
        "s3", endpoint_url=url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name=REGION, verify=False,
        config=botocore.config.Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                      retries={"max_attempts": 2}, connect_timeout=10, read_timeout=60))


@dataclass
class RequestContext:
    """Who is asking, on behalf of which account, in which request."""

    cloud: Cloud
    credentials: Principal
    request_id: str

    @property
    def account_id(self) -> str:
        return self.credentials.account_id
