"""``voicekit profiles``: list, show and validate profiles.

Only typer is imported at module level: ``voicekit --help`` imports this module.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="List, show and validate profiles.", no_args_is_help=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a value, e.g. stt.model=nova-2 (repeatable)."),
]


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the profiles that can be used by name, and where each one lives."""
    import json

    from voicekit.profiles import list_profiles

    infos = list_profiles()
    if as_json:
        rows = [
            {
                "name": i.name,
                "origin": i.origin,
                "path": str(i.path),
                "description": i.description,
                "abstract": i.abstract,
                "error": i.error,
            }
            for i in infos
        ]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("name", "origin", "description", box=None, pad_edge=False)
    for info in infos:
        if info.error:
            description = Text(f"cannot load: {info.error}", style="red")
        else:
            description = Text(info.description)
            if info.abstract:
                description.append(" (for extends: only)", style="dim")
        table.add_row(info.name, info.origin, description)
    Console().print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Profile name, or path to a YAML file.")],
    overrides: SetOption = None,
) -> None:
    """Print a profile as YAML: extends merged, overrides applied, secrets hidden."""
    import yaml

    from voicekit.profiles import find_profile, merged_document, redacted

    path = find_profile(name)
    data = redacted(merged_document(path, overrides or ()))
    typer.echo(f"# {path}")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False), nl=False)


@app.command()
def validate(
    names: Annotated[
        list[str] | None, typer.Argument(help="Profile names or paths.", show_default=False, metavar="[NAME]...")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Validate every profile that `list` shows.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on a missing SDK, key or ${NAME} variable too, not only warn.")
    ] = False,
    overrides: SetOption = None,
) -> None:
    """Check profiles against the installed backends; print each problem on one line.

    An error (unknown backend or option, bad value, a role missing) fails the command. What
    this machine lacks for the profile (its backends' SDKs, their API keys, the variables its
    ${NAME} placeholders name) is a warning, or an error with --strict: either way a
    profile is "ok" only when `voicekit chat` can start with it here.
    """
    from voicekit.profiles import list_profiles
    from voicekit.readiness import profile_readiness
    from voicekit.registry import load_registry

    targets: list[tuple[str, str]] = [(n, n) for n in names or ()]
    if all_:
        targets += [(info.name, str(info.path)) for info in list_profiles()]
    if not targets:
        raise typer.BadParameter("name at least one profile, or use --all", param_hint="NAMES")
    registry = load_registry()
    failed = False
    for label, target in targets:
        report = profile_readiness(target, registry, overrides or ())
        for problem in report.errors:
            typer.echo(problem)
        kind = "error" if strict else "warning"
        for warning in report.warnings:
            typer.echo(f"{kind}: {warning}")
        if report.errors:
            failed = True
        elif report.warnings:
            failed = failed or strict
            count = len(report.warnings)
            typer.echo(
                f"{label}: valid, but not ready here ({count} {'problem' if count == 1 else 'problems'} above; "
                "see 'voicekit doctor')"
            )
        else:
            typer.echo(f"{label}: ok")
    if failed:
        raise typer.Exit(1)
