"""``voicekit sessions``: past conversations, and the billable remote sessions still open.

``list`` shows the ledger's recent conversations and every registered backend's active
remote sessions (HeyGen, LiveAvatar, ...), marking *orphans*: sessions whose process
ended without closing them (it stopped its heartbeat, or it ran on this host and is
gone). With a PostgreSQL ledger (``VOICEKIT_LEDGER_URL``) that is every host of the
fleet. ``close`` stops sessions by id, all of them (``--all``) or the orphans
(``--stale``); a session the service no longer knows counts as closed, so running it
twice is harmless.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from voicekit import session_admin

app = typer.Typer(help="Conversations and billable remote sessions.", no_args_is_help=True)

BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="Only this backend's sessions (heygen, ...).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
StaleAfterOpt = Annotated[
    Optional[float],
    typer.Option(
        "--stale-after",
        metavar="SECONDS",
        min=0.001,
        help="A session without a heartbeat for this long is an orphan (default: VOICEKIT_STALE_AFTER_S, else 90).",
    ),
]


@app.command("list")
def list_sessions(
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="How many recent conversations to show.", min=1)] = 20,
    stale_after: StaleAfterOpt = None,
) -> None:
    """Recent conversations and the open remote sessions of every avatar service (orphans marked)."""
    import asyncio
    import json

    from voicekit import session_admin

    report = asyncio.run(session_admin.report(backend, limit, stale_after))
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "conversations": report.conversations,
                    "remote_sessions": [asdict(v) for v in report.sessions],
                    "errors": report.errors,
                },
                indent=2,
            )
        )
        return
    _print_report(report)


def _when(ts: float | None) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _age(ts: float | None) -> str:
    import time

    if not ts:
        return "-"
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _print_report(report: session_admin.Report) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    if report.conversations:
        table = Table(
            "conversation",
            "profile",
            "started",
            "turns",
            "status",
            title="Conversations",
            box=None,
            title_justify="left",
        )
        table.columns[0].no_wrap = True
        for c in report.conversations:
            status = f"[red]{c['status']}[/]" if c["status"] in ("died", "failed") else c["status"]
            table.add_row(c["id"], escape(c["profile"]), _when(c["started_at"]), str(c["turns"]), status)
        console.print(table)
    else:
        console.print("no conversations yet")
    if report.sessions:
        table = Table(title="Remote sessions", box=None, title_justify="left")
        for name in ("backend", "remote id", "status", "age", "conversation"):
            table.add_column(name, no_wrap=True)  # ids are copied into `sessions close`: never cut them
        table.add_column("note")
        for v in report.sessions:
            note = (
                f"[red]orphan[/] ({escape(v.orphan_reason or 'its process ended')})" + (f"; {v.note}" if v.note else "")
                if v.orphaned
                else v.note
            )
            table.add_row(v.backend, v.remote_id or "-", v.status, _age(v.created_at), v.conversation_id or "-", note)
        console.print(table)
    else:
        console.print("no open remote sessions")
    for name, error in report.errors.items():
        console.print(f"[yellow]{escape(name)}:[/] not checked: {escape(error)}", soft_wrap=True)
    if any(v.orphaned for v in report.sessions):
        console.print("close orphans with: voicekit sessions close --stale")


@app.command("close")
def close(
    ids: Annotated[Optional[list[str]], typer.Argument(help="Session ids (remote or ledger ids).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Close every open remote session.")] = False,
    stale: Annotated[
        bool,
        typer.Option(
            "--stale",
            help="Close orphans: sessions whose process ended or stopped its heartbeat, on any host.",
        ),
    ] = False,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    stale_after: StaleAfterOpt = None,
) -> None:
    """Close remote sessions; one the service no longer knows counts as closed."""
    import json

    chosen = sum((bool(ids), all_, stale))
    if chosen != 1:
        raise typer.BadParameter("give session ids, or --all, or --stale (one of them)")
    import asyncio

    from voicekit import session_admin

    results = asyncio.run(session_admin.close(list(ids or []), all_, stale, backend, stale_after))
    if json_out:
        typer.echo(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            typer.echo(r.message, err=not r.ok)
        if not results:
            typer.echo("nothing to close")
    if any(not r.ok for r in results):
        raise typer.Exit(1)


@app.command("show")
def show(
    conversation_id: Annotated[
        str, typer.Argument(metavar="ID", help="Conversation id from 'sessions list' (a unique prefix is enough).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """A past conversation: what was said, when (seconds from its start), how it ended, each stage's timings."""
    import json

    from voicekit.errors import VoicekitError
    from voicekit.history import find, read

    folder = find(conversation_id)
    if folder is None:
        raise VoicekitError(
            f"no history of conversation '{conversation_id}' (kept unless chat ran with --no-history or "
            "history = false); 'voicekit sessions list' shows the recent ids"
        )
    metrics, lines = read(folder)
    if json_out:
        typer.echo(json.dumps({"metrics": metrics, "transcript": lines}, indent=2, ensure_ascii=False))
        return
    _print_conversation(folder.name, metrics, lines)


