"""What ``voicekit chat`` shows on a terminal (rich).

- a banner: the profile, each role's backend, the devices, the turn-taking mode;
- while listening to a microphone, a live line ``listening`` with the input level;
- the user's words as they are recognised, the bot's text as it streams;
- a latency line per turn that says what each figure measures.

Finished lines are printed by :data:`LINES`, one function per event type: adding a
kind of line means adding an entry there. The live line (on a terminal) only ever holds
what is still changing. With typed input (``--text``) there is no live line at all: the
prompt (:meth:`ChatDisplay.prompt`) is never redrawn over, and a line printed while
it waits moves the prompt below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from voicekit.engine.metrics import STAGES
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

PROMPT = "you> "
#: short names of the stages in the latency line, and what each measures (``--fast`` keeps only the
#: ones that do not depend on the input's real-time pace); a stage not named here shows its key
LATENCY_NAMES = {
    "stt_ms": "speech end→text",
    "llm_ttft_ms": "text→first token",
    "tool_ms": "tools",
    "output_ttfa_ms": "sentence→first audio",
    "voice_to_voice_ms": "speech end→bot audio",
}
PACE_DEPENDENT = frozenset({"stt_ms", "voice_to_voice_ms", "turn_ms"})
#: typed turns have no speech: their clock starts when the line is sent, and there is no STT
TYPED_NAMES = {**LATENCY_NAMES, "stt_ms": "", "voice_to_voice_ms": "sent→bot audio"}
METER_WIDTH = 20


def latency_line(metrics: TurnMetrics, *, fast: bool = False, typed: bool = False) -> str:
    """``speech end→text 180 ms · text→first token 310 ms · …`` for one turn.

    With ``fast`` (an input file read faster than real time) the times counted from the end
    of the user's speech mean nothing, so only the services' own figures are shown, and said so.
    A ``typed`` turn has no speech and no STT: its clock starts when the line is sent.
    """
    names = TYPED_NAMES if typed else LATENCY_NAMES
    parts = []
    for stage in STAGES:
        if not names.get(stage) or (fast and stage in PACE_DEPENDENT):
            continue
        value = getattr(metrics, stage, None)
        if value is not None:
            parts.append(f"{names[stage]} {value:.0f} ms")
    line = " · ".join(parts) if parts else "no timings"
    return f"{line}  (--fast: times from the end of speech are left out)" if fast else line


def level_bar(dbfs: float, width: int = METER_WIDTH) -> str:
    """A bar for an input level from -60 dBFS (empty) to 0 dBFS (full)."""
    if not math.isfinite(dbfs):
        dbfs = -90.0 if dbfs < 0 else 0.0  # digital silence has no level in dB
    filled = max(0, min(width, round((dbfs + 60) / 60 * width)))
    return "█" * filled + "·" * (width - filled)


def _user(display: ChatDisplay, event: Event) -> Text | None:
    assert isinstance(event, UserTurn)
    display.partial = ""
    return Text.assemble(("you: ", "bold green"), event.text)


def _bot(display: ChatDisplay, event: Event) -> Text | None:
    assert isinstance(event, BotTurn)
    streamed, display.bot = display.bot, ""
    suffix = ("  [interrupted]", "yellow") if event.interrupted else ("", "")
    if display.streaming_inline:  # the text is on screen already: end its line
        display.end_inline(suffix)
        return None if streamed else Text.assemble(("bot: ", "bold cyan"), event.text or "…", suffix)
    return Text.assemble(("bot: ", "bold cyan"), event.text or "…", suffix)


def _metrics(display: ChatDisplay, event: Event) -> Text | None:
    assert isinstance(event, TurnMetrics)
    return Text(f"  ⏱  {latency_line(event, fast=display.fast, typed=display.typing)}", style="dim")


def _switched(display: ChatDisplay, event: Event) -> Text | None:
    assert isinstance(event, BackendSwitched)
    if event.role == "llm":
        display.bot = ""  # the next model answers the turn from the start
    return None  # the warning line comes from the engine


def _error(display: ChatDisplay, event: Event) -> Text | None:
    assert isinstance(event, ErrorEvent)
    return None if event.fatal else Text(f"error: {event.message}", style="red")  # a fatal one is the last line


_TOOL_TEXT_CHARS = 100


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TOOL_TEXT_CHARS else text[: _TOOL_TEXT_CHARS - 1] + "…"


def _tool_call(display: ChatDisplay, event: Event) -> Text | None:
    assert isinstance(event, ToolCall)
    return Text(f"  ⚙ {event.name}({_short(event.arguments)})", style="dim")


def _tool_result(display: ChatDisplay, event: Event) -> Text | None:
    assert isinstance(event, ToolResult)
    status = "" if event.status == "ok" else f" [{event.status}]"
    took = f" ({event.duration_ms:.0f} ms)" if event.duration_ms is not None else ""
    return Text(f"  ↳ {event.name}{status}: {_short(event.content)}{took}", style="dim")


#: event type -> what to print for it (``None``: nothing); each may update the display's state
LINES: dict[type[Event], Callable[[ChatDisplay, Event], Text | None]] = {
    UserTurn: _user,
    ToolCall: _tool_call,
    ToolResult: _tool_result,
    BotTurn: _bot,
    TurnMetrics: _metrics,
    BackendSwitched: _switched,
    ErrorEvent: _error,
}


class ChatDisplay:
    """Shows a conversation as it happens. On a terminal a live line holds what is still
    changing (partial words, the bot's text, the microphone level); ``typing=True`` turns
    the live line off and streams the bot's text inline, so the prompt is never erased."""

    def __init__(self, console: Console | None = None, *, typing: bool = False, fast: bool = False) -> None:
        self.console = console or Console(highlight=False, emoji=False)
        self.typing = typing
        self.fast = fast
        self.partial = ""
        self.bot = ""
        self.listening = False  # a microphone is open: show its level when nothing else is live
        self.level_dbfs = -90.0
        self._prompt_shown = False
        self._inline = False  # bot text is being written on the current line (typing mode)
        self._banner: tuple[str, list[tuple[str, str]]] | None = None
        self._live: Any = None
        if self.console.is_terminal and not typing:
            from rich.live import Live

            self._live = Live(Text(""), console=self.console, refresh_per_second=15, transient=True)
            self._live.start()

    # --- what the chat command tells it ------------------------------------------------------

    def banner(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        """The conversation's set-up: shown once it has started (its first event, frame or prompt),
        so a conversation that cannot start says only its one error line."""
        self._banner = (title, list(rows))

    def _show_banner(self) -> None:
        pending, self._banner = self._banner, None
        if pending is None:
            return
        title, rows = pending
        self.console.print(Text(title, style="bold"), soft_wrap=True)
        width = max((len(key) for key, _ in rows), default=0)
        for key, value in rows:
            self.console.print(Text.assemble(("  " + key.ljust(width) + "  ", "dim"), value), soft_wrap=True)
        self.console.print(Text("  Ctrl-C ends the conversation", style="dim"))

    def level(self, dbfs: float) -> None:
        """The microphone's level of the last frame (called for every frame; cheap)."""
        if self._banner is not None:
            self._show_banner()
        self.listening = True
        self.level_dbfs = dbfs
        if self._live is not None and not self.partial and not self.bot:
            self._live.update(self._status(), refresh=False)

    def prompt(self) -> None:
        """Show the typing prompt (typed input asks for each line when the bot is done)."""
        self._show_banner()
        self._prompt_shown = True
        self.console.print(Text(PROMPT, style="bold green"), end="")
        self.console.file.flush()

    def typed(self) -> None:
        """A line was read: the prompt's line is finished."""
        self._prompt_shown = False

    def warn(self, message: str) -> None:
        self.print(Text.assemble(("warning: ", "yellow"), message))

    # --- events --------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if self._banner is not None and not (isinstance(event, ErrorEvent) and event.fatal):
            self._show_banner()
        if isinstance(event, Interim):
            self.partial = event.text
        elif isinstance(event, TextDelta):
            self.bot += event.text
            if self.typing:
                self._stream_inline(event.text)
        elif isinstance(event, BargeIn):
            self.bot = ""
        render = LINES.get(type(event))
        if render is not None:
            line = render(self, event)
            if line is not None:
                self.print(line)
        self._refresh()

    @property
    def streaming_inline(self) -> bool:
        return self._inline

    def end_inline(self, suffix: tuple[str, str] = ("", "")) -> None:
        """Finish the bot's inline line (typing mode)."""
        if self._inline:
            self.console.print(Text(*suffix) if suffix[0] else "")
            self._inline = False

    def print(self, line: Text) -> None:
        """A finished line, above the live line; below a waiting prompt, which is shown again after it."""
        if self._inline:
            self.end_inline()
        reprompt = self._prompt_shown
        if reprompt:
            self.console.print()
            self._prompt_shown = False
        self.console.print(line, soft_wrap=True)
        if reprompt:
            self.prompt()

    def _stream_inline(self, text: str) -> None:
        if not self._inline:
            if self._prompt_shown:
                self.console.print()
                self._prompt_shown = False
            self.console.print(Text("bot: ", style="bold cyan"), end="")
            self._inline = True
        self.console.print(Text(text), end="", soft_wrap=True)
        self.console.file.flush()

    def _status(self) -> Text:
        if self.bot:
            return Text.assemble(("bot: ", "bold cyan"), self.bot)
        if self.partial:
            return Text.assemble(("you: ", "bold green"), (self.partial, "dim"))
        if self.listening:
            db = "-∞" if math.isinf(self.level_dbfs) else f"{self.level_dbfs:.0f}"
            return Text.assemble(
                ("● listening ", "green"), (level_bar(self.level_dbfs), "cyan"), (f" {db} dBFS", "dim")
            )
        return Text("")

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._status())

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.end_inline()
        if self._prompt_shown:
            self.console.print()
            self._prompt_shown = False
