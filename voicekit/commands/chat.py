"""``voicekit chat``: talk to a bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from voicekit.display import ChatDisplay
    from voicekit.engine.runner import ChatRequest

SetOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", "-s", help="Override a profile value, e.g. --set stt.model=nova-2 (repeatable).", metavar="KEY=VALUE"
    ),
]


def chat(
    profile: Annotated[
        Optional[str],
        typer.Option(
            "--profile", "-p", metavar="NAME", help="Profile name or path (default: config.toml's, else offline)."
        ),
    ] = None,
    input: Annotated[
        Optional[Path],
        typer.Option("--input", "-i", metavar="FILE", help="Read speech from a WAV file instead of the microphone."),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write the bot's speech to a WAV file instead of the speaker."
        ),
    ] = None,
    record: Annotated[
        Optional[Path],
        typer.Option(
            "--record", metavar="DIR", help="Record conversation.wav, transcript.jsonl and metrics.json in this folder."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Let --record replace a recording already in its folder.")
    ] = False,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Keep no transcript of this conversation in the history.")
    ] = False,
    set_: SetOption = None,
    text: Annotated[bool, typer.Option("--text", help="Type instead of speaking.")] = False,
    fast: Annotated[
        bool, typer.Option("--fast", help="Read --input as fast as possible instead of in real time.")
    ] = False,
    input_device: Annotated[
        Optional[str],
        typer.Option("--input-device", metavar="DEVICE", help="Microphone name or index (see 'voicekit devices')."),
    ] = None,
    output_device: Annotated[
        Optional[str], typer.Option("--output-device", metavar="DEVICE", help="Speaker name or index.")
    ] = None,
) -> None:
    """Have a voice conversation using a profile's backends.

    --record DIR never replaces a recording: a folder that holds one is refused unless
    --overwrite is given. Each conversation's transcript and metrics are also kept under its
    id ('voicekit sessions show ID') unless --no-history or history = false in config.toml.
    """
    import asyncio
    import sys

    from voicekit.display import ChatDisplay
    from voicekit.engine.runner import ChatRequest
    from voicekit.settings import settings

    values = settings()
    profile = profile or values.profile
    input_device = input_device or values.input_device
    output_device = output_device or values.output_device
    if record is not None:
        _prepare_record_dir(record, overwrite)
    display = ChatDisplay(typing=text, fast=fast)
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
        warn=display.warn,
    )
    history = None
    if values.history and not no_history:
        from voicekit.history import HistoryKeeper

        history = HistoryKeeper(profile)
        request.on_conversation_id = history.bind
        request.observers.append(history)
    if text:
        request.text_lines = typed_lines(display)
    _show_banner(display, request)
    status, reason = "failed", None
    try:
        outcome = asyncio.run(_run(request, display))
        status = "interrupted" if outcome.signal is not None else "ended"
    except KeyboardInterrupt:
        status, reason = "interrupted", "SIGINT"
        raise
    except BaseException as exc:
        reason = str(exc) or type(exc).__name__
        raise
    finally:
        display.close()
        if history is not None:
            history.close(status, reason)
    if outcome.recording is not None:
        display.console.print(f"[dim]recorded to {outcome.recording}[/]")
    if output is not None:
        display.console.print(f"[dim]reply audio written to {output}[/]")
    if history is not None and history.conversation_id:
        display.console.print(
            f"[dim]conversation {history.conversation_id}: voicekit sessions show {history.conversation_id}[/]"
        )
    if outcome.signal is not None:
        display.console.print("[yellow]interrupted[/]")
        sys.exit(128 + outcome.signal)


async def _run(request: ChatRequest, display: ChatDisplay) -> Any:
    from voicekit.engine.runner import run_chat

    if request.input is None and not request.text:
        request.source = _metered_microphone(request.input_device, display)
    return await run_chat(request)


def _metered_microphone(device: str | None, display: ChatDisplay) -> Any:
    """The microphone, opened now (a missing device fails before the conversation), its level shown."""
    from voicekit.audio.devices import MicSource

    source = MicSource(device)
    source.open()
    return MeteredSource(source, display.level)


class MeteredSource:
    """Frames of another source, unchanged, with each frame's level (dBFS) handed to ``on_level``."""

    def __init__(self, source: Any, on_level: Any) -> None:
        self.source = source
        self.on_level = on_level

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        import numpy as np

        async for frame in self.source:
            samples = np.frombuffer(frame, dtype=np.int16).astype(np.float32)
            power = float(np.mean(samples * samples)) if samples.size else 0.0
            self.on_level(10 * np.log10(power / 32768.0**2) if power > 0 else -float("inf"))
            yield frame


def _prepare_record_dir(record: Path, overwrite: bool) -> None:
    """Refuse a folder that holds anything, unless ``--overwrite`` (which clears a recording's files only)."""
    from voicekit.errors import ProfileError
    from voicekit.recording import RECORDING_FILES

    if record.exists() and not record.is_dir():
        raise ProfileError(f"--record {record}: not a folder")
    if not record.is_dir() or not any(record.iterdir()):
        return
    if not overwrite:
        held = ", ".join(sorted(p.name for p in record.iterdir())[:4])
        raise ProfileError(
            f"--record {record}: the folder is not empty ({held}); choose a new folder, or add --overwrite"
        )
    for name in RECORDING_FILES:
        (record / name).unlink(missing_ok=True)


def _show_banner(display: ChatDisplay, request: ChatRequest) -> None:
    """The profile, its backends, where audio comes from and goes, and the turn-taking mode."""
    from voicekit.profiles import load_profile

    profile = load_profile(request.profile, request.overrides)  # errors here are the ones chat reports anyway
    rows: list[tuple[str, str]] = []
    for role in ("stt", "llm", "output"):
        spec = profile.spec(role)
        if spec is None or (role == "stt" and request.text):
            continue
        detail = next((str(spec.options[k]) for k in ("model", "voice", "voice_id") if spec.options.get(k)), "")
        fallbacks = f", then {', '.join(f.use for f in spec.fallback)}" if spec.fallback else ""
        rows.append((role, spec.use + (f" ({detail})" if detail else "") + fallbacks))
    if request.text:
        heard = "typing"
    elif request.input is not None:
        heard = f"{request.input}" + (" (read fast)" if request.fast else "")
    else:
        heard = f"microphone {request.input_device or '(default)'}"
    spoken = str(request.output) if request.output is not None else f"speaker {request.output_device or '(default)'}"
    rows += [("in", heard), ("out", spoken)]
    mode = profile.turns.mode
    rows.append(
        (
            "turns",
            "full duplex: talk over the bot"
            if mode == "full_duplex"
            else "half duplex: mic muted while the bot speaks",
        )
    )
    title = f"voicekit chat: {profile.name}" + (f" - {profile.description}" if profile.description else "")
    display.banner(title, rows)


async def typed_lines(display: ChatDisplay) -> AsyncIterator[str]:
    """Lines typed on standard input, each asked for with the prompt; bytes that are not
    UTF-8 are replaced (with a warning) rather than ending the conversation."""
    import asyncio
    import sys

    stream = getattr(sys.stdin, "buffer", None)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            display.prompt()
        raw = await asyncio.to_thread(stream.readline if stream is not None else sys.stdin.readline)
        display.typed()
        if not raw:
            return
        if isinstance(raw, bytes):
            line = raw.decode("utf-8", errors="replace")
            if "\ufffd" in line and "\ufffd".encode() not in raw:
                display.warn("the typed line had bytes that are not UTF-8; they were replaced with \ufffd")
        else:
            line = raw
        yield line.rstrip("\r\n")
