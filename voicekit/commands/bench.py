"""``voicekit bench``: latency of each stage over several turns, for one or more profiles;
``voicekit bench compare``: reports side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from voicekit.commands.chat import SetOption

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Time each stage of real turns from audio files; compare profiles and reports.",
    invoke_without_command=True,
)


@app.callback()
def bench(
    ctx: typer.Context,
    input: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--input", "-i", metavar="FILE", help="Audio of user speech; each utterance in it is a turn (repeatable)."
        ),
    ] = None,
    profile: Annotated[
        Optional[list[str]],
        typer.Option(
            "--profile", "-p", metavar="NAME", help="Profile to bench (repeatable: each hears the same turns)."
        ),
    ] = None,
    turns: Annotated[
        Optional[int],
        typer.Option("--turns", "-n", min=1, metavar="N", help="Turns per profile (default: each utterance once)."),
    ] = None,
    json_path: Annotated[
        Optional[Path], typer.Option("--json", metavar="FILE", help="Write the report as JSON here.")
    ] = None,
    plot_path: Annotated[
        Optional[Path],
        typer.Option("--plot", metavar="FILE", help="Draw each stage's spread per profile (.png, .svg, .pdf)."),
    ] = None,
    set_: SetOption = None,
) -> None:
    """Run conversation turns from audio files and report each stage's p50 / p95 / max.

    Each input is split into utterances by voice activity detection; a turn plays one
    utterance, then waits for the bot's whole answer. With several --profile options every
    profile hears the same utterances, one profile after the other.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not input:
        raise typer.BadParameter("give at least one --input FILE", param_hint="--input")
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from voicekit.bench import BenchRequest, run_bench, split_utterances
    from voicekit.errors import AudioFormatError

    profiles = list(dict.fromkeys(profile or [_default_profile()]))
    for path in input:
        if not path.is_file():
            raise AudioFormatError(f"--input {path}: no such file")
    if json_path is not None:
        _check_folder(json_path, "--json")
    if plot_path is not None:
        from voicekit.bench_plot import check_target

        check_target(plot_path)
    utterances = split_utterances(input)  # before anything else: a file with no speech stops here
    console = Console(highlight=False, emoji=False)
    request = BenchRequest(profiles=profiles, inputs=input, turns=turns, overrides=set_ or [])
    with Progress(
        TextColumn("[bold]bench[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("turns"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks = {name: progress.add_task(name, total=turns or len(utterances)) for name in profiles}

        def on_turn(name: str, done: int) -> None:
            progress.update(tasks[name], completed=done)

        report = asyncio.run(run_bench(request, on_turn=on_turn, utterances=utterances))
    runs = [run.__dict__ for run in report.runs]
    _print_runs(console, runs, report.turns_requested)
    if json_path is not None:
        json_path.write_text(report.to_json())
        console.print(f"[dim]report written to {json_path}[/]")
    if plot_path is not None:
        from voicekit.bench_plot import plot

        plot(runs, plot_path)
        console.print(f"[dim]plot written to {plot_path}[/]")
    short = [run for run in report.runs if run.status == "ended" and run.turns_completed < run.turns_requested]
    for run in short:
        console.print(
            f"[red]{run.profile}: only {run.turns_completed} of {run.turns_requested} turns completed[/]",
            soft_wrap=True,
        )
    if report.errors:  # the first failure is the command's one error line, with its exit code
        raise next(iter(report.errors.values()))
    if short:
        raise typer.Exit(1)


@app.command("compare")
def compare(
    reports: Annotated[
        list[Path],
        typer.Argument(metavar="REPORT...", help="bench --json reports, or metrics.json of recorded conversations."),
    ],
) -> None:
    """Print reports side by side: each stage's p50 / p95 per profile, and the change from the first."""
    from rich.console import Console

    from voicekit.bench import load_report, runs_of

    runs = [run for path in reports for run in runs_of(load_report(path), path.name)]
    if len(runs) < 2:
        raise typer.BadParameter("give reports that hold at least two runs between them", param_hint="REPORT...")
    _print_comparison(Console(highlight=False, emoji=False), runs)


def _default_profile() -> str:
    from voicekit.settings import settings

    return settings().profile


def _check_folder(path: Path, option: str) -> None:
    from voicekit.errors import ProfileError

    folder = path.expanduser().resolve().parent
    if not folder.is_dir():
        raise ProfileError(f"{option} {path}: the folder {folder} does not exist")


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _print_runs(console: Console, runs: list[dict[str, Any]], turns: int) -> None:
    from rich.table import Table

    from voicekit.report import stage_names

    for run in runs:
        backends = "  ".join(f"{k}={v}" for k, v in run["backends"].items())
        measured = len(run["turns"])
        note = f", {measured} measured" if measured != run["turns_completed"] else ""
        table = Table(title=f"{run['profile']}: {run['turns_completed']}/{turns} turns{note}  {backends}")
        for column in ("stage", "p50 ms", "p95 ms", "max ms", "n"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for stage in stage_names():
            entry = run["stages"].get(stage)
            if entry is not None:
                table.add_row(entry["label"], *(_ms(entry[k]) for k in ("p50", "p95", "max")), str(entry["count"]))
        console.print(table)


def _print_comparison(console: Console, runs: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from voicekit.report import stage_label, stage_names

    table = Table(title="p50 / p95 ms" + ("  (Δ p50 vs the first)" if len(runs) > 1 else ""))
    table.add_column("stage")
    for run in runs:
        table.add_column(f"{run['profile']}\n[dim]{run['source']}[/]", justify="right")
    first = runs[0]["stages"]
    for stage in stage_names():
        cells = []
        for index, run in enumerate(runs):
            entry = run["stages"].get(stage) or {}
            cell = f"{_ms(entry.get('p50'))} / {_ms(entry.get('p95'))}"
            base = (first.get(stage) or {}).get("p50")
            if index and base and entry.get("p50") is not None:
                delta = entry["p50"] - base
                shown = f"{delta:+.0f}" if abs(delta) >= 10 else f"{delta:+.1f}"
                cell += f"  [{'red' if delta > 0 else 'green'}]{shown} ({delta / base:+.0%})[/]"
            cells.append(cell)
        if any(c != "– / –" for c in cells):
            table.add_row(stage_label(stage), *cells)
    console.print(table)
