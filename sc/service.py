"""The SC's SOAP face: CreateStorageVolume, DescribeStorageVolumes, DeleteStorageVolume."""

from spyne import ComplexModel, Integer, ServiceBase, Unicode

from eucacore import ids
from eucacore.messages import BASE_FIELDS, reply, Message, TNS, many, required
from eucacore.soap import EucaFault, make_application, operation
from sc.volumes import StorageController, VolumeError


class storageVolume(ComplexModel):
    __namespace__ = TNS
    _type_info = [("volumeId", Unicode), ("size", Unicode), ("snapshotId", Unicode), ("status", Unicode),
                  ("createTime", Unicode), ("actualDeviceName", Unicode)]


class CreateStorageVolumeType(Message):
    _type_info = BASE_FIELDS + [("volumeId", required(Unicode)), ("size", Integer), ("snapshotId", Unicode),
                  ("parentVolumeId", Unicode)]


class CreateStorageVolumeResponseType(Message):
    _type_info = BASE_FIELDS + [("volumeId", Unicode), ("size", Unicode), ("snapshotId", Unicode), ("status", Unicode),
                  ("createTime", Unicode)]


class DeleteStorageVolumeType(Message):
    _type_info = BASE_FIELDS + [("volumeId", required(Unicode))]


class DeleteStorageVolumeResponseType(Message):
    _type_info = BASE_FIELDS + [("volumeId", Unicode)]


class DescribeStorageVolumesType(Message):
    _type_info = BASE_FIELDS + [("volumeSet", many(Unicode))]


class DescribeStorageVolumesResponseType(Message):
    _type_info = BASE_FIELDS + [("volumeSet", many(storageVolume))]


def _volume(row: dict) -> storageVolume:
    return storageVolume(volumeId=row["volume_id"], size=str(row["size"]), snapshotId=row["snapshot_id"] or None,
                         status=row["status"], createTime=ids.isoformat(row["create_time"]),
                         actualDeviceName=row["path"])



def application(sc: StorageController | None = None):
    """The SC's spyne application, serving ``sc``."""

    class SC(ServiceBase):
        @operation("CreateStorageVolume", CreateStorageVolumeType, CreateStorageVolumeResponseType)
        def CreateStorageVolume(ctx, req):
            try:
                row = sc.create_volume(req.volumeId, int(req.size or 0), req.snapshotId)
            except VolumeError as e:
                raise EucaFault(e.code, str(e))
            v = _volume(row)
            return reply(CreateStorageVolumeResponseType, req, volumeId=v.volumeId, size=v.size,
                          snapshotId=v.snapshotId, status=v.status, createTime=v.createTime)

        @operation("DeleteStorageVolume", DeleteStorageVolumeType, DeleteStorageVolumeResponseType)
        def DeleteStorageVolume(ctx, req):
            try:
                sc.delete_volume(req.volumeId)
            except VolumeError as e:
                raise EucaFault(e.code, str(e))
            return reply(DeleteStorageVolumeResponseType, req, volumeId=req.volumeId)

        @operation("DescribeStorageVolumes", DescribeStorageVolumesType, DescribeStorageVolumesResponseType)
        def DescribeStorageVolumes(ctx, req):
            return reply(DescribeStorageVolumesResponseType, req,
                          volumeSet=[_volume(r) for r in sc.volumes(req.volumeSet or None)])

    return make_application([SC], "EucalyptusSC")
