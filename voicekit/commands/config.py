"""``voicekit config``: voicekit's own settings (``config.toml`` and ``VOICEKIT_*`` variables)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="voicekit's own settings: config.toml and VOICEKIT_* variables.", no_args_is_help=True)


@app.command("show")
def show(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every setting, its value and where it comes from (a variable, config.toml or the default)."""
    import json

    from voicekit.settings import config_path, describe, settings

    rows = describe(settings())
    if json_out:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    path = config_path()
    console = Console(highlight=False, emoji=False)
    console.print(f"# {path}" + ("" if path.is_file() else " (not there yet: every value is a default or a variable)"))
    table = Table("setting", "value", "from", "what", box=None, pad_edge=False)
    for key, row in rows.items():
        value = "-" if row["value"] is None else str(row["value"])
        table.add_row(key, value, row["source"], row["description"])
    console.print(table)


@app.command("path")
def path() -> None:
    """Print where config.toml is (or would be)."""
    from voicekit.settings import config_path

    typer.echo(str(config_path()))
