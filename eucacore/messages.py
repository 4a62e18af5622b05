"""SOAP message types shared by the CC and NC services, after the original's WSDL.

Every request and response starts with the fields of the original's
``eucalyptusMessage`` (correlationId, userId, statusMessage, return), copied in as
``BASE_FIELDS`` rather than inherited: spyne puts every loaded subclass of a type a
service uses into that service's WSDL, so a shared base class would leak each
service's messages into the others' WSDLs. Repeated fields are unwrapped repeated
elements, as in the original (``<instanceIds>a</instanceIds><instanceIds>b</instanceIds>``).
"""

from spyne import Boolean, ComplexModel, Integer, Long, Unicode

TNS = "http://eucalyptus.ucsb.edu/"


def many(type_):
    """A repeated element of ``type_``."""
    return type_.customize(max_occurs="unbounded")


def required(type_):
    """A mandatory, non-nil element of ``type_``."""
    return type_.customize(min_occurs=1, nillable=False)


class _Model(ComplexModel):
    __namespace__ = TNS


class Message(_Model):
    """A SOAP request or response; its ``_type_info`` starts with ``BASE_FIELDS``."""


BASE_FIELDS = [("correlationId", Unicode), ("userId", Unicode), ("statusMessage", Unicode), ("return", Boolean)]

#: An instance's ``statusMessage`` when the NC stopped it because its guest shut itself down
#: (the CLC then applies the instance's instanceInitiatedShutdownBehavior).
GUEST_SHUTDOWN = "instance-initiated shutdown"
#: The start of an instance's ``statusMessage`` when its domain could not be started.
START_FAILED = "failed to start"


class virtualBootRecordType(_Model):
    _type_info = [("resourceLocation", Unicode), ("guestDeviceName", Unicode), ("size", Long),
                  ("format", Unicode), ("id", Unicode), ("type", Unicode)]


class virtualMachineType(_Model):
    """An instance type: name and size, and the disks of one instance of it."""
    _type_info = [("name", Unicode), ("memory", Integer), ("cores", Integer), ("disk", Integer),
                  ("virtualBootRecord", many(virtualBootRecordType))]


class netConfigType(_Model):
    _type_info = [("interfaceId", Unicode), ("device", Integer), ("privateMacAddress", Unicode),
                  ("privateIp", Unicode), ("publicIp", Unicode), ("vlan", Integer),
                  ("networkIndex", Integer)]


class volumeType(_Model):
    _type_info = [("volumeId", Unicode), ("remoteDev", Unicode), ("localDev", Unicode),
                  ("state", Unicode)]


#: ``createImageStateName`` of an instance, the original's names (createImage_progress_names).
CREATEIMAGE_NONE, CREATEIMAGE_CREATING, CREATEIMAGE_SUCCEEDED, CREATEIMAGE_FAILED = \
    "none", "creating", "succeeded", "failed"


class createImageTaskType(_Model):
    """Not in the original: one CreateImage of an instance's disk, so that the CLC learns which
    image it made and how big it is (``bytes``), or why it failed (``statusMessage``)."""
    _type_info = [("imageId", Unicode), ("stateName", Unicode), ("bytes", Long), ("statusMessage", Unicode)]


class instanceType(_Model):
    """An instance as the NC and the CC report it."""
    _type_info = [("uuid", Unicode), ("reservationId", Unicode), ("instanceId", Unicode),
                  ("imageId", Unicode), ("kernelId", Unicode), ("ramdiskId", Unicode),
                  ("userId", Unicode), ("ownerId", Unicode), ("accountId", Unicode),
                  ("keyName", Unicode), ("instanceType", virtualMachineType),
                  ("netParams", netConfigType), ("stateName", Unicode), ("guestStateName", Unicode),
                  ("launchTime", Long), ("expiryTime", Long), ("userData", Unicode),
                  ("launchIndex", Integer), ("platform", Unicode), ("groupNames", many(Unicode)),
                  ("volumes", many(volumeType)), ("serviceTag", Unicode), ("blkbytes", Long),
                  ("netbytes", Long),
                  # The state of the instance's latest CreateImage (CREATEIMAGE_*).
                  ("createImageStateName", Unicode),
                  # Not in the original: why the instance is Stopped or Teardown (GUEST_SHUTDOWN,
                  # START_FAILED...), for the CLC's StateReason; and its CreateImage tasks.
                  ("statusMessage", Unicode), ("createImageTasks", many(createImageTaskType))]


