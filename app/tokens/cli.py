"""`prodpanel keys …`: the token-encryption keys."""

from __future__ import annotations

import click

from app.extensions import db


@click.group("keys")
def keys() -> None:
    """Token-encryption keys (instance/token_key, instance/token_keys.json)."""


@keys.command("rotate")
@click.option(
    "--prune", is_flag=True, help="Afterwards remove keys no stored token uses (the base key stays)."
)
@click.pass_context
def keys_rotate(ctx: click.Context, prune: bool) -> None:
    """Generate a new key, make it current and re-encrypt every stored token with it."""
    from app.audit.services import record
    from app.cli import build_app
    from app.tokens.services import rotate_keys

    app = build_app(ctx)
    with app.app_context():
        count, pruned, dropped = rotate_keys(prune=prune)
        details = {"tokens": count, "pruned": pruned, "dropped": dropped}
        record("keys.rotated", target="token_keys", details=details, user=None)
        db.session.commit()
        click.echo(
            f"New token key is current; {count} stored token(s) re-encrypted; {pruned} old key(s) removed."
        )
        if dropped:
            click.echo(
                f"{dropped} user(s) had tokens sealed under a lost key: dropped, they must log in again."
            )


@keys.command("status")
@click.pass_context
def keys_status(ctx: click.Context) -> None:
    """Show the key ids and how many stored tokens each one seals."""
    from collections import Counter

    from sqlalchemy import select

    from app.cli import build_app
    from app.tokens.crypto import Keyring
    from app.tokens.models import SEALED_KINDS, UserToken
    from app.tokens.services import keyring

    app = build_app(ctx)
    with app.app_context():
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
        unknown = set(used) - set(ring.keys)
        for kid in unknown:
            click.echo(f"{kid.hex()} MISSING {used[kid]} token(s) cannot be decrypted")
