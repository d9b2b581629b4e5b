"""``voicekit bench``: latency of each stage over several turns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from voicekit.commands.chat import SetOption


def bench(
    input: Annotated[list[Path], typer.Option("--input", "-i", help="WAV file(s) of user speech; used in turn.")],
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name or path.")] = "offline",
    turns: Annotated[int, typer.Option("--turns", "-n", min=1, help="Number of turns.")] = 3,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON here.")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", help="Draw each turn's stages to a PNG.")] = None,
    set_: SetOption = None,
) -> None:
    """Run conversation turns from audio files and report each stage's p50 / p95 / max."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from voicekit.bench import BenchRequest, plot, run_bench

    console = Console(highlight=False, emoji=False)
    request = BenchRequest(profile=profile, inputs=input, turns=turns, overrides=set_ or [])
    with Progress(
        TextColumn("[bold]bench[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(profile, total=turns)
        report = asyncio.run(run_bench(request, on_turn=lambda done: progress.update(task, completed=done)))
    table = Table(
        title=f"{profile}: {report.turns_completed}/{turns} turns  "
        + "  ".join(f"{k}={v}" for k, v in report.backends.items())
    )
    for column in ("stage", "p50 ms", "p95 ms", "max ms", "n"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in report.stages.values():
        table.add_row(stage["label"], *(_ms(stage[key]) for key in ("p50", "p95", "max")), str(stage["count"]))
    console.print(table)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(report.to_json())
        console.print(f"[dim]report written to {json_path}[/]")
    if plot_path is not None:
        plot(report, plot_path)
        console.print(f"[dim]plot written to {plot_path}[/]")
    if report.turns_completed < turns:
        console.print(f"[red]only {report.turns_completed} of {turns} turns completed[/]")
        raise typer.Exit(1)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