class bundlePartType(_Model):
    """One encrypted part of a bundled image: where the node fetches it, and its SHA-1 (hex)."""
    _type_info = [("url", Unicode), ("digest", Unicode)]


class bundleType(_Model):
    """Not in the original (4.x's "download manifest"): how a node unpacks a bundled image.
    ``encryptedKey``/``encryptedIv``: the AES-128 key and IV, sealed for the node certificate
    (eucacore.bundle.seal); ``digest``: SHA-1 (hex) of the tar stream; ``size``: the image's bytes.
    The CLC signed 4.x's download manifest; here the mutual TLS from CLC to CC to NC vouches for it."""
    _type_info = [("encryptedKey", Unicode), ("encryptedIv", Unicode), ("digest", Unicode), ("size", Long),
                  ("parts", many(bundlePartType))]


#: The fields of ncRunInstance, which the CC's RunInstances also carries. ``<prefix>URL`` is
#: the plain URL of the image's object in Walrus (the manifest's, for a bundle), which the NC
#: fetches signed with its certificate; ``<prefix>Bundle`` is there when the image is a bundle.
#: ``keyName`` carries the key pair's public key (the OpenSSH line), as the original's did.
RUN_INSTANCE_FIELDS = [("uuid", Unicode), ("instanceId", Unicode), ("reservationId", Unicode),
                  ("instanceType", virtualMachineType), ("imageId", Unicode), ("imageURL", Unicode),
                  ("kernelId", Unicode), ("kernelURL", Unicode), ("ramdiskId", Unicode),
                  ("ramdiskURL", Unicode), ("ownerId", Unicode), ("accountId", Unicode),
                  ("keyName", Unicode), ("netParams", netConfigType), ("userData", Unicode),
                  ("launchIndex", Integer), ("platform", Unicode), ("groupNames", many(Unicode)),
                  ("imageBundle", bundleType), ("kernelBundle", bundleType), ("ramdiskBundle", bundleType)]


#: The fields the CC's and the NC's operations on one instance share (the CC forwards them).
STOP_INSTANCE_FIELDS = [("instanceId", required(Unicode)), ("force", Boolean)]
START_INSTANCE_FIELDS = [("instanceId", required(Unicode)), ("instanceType", virtualMachineType)]
#: ncAttachVolume / ncDetachVolume, the original's fields (the CC's Attach/DetachVolume forward them).
ATTACH_VOLUME_FIELDS = [("instanceId", required(Unicode)), ("volumeId", required(Unicode)),
                        ("remoteDev", required(Unicode)), ("localDev", required(Unicode))]
DETACH_VOLUME_FIELDS = [("instanceId", required(Unicode)), ("volumeId", required(Unicode)),
                        ("remoteDev", Unicode), ("localDev", Unicode), ("force", Boolean)]
CREATE_IMAGE_FIELDS = [("instanceId", required(Unicode)), ("imageId", required(Unicode)),
                       ("imageURL", required(Unicode)), ("noReboot", Boolean)]


def reply(cls, request, **fields):
    """A response of ``cls`` to ``request``: its correlation and user ids, ``return`` true."""
    return cls(correlationId=request.correlationId, userId=request.userId, **{"return": True}, **fields)


def to_dict(obj):
    """A spyne message (nested models and lists included) as plain dicts and lists; None fields dropped."""
    if isinstance(obj, ComplexModel):
        out = {}
        for name in type(obj).get_flat_type_info(type(obj)):
            value = getattr(obj, name, None)
            if value is not None:
                out[name] = to_dict(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls, data: dict):
    """A spyne message of ``cls`` from plain dicts; unknown keys are ignored."""
    if data is None:
        return None
    info = cls.get_flat_type_info(cls)
    fields = {}
    for name, value in data.items():
        type_ = info.get(name)
        if type_ is None or value is None:
            continue
        if issubclass(type_, ComplexModel):
            model = getattr(type_, "__orig__", None) or type_  # many(x) is a customized x: build x itself
            if type_.Attributes.max_occurs != 1:
                value = [from_dict(model, v) for v in value]
            else:
                value = from_dict(model, value)
        fields[name] = value
    return cls(**fields)
