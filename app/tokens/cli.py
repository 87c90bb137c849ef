"""`prodpanel keys …`: the token-encryption keys."""

from __future__ import annotations

from collections import Counter

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.audit.services import record
from app.extensions import db
from app.tokens.crypto import Keyring
from app.tokens.models import SEALED_KINDS, UserToken
from app.tokens.services import prune_unused_keys, rotate_keys
from app.tokens.vault import keyring

keys = AppGroup("keys", help="Token-encryption keys (instance/token_key, instance/token_keys.json).")


@keys.command("rotate")
@click.option(
    "--prune", is_flag=True, help="Afterwards remove keys no stored token uses (the base key stays)."
)
def keys_rotate(prune: bool) -> None:
    """Generate a new key, make it current and re-encrypt every stored token with it."""
    count, dropped = rotate_keys()
    record("keys.rotated", target="token_keys", details={"tokens": count, "dropped": dropped}, user=None)
    db.session.commit()  # the tokens are sealed under the new key before any old key goes
    pruned = prune_unused_keys() if prune else 0
    if pruned:
        record("keys.pruned", target="token_keys", details={"keys": pruned}, user=None)
        db.session.commit()
    click.echo(
        f"New token key is current; {count} stored token(s) re-encrypted; {pruned} old key(s) removed."
    )
    if dropped:
        click.echo(f"{dropped} user(s) had tokens sealed under a lost key: dropped, they must log in again.")


@keys.command("status")
def keys_status() -> None:
    """Show the key ids and how many stored tokens each one seals."""
    ring = keyring()
    used: Counter[bytes] = Counter()
    for row in db.session.scalars(select(UserToken)):
        for kind in SEALED_KINDS:
            blob = getattr(row, f"{kind}_sealed")
            if blob is not None:
                used[Keyring.key_id_of(blob)] += 1
    for kid in ring.keys:
        mark = "current" if kid == ring.current else "       "
        click.echo(f"{kid.hex()} {mark} {used.get(kid, 0)} token(s)")
    for kid in set(used) - set(ring.keys):
        click.echo(f"{kid.hex()} MISSING {used[kid]} token(s) cannot be decrypted")
