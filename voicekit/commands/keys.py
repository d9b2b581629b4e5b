"""``voicekit keys``: store API keys, see which are set and where from; never their values.

Keys are kept in ``keys.json`` in the user config directory, readable by you only
(mode 0600). A variable in the environment (or a ``.env`` file in the working
directory) always wins over a stored key.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

app = typer.Typer(help="Store API keys; list which are set and where from (never their values).", no_args_is_help=True)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="The key's variable (DEEPGRAM_API_KEY), or a backend that reads one (deepgram)."
    ),
]


def _variable(name: str) -> str:
    """``name`` itself, or the key variable of the backend called ``name``."""
    from voicekit.keys import check_name

    if name.isupper():
        return check_name(name)
    from voicekit.registry import load_registry
    from voicekit.roles import ROLES

    registry = load_registry()
    for role in ROLES:
        if name in registry.backends[role]:
            variable = getattr(registry.backend_class(role, name), "api_key_env", None)
            if not variable:
                raise typer.BadParameter(f"backend '{name}' reads no API key variable", param_hint="NAME")
            return str(variable)
    return check_name(name)


@app.command("set")
def set_(
    name: NameArg,
    value: Annotated[
        Optional[str],
        typer.Option("--value", metavar="TEXT", help="The key (avoid: it stays in your shell history)."),
    ] = None,
) -> None:
    """Store a key; you are asked for it without echo (or it is read from standard input)."""
    import sys

    from voicekit.keys import set_key

    variable = _variable(name)
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"{variable}", hide_input=True, prompt_suffix=": ")
        else:
            value = sys.stdin.readline().rstrip("\r\n")
    value = value.strip()
    if not value:
        raise typer.BadParameter("the key is empty; nothing stored", param_hint="NAME")
    path = set_key(variable, value)
    typer.echo(f"{variable} stored in {path}")
    import os

    if os.environ.get(variable) and os.environ[variable] != value:
        typer.echo(f"note: {variable} is also set in the environment, which wins over the stored key", err=True)


@app.command("remove")
def remove(name: NameArg) -> None:
    """Forget a stored key (the environment is left alone)."""
    from voicekit.keys import keys_path, remove_key

    variable = _variable(name)
    if not remove_key(variable):
        typer.echo(f"{variable} is not stored in {keys_path()}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{variable} removed from {keys_path()}")


@app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every key a backend reads, and stored ones: set or not, where from, which backends use it."""
    import json

    from voicekit.keys import lookup, stored_keys
    from voicekit.registry import load_registry
    from voicekit.roles import ROLES

    used_by: dict[str, list[str]] = {}
    registry = load_registry()
    for role in ROLES:
        for entry in registry.backends[role].values():
            try:
                cls = entry.load()
            except Exception:  # noqa: BLE001 - a broken plugin is 'plugins list''s business
                continue
            for variable in (getattr(cls, "api_key_env", None), *getattr(cls, "api_key_fallback_envs", ())):
                if variable:
                    used_by.setdefault(variable, [])
                    if entry.name not in used_by[variable]:
                        used_by[variable].append(entry.name)
    for variable in stored_keys():
        used_by.setdefault(variable, [])
    rows: list[dict[str, Any]] = []
    for variable in sorted(used_by):
        found = lookup(variable)
        rows.append({"name": variable, "set": found is not None, "source": found.source if found else None,
                     "backends": used_by[variable]})  # fmt: skip
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "set", "from", "used by", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row["name"], "yes" if row["set"] else "no", row["source"] or "-", ", ".join(row["backends"]))
    Console(highlight=False, emoji=False).print(table)


@app.command("path")
def path() -> None:
    """Print where stored keys are kept."""
    from voicekit.keys import keys_path

    typer.echo(str(keys_path()))
