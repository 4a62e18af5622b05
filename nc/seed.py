"""The NoCloud seed every instance gets: a small ISO 9660 disk labelled ``cidata`` holding
``meta-data`` (instance-id, local-hostname, public-keys) and ``user-data``, as cloud-init's
NoCloud data source reads it, so an image configures itself without the metadata service.

Written with pycdlib, pure Python: no loop mount, no root, and no ISO tool on the node. Rock
Ridge and Joliet carry the real names (with their hyphens); the plain ISO 9660 names are the
8.3 fallback that every reader has.
"""

import io
import json
import os
import re
from pathlib import Path

import pycdlib

#: The volume label cloud-init looks for.
LABEL = "cidata"
#: The seed's files: name -> ISO 9660 level-1 name.
_ISO_NAMES = {"meta-data": "/METADATA.;1", "user-data": "/USERDATA.;1"}
# Instance ids and host names go into the YAML bare, so they must be plain tokens.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


def meta_data(instance_id: str, hostname: str, public_keys: list[str]) -> bytes:
    """The ``meta-data`` document (YAML). Keys are written as double-quoted (JSON) strings, which
    YAML reads as they are whatever characters a key's comment has."""
    for name, value in (("instance id", instance_id), ("host name", hostname)):
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"{name} {value!r} is not a plain token")
    lines = [f"instance-id: {instance_id}", f"local-hostname: {hostname}"]
    if public_keys:
        lines.append("public-keys:")
        lines += [f"  - {json.dumps(key.strip())}" for key in public_keys]
    return ("\n".join(lines) + "\n").encode()


def build_seed(path: Path, instance_id: str, hostname: str, user_data: bytes,
               public_keys: list[str]) -> Path:
    """Write the seed image for one instance to ``path`` (through a temporary name, so a crash
    leaves no half image) and return ``path``. ValueError for an id or host name that is not a
    plain token."""
    path = Path(path)
    files = {"meta-data": meta_data(instance_id, hostname, public_keys), "user-data": bytes(user_data)}
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    for name, data in files.items():
        iso.add_fp(io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name, joliet_path=f"/{name}")
    tmp = path.with_name(f".{path.name}.part")
    try:
        iso.write(str(tmp))
        os.replace(tmp, path)
    finally:
        iso.close()
        tmp.unlink(missing_ok=True)
    return path


def read_seed(path: Path) -> dict[str, bytes]:
    """The files of a seed image by their real (Rock Ridge) names, and its label under
    ``"label"``: the reading half, for checks and tools."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        found = {"label": iso.pvd.volume_identifier.decode().strip().encode()}
        for child in iso.list_children(rr_path="/"):
            if child.is_file():
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path="/" + child.rock_ridge.name().decode())
                found[child.rock_ridge.name().decode()] = out.getvalue()
        return found
    finally:
        iso.close()
