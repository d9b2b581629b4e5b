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
    name: Annotated[str, typer.Argument(metavar="NAME", help="Profile name, or path to a YAML file.")],
    overrides: SetOption = None,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Fill in every option the profile leaves to its default.")
    ] = False,
) -> None:
    """Print a profile as YAML: extends merged, overrides applied, secrets hidden.

    With --defaults every backend option, turns and audio setting the profile does not set
    is printed with its default value (see 'voicekit plugins show NAME' for what each means).
    """
    import yaml

    from voicekit.profiles import find_profile, merged_document, redacted

    path = find_profile(name)
    data = merged_document(path, overrides or ())
    if defaults:
        data = _with_defaults(data)
    data = redacted(data)
    typer.echo(f"# {path}" + ("  (every default filled in)" if defaults else ""))
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False), nl=False)


def _with_defaults(data: dict[str, object]) -> dict[str, object]:
    """``data`` with each backend's option defaults (nested backends and fallbacks too), turns and audio."""
    from voicekit.profiles import AudioConfig, TurnsConfig
    from voicekit.registry import load_registry

    registry = load_registry()
    filled = dict(data)
    for role in ("stt", "llm", "output"):
        section = filled.get(role)
        if isinstance(section, dict):
            filled[role] = _filled_spec(registry, role, section)
    for key, model in (("turns", TurnsConfig), ("audio", AudioConfig)):
        given = filled.get(key)
        filled[key] = {**model.model_validate({}).model_dump(mode="json"), **(given if isinstance(given, dict) else {})}
    return filled


def _filled_spec(registry: object, role: str, spec: dict[str, object], depth: int = 0) -> dict[str, object]:
    from voicekit.errors import VoicekitError
    from voicekit.option_docs import defaults
    from voicekit.profiles.validate import nested_options

    use = spec.get("use")
    try:
        cls = registry.backend_class(role, str(use))  # type: ignore[attr-defined]
    except VoicekitError:
        return spec  # 'profiles validate' says what is wrong with it
    core = {k: spec[k] for k in ("use",) if k in spec}
    options = {k: v for k, v in spec.items() if k not in ("use", "retry", "fallback")}
    filled: dict[str, object] = {**core, **defaults(cls), **options}
    for attribute, (key, nested_role) in nested_options(cls.Options).items():
        nested = filled.get(key, filled.get(attribute))
        if isinstance(nested, str):
            nested = {"use": nested}
        if isinstance(nested, dict) and depth < 8:
            filled[key] = _filled_spec(registry, nested_role, nested, depth + 1)
    if depth == 0:  # a role section's retry policy (fallbacks inherit it; nested backends take none)
        from voicekit.options import RetryPolicy

        given = spec.get("retry")
        filled["retry"] = {**RetryPolicy.model_validate({}).model_dump(), **(given if isinstance(given, dict) else {})}
    fallback = spec.get("fallback")
    if isinstance(fallback, list):
        filled["fallback"] = [
            _filled_spec(registry, role, item, depth + 1) if isinstance(item, dict) else item for item in fallback
        ]
    return filled


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
