"""Live transcript display for ``voicekit chat`` (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from voicekit.engine.metrics import format_turn
from voicekit.events import (
    BackendSwitched,
    BargeIn,
    BotTurn,
    ErrorEvent,
    Event,
    Interim,
    TextDelta,
    ToolCall,
    ToolResult,
    TurnMetrics,
    UserTurn,
)

_TOOL_TEXT_CHARS = 100


class ChatDisplay:
    """Shows the user's partial and final words, the bot's text as it streams, one dim line
    per tool call and per result, and a latency line per turn. On a terminal the partial
    text updates in place."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, emoji=False)
        self._live: Any = None
        self._partial = ""
        self._bot = ""
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(Text(""), console=self.console, refresh_per_second=15, transient=True)
            self._live.start()

    def _status(self) -> None:
        if self._live is None:
            return
        if self._bot:
            self._live.update(Text.assemble(("bot: ", "bold cyan"), self._bot))
        elif self._partial:
            self._live.update(Text.assemble(("you: ", "bold green"), (self._partial, "dim")))
        else:
            self._live.update(Text(""))

    def __call__(self, event: Event) -> None:
        if isinstance(event, Interim):
            self._partial = event.text
        elif isinstance(event, UserTurn):
            self._partial = ""
            self.console.print(Text.assemble(("you: ", "bold green"), event.text))
        elif isinstance(event, TextDelta):
            self._bot += event.text
        elif isinstance(event, BotTurn):
            self._bot = ""
            suffix = ("  [interrupted]", "yellow") if event.interrupted else ("", "")
            self.console.print(Text.assemble(("bot: ", "bold cyan"), event.text or "…", suffix))
        elif isinstance(event, BargeIn):
            self._bot = ""
        elif isinstance(event, ToolCall):
            self.console.print(Text(f"  ⚙ {event.name}({_short(event.arguments)})", style="dim"))
        elif isinstance(event, ToolResult):
            status = "" if event.status == "ok" else f" [{event.status}]"
            took = f" ({event.duration_ms:.0f} ms)" if event.duration_ms is not None else ""
            self.console.print(Text(f"  ↳ {event.name}{status}: {_short(event.content)}{took}", style="dim"))
        elif isinstance(event, TurnMetrics):
            self.console.print(Text(f"  ⏱  {format_turn(event)}", style="dim"))
        elif isinstance(event, BackendSwitched):
            if event.role == "llm":
                self._bot = ""  # the next model answers the turn from the start
        elif isinstance(event, ErrorEvent):
            if not event.fatal:  # a fatal error is the command's own last line
                self.console.print(Text(f"error: {event.message}", style="red"))
        else:
            return
        self._status()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TOOL_TEXT_CHARS else text[: _TOOL_TEXT_CHARS - 1] + "…"
