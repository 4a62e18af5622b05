"""The one exception type of the AWS wire layer.

Handlers and the wire layer raise :class:`AWSError`; the protocol objects
(``Ec2Protocol.serialize_error``, ``S3Protocol.serialize_error``) render it
once, in the service's own error document.
"""


class AWSError(Exception):
    """An AWS error as the client will see it.

    ``code`` is the AWS error code (``InvalidKeyPair.NotFound``), ``message``
    the human text, ``status`` the HTTP status (400 unless told), and
    ``extra`` any further elements of an S3 error document (``BucketName``,
    ``Key``...), rendered in the order given.
    """

    def __init__(self, code, message, status=400, **extra):
        super().__init__(f'{code}: {message}')
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def __repr__(self):
        return f'AWSError({self.code!r}, {self.message!r}, {self.status})'
