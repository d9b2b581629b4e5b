"""``voicekit chat``: talk to a bot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

SetOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", "-s", help="Override a profile value, e.g. --set stt.model=nova-2 (repeatable).", metavar="KEY=VALUE"
    ),
]


def chat(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name or path.")] = "offline",
    input: Annotated[
        Optional[Path], typer.Option("--input", "-i", help="Read speech from a WAV file instead of the microphone.")
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write the bot's speech to a WAV file instead of the speaker."),
    ] = None,
    record: Annotated[
        Optional[Path],
        typer.Option("--record", help="Record conversation.wav, transcript.jsonl and metrics.json here."),
    ] = None,
    set_: SetOption = None,
    text: Annotated[bool, typer.Option("--text", help="Type instead of speaking.")] = False,
    fast: Annotated[
        bool, typer.Option("--fast", help="Read --input as fast as possible instead of in real time.")
    ] = False,
    input_device: Annotated[
        Optional[str], typer.Option("--input-device", help="Microphone name or index (see 'voicekit devices').")
    ] = None,
    output_device: Annotated[Optional[str], typer.Option("--output-device", help="Speaker name or index.")] = None,
) -> None:
    """Have a voice conversation using a profile's backends."""
    import asyncio
    import sys

    from rich.markup import escape

    from voicekit.display import ChatDisplay
    from voicekit.engine.runner import ChatRequest, run_chat

    display = ChatDisplay()
    request = ChatRequest(
        profile=profile,
        overrides=set_ or [],
        input=input,
        output=output,
        record=record,
        text=text,
        fast=fast,
        input_device=input_device,
        output_device=output_device,
        observers=[display],
        warn=lambda message: display.console.print(f"[yellow]warning:[/] {escape(message)}"),
    )
    if text:
        request.text_lines = _typed_lines(display)
    try:
        outcome = asyncio.run(run_chat(request))
    finally:
        display.close()
    if outcome.recording is not None:
        display.console.print(f"[dim]recorded to {outcome.recording}[/]")
    if output is not None:
        display.console.print(f"[dim]reply audio written to {output}[/]")
    if outcome.signal is not None:
        display.console.print("[yellow]interrupted[/]")
        sys.exit(128 + outcome.signal)


async def _typed_lines(display: object):  # type: ignore[no-untyped-def]
    import asyncio
    import sys

    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.rstrip("\n")