def _print_conversation(cid: str, metrics: dict[str, Any] | None, lines: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, emoji=False)
    if metrics is None:
        console.print(Text(f"conversation {cid}: no metrics.json (still running, or its process died)", style="yellow"))
    else:
        status = metrics.get("status", "?")
        head = Text.assemble(
            (f"conversation {cid}", "bold"),
            f"  profile {metrics.get('profile', '?')}  started {_when(metrics.get('started_at'))}  ",
            (status, "red" if status == "failed" else ""),
        )
        console.print(head)
        if metrics.get("reason"):
            console.print(Text(f"  reason: {metrics['reason']}", style="red" if status == "failed" else "yellow"))
        if metrics.get("backends"):
            console.print(Text("  " + "  ".join(f"{k}={v}" for k, v in metrics["backends"].items()), style="dim"))
    for line in lines:
        text = _transcript_line(line)
        if text is not None:
            console.print(text, soft_wrap=True)
    if metrics is not None and metrics.get("turns"):
        table = Table("stage", box=None, pad_edge=False)
        for column in ("p50 ms", "p95 ms", "max ms", "n"):
            table.add_column(column, justify="right")
        for entry in metrics.get("stages", {}).values():
            if entry.get("count"):
                figures = (f"{entry[k]:.1f}" if entry.get(k) is not None else "–" for k in ("p50", "p95", "max"))
                table.add_row(entry.get("label", ""), *figures, str(entry["count"]))
        console.print(table)


def _transcript_line(line: dict[str, Any]) -> Any:
    from rich.text import Text

    when = f"{line['t']:7.2f}s " if isinstance(line.get("t"), (int, float)) else " " * 9
    kind = line.get("type")
    if kind == "UserTurn":
        return Text.assemble((when, "dim"), ("you: ", "bold green"), line.get("text", ""))
    if kind == "BotTurn":
        cut = ("  [interrupted]", "yellow") if line.get("interrupted") else ("", "")
        return Text.assemble((when, "dim"), ("bot: ", "bold cyan"), line.get("text", "") or "…", cut)
    if kind == "BackendSwitched":
        return Text.assemble(
            (when, "dim"), (f"{line.get('role')}: {line.get('failed')} → {line.get('now_serving')}", "yellow")
        )
    if kind == "ErrorEvent":
        return Text.assemble((when, "dim"), (f"error: {line.get('message', '')}", "red"))
    if kind == "BargeIn":
        return Text.assemble((when, "dim"), ("(the user spoke over the bot)", "yellow"))
    return None


@app.command("repair")
def repair() -> None:
    """Check the session ledger; if it is damaged, move it aside and start a new one that keeps its readable rows."""
    from voicekit.ledger.ledger import default_ledger_target, ledger_source
    from voicekit.ledger.repair import repair_ledger

    report = repair_ledger(default_ledger_target(), ledger_source())
    for line in report.lines():
        typer.echo(line)
