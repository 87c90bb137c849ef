"""The token vault: IAM tokens stored sealed, refreshed on the ID token's expiry, handed to PanDA.

`services` is the vault's API (`token_for(user)`, the PanDA client's `TokenSource`); `vault` holds
its building blocks (keyring, sealing, own sessions, per-user locks, storing a token response).
`errors` says what `token_for` raises: `TokenUnavailable` (with `relogin` when only the user can
fix it) and its transient case `IamUnreachable` (SPD-IAM down, no valid token left: wait and try
again after `retry_after`, never ask for a new login).
"""
