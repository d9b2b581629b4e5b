"""``voicekit plugins``: every backend, whether it can run here, where it comes from, its options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from voicekit.registry import BackendEntry, Registry

app = typer.Typer(
    help="Installed plugins, the backends they provide, and each backend's options.", no_args_is_help=True
)


def _row(registry: Registry, entry: BackendEntry) -> dict[str, Any]:
    """One backend as ``plugins list`` shows it: status from :mod:`voicekit.readiness`, never an SDK import."""
    from voicekit.errors import VoicekitError
    from voicekit.readiness import backend_readiness

    row: dict[str, Any] = {
        "role": entry.role,
        "name": entry.name,
        "plugin": entry.plugin,
        "origin": registry.origin(entry.plugin),
    }
    conflict = registry.conflicts.get((entry.role, entry.name))
    if conflict is not None:
        return {**row, "status": "conflict", "detail": conflict, "pip": None}
    try:
        cls = entry.load()
    except VoicekitError as exc:
        return {**row, "status": "broken", "detail": str(exc), "pip": None}
    ready = backend_readiness(cls, name=entry.name)
    if not ready.sdk.ok:
        return {**row, "status": "missing", "detail": f"needs {', '.join(ready.sdk.missing)}", "pip": ready.sdk.pip}
    detail = f"voicekit[{ready.sdk.extra}]" if ready.sdk.extra else "no extra needed"
    return {**row, "status": "installed", "detail": detail, "pip": None}


@app.command("list")
def list_plugins(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every backend: installed or missing (with the pip command), where it comes from, conflicts."""
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from voicekit.registry import ROLES, load_registry

    registry = load_registry()
    rows = [
        _row(registry, entry)
        for role in ROLES
        for entry in sorted(registry.backends[role].values(), key=lambda e: e.name)
    ]
    if json_out:
        conflicts = list(registry.conflicts.values())
        typer.echo(json.dumps({"backends": rows, "broken": registry.broken, "conflicts": conflicts}, indent=2))
        return
    console = Console(highlight=False, emoji=False)
    table = Table("role", "backend", "origin", "status", "to install / why", box=None, pad_edge=False)
    styles = {"installed": "green", "missing": "yellow", "broken": "red", "conflict": "red"}
    for row in rows:
        table.add_row(
            row["role"],
            row["name"],
            row["origin"],
            Text(row["status"], style=styles[row["status"]]),
            Text(row["pip"] or row["detail"], style="dim" if row["status"] == "installed" else ""),
        )
    console.print(table)
    for name, error in registry.broken.items():
        console.print(f"[red]broken plugin[/] {escape(name)}: {escape(error)}", soft_wrap=True)
    console.print("[dim]options of a backend: voicekit plugins show NAME[/]")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Backend name, e.g. deepgram.")],
    role: Annotated[
        Optional[str], typer.Option("--role", metavar="ROLE", help="stt, llm or output, when NAME has several.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everything about one backend: what it is, what it needs, and every option it takes."""
    import json
    from dataclasses import asdict

    from voicekit.readiness import backend_readiness
    from voicekit.registry import ROLES, load_registry

    registry = load_registry()
    roles = [r for r in ROLES if name in registry.backends[r] and (role is None or r == role)]
    if not roles:
        registry.entry(role or _guess_role(registry, name), name)  # raises "unknown ... (did you mean ...)"
    if len(roles) > 1:
        raise typer.BadParameter(f"'{name}' is a backend of {', '.join(roles)}: pick one with --role")
    entry = registry.entry(roles[0], name)
    cls = entry.load()
    ready = backend_readiness(cls, name=name)
    from voicekit.option_docs import option_docs

    options = option_docs(cls)
    caps = cls.capabilities
    info = {
        "name": name,
        "role": entry.role,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "origin": registry.origin(entry.plugin),
        "about": _about(cls),
        "extra": ready.sdk.extra,
        "sdk": str(ready.sdk),
        "key": str(ready.key) if ready.key.needed else None,
        "capabilities": asdict(caps),
        "options": [asdict(o) for o in options],
    }
    if json_out:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False, default=str))
        return
    _print_show(info, options)


def _guess_role(registry: Registry, name: str) -> str:
    import difflib

    from voicekit.registry import ROLES

    for role in ROLES:
        if difflib.get_close_matches(name, registry.names(role), n=1):
            return str(role)
    return "stt"


def _about(cls: type[Any]) -> str:
    doc = (cls.__doc__ or "").strip().replace("``", "")
    return " ".join(doc.split("\n\n")[0].split())


def _print_show(info: dict[str, Any], options: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, emoji=False)
    console.print(Text.assemble((f"{info['role']}: {info['name']}", "bold"), f"  ({info['origin']}, {info['class']})"))
    if info["about"]:
        console.print(info["about"], soft_wrap=True, markup=False)
    console.print(Text(f"SDK: {info['sdk']}"))
    if info["key"]:
        console.print(Text(f"key: {info['key']}"))
    caps = info["capabilities"]
    facts = [k.replace("_", " ") for k in ("streaming", "interim_results", "accepts_audio", "produces_audio",
                                           "remote_session") if caps.get(k)]  # fmt: skip
    languages = ", ".join(caps.get("languages") or ()) or "any"
    rates = ", ".join(str(r) for r in caps.get("sample_rates") or ())
    console.print(Text(f"can: {', '.join(facts) or '-'}; languages: {languages}; sample rates: {rates} Hz"))
    table = Table("option", "type", "default", "range", "description", box=None, pad_edge=False, title_justify="left")
    for option in options:
        default = "(required)" if option.required else _shown(option.default)
        about = option.description + (f" (env: {option.env})" if option.env else "")
        table.add_row(*(Text(cell) for cell in (option.name, option.type, default, option.range, about)))
    console.print(table)
    extra = f"pip install 'voicekit[{info['extra']}]'" if info["extra"] else "nothing to install"
    console.print(Text(f"extra: {extra}", style="dim"))


def _shown(value: Any) -> str:
    import json

    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
