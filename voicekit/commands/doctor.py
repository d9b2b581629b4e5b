"""``voicekit doctor``: can ``voicekit chat`` start here, and if not, what to do about it.

For each backend of the profile(s): its SDK (or the pip command that installs it), its
API key and where it comes from, the ``${NAME}`` variables the profile reads; then the
settings, the ledger and the audio devices. ``--online`` asks each service for its models
or voices (one authenticated call each) and checks the configured one is there. The exit
code is 1 when something would stop ``chat``; warnings (no microphone: ``--input``
still works) do not fail it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from voicekit.readiness import ProfileReadiness
    from voicekit.registry import Registry


def doctor(
    profile: Annotated[
        Optional[str],
        typer.Option("--profile", "-p", metavar="NAME", help="Profile to check (default: the configured one)."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Check every profile that 'profiles list' shows.")] = False,
    online: Annotated[
        bool, typer.Option("--online", help="Also ask each service for its models or voices, with your key.")
    ] = False,
) -> None:
    """Check that chat can start: SDKs, API keys, ${NAME} variables, settings, ledger and devices."""
    from rich.console import Console

    from voicekit.registry import load_registry
    from voicekit.settings import settings

    if profile is not None and all_:
        raise typer.BadParameter("give --profile or --all, not both")
    console = Console(highlight=False, emoji=False)
    errors: list[str] = []
    warnings: list[str] = []
    try:
        names = _targets(profile or settings().profile, all_)
    except Exception as exc:  # noqa: BLE001 - a bad config.toml is a finding, not a crash
        errors.append(str(exc))
        names = [profile or "offline"]
    registry = load_registry()
    for name in names:
        errors += _check_profile(console, registry, name, online)
    console.print("[bold]this machine[/]")
    for ok, line in _machine_checks():
        if ok is None:
            warnings.append(line)
        elif not ok:
            errors.append(line)
        _mark(console, ok, line)
    console.print()
    if errors:
        console.print(f"[red]{len(errors)} {'problem stops' if len(errors) == 1 else 'problems stop'} chat:[/]")
        for line in errors:
            console.print(f"  {line}", soft_wrap=True, markup=False)
        raise typer.Exit(1)
    note = f" ({len(warnings)} {'warning' if len(warnings) == 1 else 'warnings'})" if warnings else ""
    console.print(f"[green]ready:[/] voicekit chat can start{note}")


def _targets(profile: str, all_: bool) -> list[str]:
    if not all_:
        return [profile]
    from voicekit.profiles import list_profiles

    return [str(info.path) for info in list_profiles() if not info.abstract]


def _check_profile(console: Console, registry: Registry, name: str, online: bool) -> list[str]:
    """Print what the profile needs and has here; the problems that would stop chat."""
    from voicekit.readiness import profile_readiness

    report = profile_readiness(name, registry)
    label = report.path.stem if report.path is not None else name
    console.print(f"[bold]profile {label}[/]" + (f"  [dim]{report.path}[/]" if report.path else ""))
    errors = list(report.errors)
    for line in report.errors:
        _mark(console, False, line)
    for backend in report.backends:
        sdk = f"SDK {backend.sdk}" if backend.sdk.extra else "nothing to install"
        _mark(console, backend.sdk.ok, f"{backend.path}: {backend.name}: {sdk}")
        if backend.key.needed:
            _mark(console, backend.key.ok, f"{backend.path}: {backend.name}: key {backend.key}")
    for line in report.missing_variables:
        _mark(console, False, line)
    errors += report.warnings
    if online and not errors:
        for line, ok in _online(report, registry):
            _mark(console, ok, line)
            if not ok:
                errors.append(line)
    elif online:
        _mark(console, None, "online checks skipped until the problems above are fixed")
    console.print()
    return errors


def _online(report: ProfileReadiness, registry: Registry) -> list[tuple[str, bool]]:
    """One line per backend whose service was asked: what it answered."""
    import asyncio

    from voicekit.commands.service_models import OnlineCheck, fetch_models
    from voicekit.profiles import load_profile
    from voicekit.roles import BackendContext

    assert report.path is not None
    profile = load_profile(report.path)
    backends = []
    for role in ("stt", "llm", "output"):
        spec = profile.spec(role)
        for item in spec.chain() if spec is not None else ():
            context = BackendContext(language=profile.language, path=item.path)
            backends.append(
                (".".join(map(str, item.path)), registry.create(role, item.use, dict(item.options), context))
            )

    async def ask_all() -> list[OnlineCheck]:
        return list(await asyncio.gather(*(fetch_models(b, path=p) for p, b in backends)))

    lines = []
    for check in asyncio.run(ask_all()):
        problem = check.problem()
        if problem is not None:
            lines.append((problem, False))
        elif check.models is not None:  # (a backend that cannot list, an offline engine, is left out)
            what = f"'{check.chosen}' offered" if check.chosen else "reachable"
            lines.append((f"{check.path}: {check.backend}: online: {what} ({len(check.models)} listed)", True))
    return lines


def _machine_checks() -> list[tuple[bool | None, str]]:
    """(ok, line) for the settings, the ledger, the history folder and the audio devices; ok None: a warning."""
    results: list[tuple[bool | None, str]] = []
    try:
        from voicekit.settings import config_path, settings

        values = settings()
        where = config_path()
        results.append((True, f"settings: {where if where.is_file() else 'defaults (no ' + str(where) + ')'}"))
    except Exception as exc:  # noqa: BLE001 - reported as a finding
        results.append((False, f"settings: {exc}"))
        return results
    results.append(_ledger_check())
    history = values.history_dir
    if values.history:
        results.append(_writable(history, "history"))
    results += _device_checks(values.input_device, values.output_device)
    return results


def _ledger_check() -> tuple[bool, str]:
    from voicekit.ledger.ledger import SessionLedger

    try:
        ledger = SessionLedger()
        try:
            ledger.conversations(limit=1)
            where = ledger.where
        finally:
            ledger.close()
    except Exception as exc:  # noqa: BLE001 - reported as a finding
        return False, f"ledger: {exc}"
    return True, f"ledger: {where}"


def _writable(path: object, what: str) -> tuple[bool | None, str]:
    import os
    from pathlib import Path

    folder = Path(str(path))
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if os.access(probe, os.W_OK):
        return True, f"{what}: {folder}"
    return None, f"{what}: {folder} is not writable (set history = false in config.toml, or chat --no-history)"


def _device_checks(input_device: str | None, output_device: str | None) -> list[tuple[bool | None, str]]:
    from voicekit.errors import VoicekitError

    try:
        from voicekit.audio.devices import list_devices

        devices = list_devices()
    except VoicekitError as exc:
        return [(None, f"audio devices: {exc} (files work: chat --input FILE.wav --output FILE.wav)")]
    lines: list[tuple[bool | None, str]] = []
    for kind, wanted, flag in (
        ("microphone", input_device, "is_default_input"),
        ("speaker", output_device, "is_default_output"),
    ):
        channels = "inputs" if kind == "microphone" else "outputs"
        usable = [d for d in devices if getattr(d, channels) > 0]
        if wanted:
            match = [d for d in usable if wanted == str(d.index) or wanted.lower() in d.name.lower()]
        else:
            match = [d for d in usable if getattr(d, flag)] or usable[:1]
        if match:
            lines.append((True, f"{kind}: {match[0].name} (index {match[0].index})"))
        else:
            hint = "--input FILE.wav or --text" if kind == "microphone" else "--output FILE.wav"
            named = f" matching '{wanted}'" if wanted else ""
            lines.append((None, f"{kind}: none found{named}; chat needs {hint}"))
    return lines


def _mark(console: Console, ok: bool | None, line: str) -> None:
    from rich.text import Text

    symbol, style = {True: ("ok  ", "green"), False: ("FAIL", "red"), None: ("warn", "yellow")}[ok]
    console.print(Text.assemble("  ", (symbol, style), "  ", line), soft_wrap=True)
