"""Secret access keys, sealed at rest with a key only the CLC holds.

SigV4 needs the secret itself to recompute a signature, so it cannot be
hashed like a password; it is encrypted instead, with AES-256-GCM under a
random key kept in ``keys/clc-secrets.key`` (mode 0600, created with the
cloud's CA, never copied to another component).  The access key id is the
associated data, so a sealed secret moved onto another key's row does not
open.
"""

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "clc-secrets.key"
PREFIX = "v1:"


class SecretBoxError(Exception):
    """A sealed secret that does not open: wrong key, or tampered with."""


class SecretBox:
    """Seals and opens secret access keys with the CLC's at-rest key."""

    def __init__(self, key: bytes):
        self._aead = AESGCM(key)

    @classmethod
    def for_keys_dir(cls, keys_dir: str | Path) -> "SecretBox":
        """The box of ``keys_dir/clc-secrets.key``, creating the key the first time."""
        path = Path(keys_dir) / KEY_FILE
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path.read_bytes())
        key = AESGCM.generate_key(bit_length=256)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return cls(key)

    def seal(self, secret: str, access_key: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), access_key.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, access_key: str) -> str:
        if not is_sealed(token):
            raise SecretBoxError(f"access key {access_key}: secret is not sealed")
        raw = base64.b64decode(token[len(PREFIX):])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], access_key.encode()).decode()
        except InvalidTag:
            raise SecretBoxError(f"access key {access_key}: sealed secret does not open") from None


def is_sealed(value: str | None) -> bool:
    return bool(value) and value.startswith(PREFIX)
