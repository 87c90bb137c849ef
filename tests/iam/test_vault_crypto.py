"""AES-GCM sealing of tokens: binding to owner and purpose, key ids, rotation of the keyring."""

import base64
import secrets

import pytest

from app.tokens import crypto


def test_seal_open_roundtrip_and_binding(tmp_path):
    ring = crypto.load_keyring(secrets.token_bytes(32), tmp_path, env={})
    blob = ring.seal("secret-token", user_id=1, purpose="login:refresh_token")
    assert b"secret-token" not in blob
    assert blob[1:9] == ring.current
    assert ring.open(blob, user_id=1, purpose="login:refresh_token") == "secret-token"
    with pytest.raises(crypto.VaultKeyError):
        ring.open(blob, user_id=2, purpose="login:refresh_token")  # another user's row
    with pytest.raises(crypto.VaultKeyError):
        ring.open(blob, user_id=1, purpose="login:id_token")  # another column
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(crypto.VaultKeyError):
        ring.open(tampered, user_id=1, purpose="login:refresh_token")


def test_nonces_differ(tmp_path):
    ring = crypto.load_keyring(secrets.token_bytes(32), tmp_path, env={})
    a = ring.seal("x", user_id=1, purpose="p")
    b = ring.seal("x", user_id=1, purpose="p")
    assert a != b


def test_new_key_becomes_current_and_old_ciphertexts_still_open(tmp_path):
    base = secrets.token_bytes(32)
    old = crypto.load_keyring(base, tmp_path, env={})
    blob = old.seal("t", user_id=3, purpose="p")
    kid = crypto.add_new_key(tmp_path)
    assert (tmp_path / crypto.KEYRING_FILE).stat().st_mode & 0o777 == 0o600
    new = crypto.load_keyring(base, tmp_path, env={})
    assert new.current == kid != old.current
    assert new.open(blob, user_id=3, purpose="p") == "t"
    assert crypto.prune_keys(tmp_path, keep=set()) == 1
    with pytest.raises(crypto.VaultKeyError):
        crypto.load_keyring(base, tmp_path, env={})  # current key pruned away: refuse to start


def test_retired_keys_from_environment(tmp_path):
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)
    blob = crypto.load_keyring(old_key, tmp_path, env={}).seal("t", user_id=1, purpose="p")
    with pytest.raises(crypto.VaultKeyError):
        crypto.load_keyring(new_key, tmp_path, env={}).open(blob, user_id=1, purpose="p")
    env = {crypto.RETIRED_ENV: base64.b64encode(old_key).decode()}
    assert crypto.load_keyring(new_key, tmp_path, env=env).open(blob, user_id=1, purpose="p") == "t"
