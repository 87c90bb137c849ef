"""AES-GCM encryption of stored tokens, with key ids for rotation.

A sealed value is ``version(1) | key id(8) | nonce(12) | ciphertext+tag``. The associated data binds
each ciphertext to its owner and purpose (``prodpanel:user:<id>:<purpose>``), so a ciphertext copied
into another user's row or another column does not decrypt.

Keys: the instance's base key (``Settings.token_key``: PRODPANEL_TOKEN_KEY or instance/token_key) is
always known. ``instance/token_keys.json`` (0600, written by ``prodpanel keys rotate``) adds newer keys
and names the current one; PRODPANEL_TOKEN_KEYS_RETIRED (comma-separated base64) adds old keys for a
shared instance whose key comes from the environment. A key's id is the start of its SHA-256, so ids
need no bookkeeping. Losing every key only forces users to log in again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.paths import ensure_private_dir

VERSION = b"\x01"
KEYRING_FILE = "token_keys.json"
RETIRED_ENV = "PRODPANEL_TOKEN_KEYS_RETIRED"


class VaultKeyError(Exception):
    """A ciphertext cannot be opened: unknown key id, wrong owner/purpose, or tampered data."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"prodpanel-token-key:" + key).digest()[:8]


def associated_data(user_id: int, purpose: str) -> bytes:
    return f"prodpanel:user:{user_id}:{purpose}".encode()


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[bytes, bytes]  # key id -> 32-byte key
    current: bytes  # key id used for new ciphertexts

    def seal(self, plaintext: str, *, user_id: int, purpose: str) -> bytes:
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self.keys[self.current]).encrypt(
            nonce, plaintext.encode(), associated_data(user_id, purpose)
        )
        return VERSION + self.current + nonce + ct

    def open(self, blob: bytes, *, user_id: int, purpose: str) -> str:
        if len(blob) < 1 + 8 + 12 + 16 or blob[:1] != VERSION:
            raise VaultKeyError("not a sealed token")
        kid, nonce, ct = blob[1:9], blob[9:21], blob[21:]
        key = self.keys.get(kid)
        if key is None:
            raise VaultKeyError(f"sealed with unknown key {kid.hex()}")
        try:
            return AESGCM(key).decrypt(nonce, ct, associated_data(user_id, purpose)).decode()
        except InvalidTag as exc:
            raise VaultKeyError("ciphertext does not match its owner/purpose or was altered") from exc

    @staticmethod
    def key_id_of(blob: bytes) -> bytes:
        return blob[1:9]


def load_keyring(base_key: bytes, instance_dir: Path, env: Mapping[str, str] | None = None) -> Keyring:
    """The keyring of this instance: base key + instance/token_keys.json + retired keys from env."""
    env = os.environ if env is None else env
    if len(base_key) != 32:
        raise VaultKeyError("token_key must be 32 bytes")
    keys = {key_id(base_key): base_key}
    current = key_id(base_key)
    data = _read_keyring_file(instance_dir)
    for b64 in data.get("keys", []):
        k = base64.b64decode(b64)
        keys[key_id(k)] = k
    if data.get("current"):
        current = bytes.fromhex(data["current"])
        if current not in keys:
            raise VaultKeyError(f"{KEYRING_FILE}: current key {data['current']} is not in the file")
    for b64 in filter(None, (p.strip() for p in env.get(RETIRED_ENV, "").split(","))):
        k = base64.b64decode(b64)
        keys[key_id(k)] = k
    return Keyring(keys=keys, current=current)


def _read_keyring_file(instance_dir: Path) -> dict:
    path = instance_dir / KEYRING_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def add_new_key(instance_dir: Path) -> bytes:
    """Generate a key, store it in instance/token_keys.json (0600) as the current one; return its id."""
    data = _read_keyring_file(instance_dir)
    new = secrets.token_bytes(32)
    data.setdefault("keys", []).append(base64.b64encode(new).decode())
    data["current"] = key_id(new).hex()
    _write_keyring_file(instance_dir, data)
    return key_id(new)


def prune_keys(instance_dir: Path, keep: set[bytes]) -> int:
    """Drop keys from instance/token_keys.json whose ids are not in `keep`; return how many went."""
    data = _read_keyring_file(instance_dir)
    before = data.get("keys", [])
    after = [b64 for b64 in before if key_id(base64.b64decode(b64)) in keep]
    data["keys"] = after
    _write_keyring_file(instance_dir, data)
    return len(before) - len(after)


def _write_keyring_file(instance_dir: Path, data: dict) -> None:
    ensure_private_dir(instance_dir)
    path = instance_dir / KEYRING_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)
