"""voicekit-example: the plugin module named by the ``voicekit`` entry point.

voicekit imports this module for every command (``voicekit --help`` included), so it
stays cheap: the backends are registered by ``"module:Class"`` path and imported only
when a profile uses them, and the command's module is imported only by the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicekit.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    import typer

__version__ = "0.1.0"


@hookimpl
def register_output(register: Register) -> None:
    register("beep", "voicekit_example.beep:BeepOutput")
    register("reverse", "voicekit_example.reverse:ReverseOutput")


@hookimpl
def register_commands(app: typer.Typer) -> None:
    from voicekit_example.cli import example_hello

    app.command("example-hello")(example_hello)
