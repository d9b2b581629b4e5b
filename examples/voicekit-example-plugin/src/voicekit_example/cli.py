"""The example plugin's command: ``voicekit example-hello``."""

from __future__ import annotations

from typing import Annotated

import typer


def example_hello(name: Annotated[str, typer.Option("--name", "-n", help="Who to greet.")] = "world") -> None:
    """Say hello from the example plugin and list the voices it adds."""
    from voicekit.registry import load_registry

    from voicekit_example import __version__

    mine = sorted(e.name for e in load_registry().backends["output"].values() if e.plugin == "example")
    typer.echo(f"Hello, {name}! voicekit-example {__version__} adds the voices: {', '.join(mine)}")
