"""``patrolgrid config``: every setting with its environment variable, value and meaning."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy.engine import make_url

from api.cli.common import console, settings
from geo.settings import Settings


def show_config() -> None:
    """Print every setting: environment variable, current value, meaning."""
    current = settings()
    table = Table(title="patrolgrid settings")
    for column in ("variable", "value", "meaning"):
        table.add_column(column)
    for name, field in Settings.model_fields.items():
        variable = "DATABASE_URL" if name == "database_url" else f"PATROLGRID_{name.upper()}"
        value = getattr(current, name)
        if name == "database_url":
            value = make_url(value).render_as_string(hide_password=True)
        table.add_row(variable, str(value), field.description or "")
    console.print(table)
