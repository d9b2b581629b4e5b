"""``voicekit plugins``: what is installed, and what is broken."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Installed plugins and the backends they provide.", no_args_is_help=True)


def _sdk_status(entry: object) -> str:
    """'ok', 'needs voicekit[extra]' or the load error, without importing any vendor SDK."""
    from voicekit.errors import VoicekitError

    try:
        cls = entry.load()  # type: ignore[attr-defined]
    except VoicekitError as exc:
        return f"broken: {exc}"
    return f"extra: {cls.extra}" if getattr(cls, "extra", None) else "built in"


@app.command("list")
def list_plugins(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List plugins, their backends, and plugins that failed to load."""
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from voicekit.registry import ROLES, load_registry

    registry = load_registry()
    rows = [
        {"role": role, "name": entry.name, "plugin": entry.plugin, "status": _sdk_status(entry)}
        for role in ROLES
        for entry in sorted(registry.backends[role].values(), key=lambda e: e.name)
    ]
    conflicts = [message for message in registry.conflicts.values()]
    if json_out:
        typer.echo(json.dumps({"backends": rows, "broken": registry.broken, "conflicts": conflicts}, indent=2))
        return
    console = Console(highlight=False, emoji=False)
    table = Table("role", "backend", "plugin", "status")
    for row in rows:
        table.add_row(*(Text(row[key]) for key in ("role", "name", "plugin", "status")))
    console.print(table)
    for name, error in registry.broken.items():
        console.print(f"[red]broken plugin[/] {escape(name)}: {escape(error)}")
    for message in conflicts:
        console.print(f"[red]conflict:[/] {escape(message)}")
