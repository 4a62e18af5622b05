"""The AWS wire layer: EC2, query and S3 rest-xml, driven by botocore's models.

``Ec2Protocol``, ``QueryProtocol`` (IAM/Euare and our own services) and
``S3Protocol`` turn requests into boto3-shaped input dicts and handler output
dicts into response bodies; ``verify_request`` checks signatures;
``AWSError`` is the one error type, rendered by the protocol objects.
"""

from .auth import Credentials, verify_request
from .ec2 import Ec2Protocol
from .errors import AWSError
from .query import QueryProtocol
from .s3 import S3Protocol

__all__ = ['AWSError', 'Credentials', 'Ec2Protocol', 'QueryProtocol', 'S3Protocol', 'verify_request']
