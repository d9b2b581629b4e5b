"""``voicekit devices``: list microphones and speakers."""

from __future__ import annotations

from typing import Annotated

import typer


def devices(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List audio input and output devices."""
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from voicekit.audio.devices import list_devices

    found = list_devices()
    if json_out:
        typer.echo(json.dumps([asdict(d) for d in found], indent=2))
        return
    console = Console(highlight=False, emoji=False)
    if not found:
        console.print("no audio devices found (no sound card?); use --input/--output WAV files with 'voicekit chat'")
        return
    table = Table("index", "name", "in", "out", "rate", "default")
    for d in found:
        default = ", ".join(x for x, on in (("input", d.is_default_input), ("output", d.is_default_output)) if on)
        table.add_row(str(d.index), d.name, str(d.inputs), str(d.outputs), str(d.default_rate), default)
    console.print(table)
