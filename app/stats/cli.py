"""`prodpanel stats rebuild`: recompute the per-day summary from the tasks."""

import click
from flask.cli import AppGroup

from app.extensions import db
from app.stats import summary

stats = AppGroup("stats", help="The statistics' per-day summary.")


@stats.command("rebuild")
def rebuild() -> None:
    """Recompute the summary from the stored tasks (after upgrading a database that had tasks)."""
    counted = summary.rebuild()
    db.session.commit()
    click.echo(f"Summary rebuilt from {counted} tasks.")
