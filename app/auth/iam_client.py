"""authlib's Flask OAuth client for SPD-IAM, made to survive IAM restarts and key rotation.

authlib reads the discovery document and the key set (JWKS) once and keeps them for the life of
the process. Two consequences this class removes:
- an IAM that is down looked up at login start: the cached discovery sent browsers to a dead
  authorization endpoint (a browser error page). `reload_server_metadata` reads it anew;
- IAM that rotated its signing key under the same key id (a restarted provider): every ID token
  failed its signature check until the panel restarted. authlib re-reads the JWKS only for an
  unknown key id; here a bad signature does the same. Either re-read happens at most once per
  `JWKS_REFETCH_S`, so tokens that never verify cannot make the panel hammer IAM.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from authlib.integrations.flask_client import FlaskOAuth2App
from joserfc.errors import BadSignatureError

from app import clock

JWKS_REFETCH_S = 30


class IamClient(FlaskOAuth2App):
    _jwks_reread_at: datetime | None = None  # the last forced re-read (the first read is free)

    def reload_server_metadata(self) -> dict[str, Any]:
        """The discovery document, read from IAM now (raises what requests raises when IAM does not
        answer); the key set read so far is kept."""
        self.server_metadata.pop("_loaded_at", None)
        return self.load_server_metadata()

    def fetch_jwk_set(self, force: bool = False) -> dict[str, Any]:
        cached = self.server_metadata.get("jwks")
        if not cached:
            return super().fetch_jwk_set()
        if not force or self._recently_reread():
            return cached
        self._jwks_reread_at = clock.now()
        return super().fetch_jwk_set(force=True)

    def _recently_reread(self) -> bool:
        last = self._jwks_reread_at
        return last is not None and clock.now() - last < timedelta(seconds=JWKS_REFETCH_S)

    def parse_id_token(self, token, nonce, claims_options=None, claims_cls=None, leeway=120):
        try:
            return super().parse_id_token(token, nonce, claims_options, claims_cls, leeway)
        except BadSignatureError:
            if self._recently_reread():
                raise
            self.fetch_jwk_set(force=True)  # IAM may have a new key under the old key id
            return super().parse_id_token(token, nonce, claims_options, claims_cls, leeway)
