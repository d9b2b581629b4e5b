"""Build a conversation from a profile and run it: what ``voicekit chat`` and ``bench`` call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from voicekit.audio.sinks import AudioSink, NullSink, WavFileSink
from voicekit.engine.conversation import Conversation, ConversationResult
from voicekit.errors import ProfileError, VoicekitError
from voicekit.events import Event
from voicekit.ledger.ledger import SessionLedger
from voicekit.ledger.remote import RemoteSessions
from voicekit.roles import LLM, STT, BackendContext, Output

log = logging.getLogger(__name__)


@dataclass
class ChatRequest:
    """Everything ``voicekit chat`` was asked to do."""

    profile: str = "offline"
    overrides: Sequence[str] = ()
    input: Path | None = None  # a WAV file; None: the microphone (or typed text)
    output: Path | None = None  # a WAV file; None: the speaker
    record: Path | None = None
    text: bool = False
    fast: bool = False
    input_device: str | None = None
    output_device: str | None = None
    observers: list[Callable[[Event], None]] = field(default_factory=list)
    text_lines: AsyncIterator[str] | None = None
    source: Any = None  # a custom async iterable of 16 kHz frames (benchmarks, servers)
    sink_factory: Callable[[int], AudioSink] | None = None  # a custom sink, given the output rate
    ledger: SessionLedger | None = None
    registry: Any = None  # a loaded voicekit.registry.Registry to reuse; None: load the plugins now
    warn: Callable[[str], None] = log.warning


@dataclass
class ChatOutcome:
    result: ConversationResult | None
    conversation_id: str
    signal: int | None = None
    recording: Path | None = None


async def prepare(request: ChatRequest) -> tuple[Conversation, Callable[[str], None]]:
    """Load the profile, build backends, source and sink; return the conversation and a closer."""
    from voicekit.profiles import build_backend, load_profile
    from voicekit.recording import ConversationRecorder
    from voicekit.registry import load_registry
    from voicekit.roles import missing_roles

    profile = load_profile(request.profile, request.overrides)
    registry = request.registry or load_registry()
    ledger = request.ledger or SessionLedger()
    # a ledger write can wait on a lock or a network: keep it off the loop other conversations share
    conversation_id = await asyncio.to_thread(ledger.start_conversation, profile.name)
    remote = RemoteSessions(ledger, conversation_id)
    context = BackendContext(
        language=profile.language,
        conversation_id=conversation_id,
        remote_sessions=remote,
        record_dir=request.record,
        fast=request.fast,
    )
    try:
        llm = build_backend(profile, "llm", registry, context)
        stt = build_backend(profile, "stt", registry, context) if profile.stt and not request.text else None
        output = build_backend(profile, "output", registry, context) if profile.output else None
        missing = missing_roles(
            llm.name,
            llm.capabilities,
            has_stt=stt is not None,
            has_output=output is not None,
            audio_input=not request.text,
        )
        if missing:
            raise ProfileError(f"profile '{profile.name}': {missing[0]}")
        rate = profile.audio.output_rate or (output.sample_rate if output is not None else 24000)  # type: ignore[attr-defined]
        source = None if request.text else (request.source or _open_source(request))
        sink = request.sink_factory(rate) if request.sink_factory else _open_sink(request, rate)
        recorder = (
            ConversationRecorder(request.record, profile=profile.name, conversation_id=conversation_id)
            if request.record
            else None
        )
        vad = _make_vad(profile) if source is not None else None
    except BaseException:
        ledger.end_conversation(conversation_id, turns=0, recording=None, status="failed")
        raise
    remote.start_heartbeat()  # the ledger rows stay alive while the conversation runs
    observers = list(request.observers)
    if recorder is not None:
        observers.append(recorder)
    conversation = Conversation(
        llm=cast(LLM, llm),  # the registry built them for these roles
        stt=cast("STT | None", stt),
        output=cast("Output | None", output),
        sink=sink,
        source=source,
        text_input=request.text_lines if request.text else None,
        mode=profile.turns.mode,
        vad=vad,
        observers=observers,
        recorder=recorder,
        fast=request.fast,
        language=profile.language,
        remote_sessions=remote,
    )
    conversation.conversation_id = conversation_id  # type: ignore[attr-defined]

    def finish(status: str) -> None:
        remote.stop_heartbeat()
        if recorder is not None:
            recorder.close()
        ledger.end_conversation(
            conversation_id,
            turns=len(conversation.metrics),
            recording=str(request.record) if request.record else None,
            status=status,
        )

    return conversation, finish


def _open_sink(request: ChatRequest, rate: int) -> AudioSink:
    if request.output is not None:
        return WavFileSink(request.output, rate, realtime=not request.fast)
    if request.fast:
        return NullSink(rate, realtime=False)
    try:
        from voicekit.audio.devices import SpeakerSink

        return SpeakerSink(request.output_device, sample_rate=rate)
    except VoicekitError as exc:  # no speaker, or no pyaudio
        if request.input is None and not request.text:
            raise
        request.warn(f"{exc}; the reply is not played (write it with --output FILE.wav)")
        return NullSink(rate, realtime=True)


def _open_source(request: ChatRequest) -> Any:
    if request.input is not None:
        from voicekit.audio.wav import WavSource

        return WavSource(request.input, realtime=not request.fast)
    from voicekit.audio.devices import MicSource

    source = MicSource(request.input_device)
    source.open()  # fail now, with a clear message, rather than mid-conversation
    return source


def _make_vad(profile: Any) -> Any:
    if profile.audio.vad == "none":
        return None
    from voicekit.audio.vad import create_vad

    return create_vad(
        profile.audio.vad,
        mode=profile.audio.vad_mode,
        min_speech_ms=profile.turns.min_interruption_ms,
        min_silence_ms=profile.turns.end_of_speech_ms,
    )


async def run_chat(request: ChatRequest) -> ChatOutcome:
    """Run one conversation; SIGINT/SIGTERM end it cleanly (backends closed, files flushed)."""
    conversation, finish = await prepare(request)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received and main is not None:
            main.cancel()
        received.append(signum)

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    status = "failed"
    try:
        result = await conversation.run()
        status = "ended"
        return ChatOutcome(result, conversation.conversation_id, None, request.record)  # type: ignore[attr-defined]
    except asyncio.CancelledError:
        if not received:
            raise
        status = "interrupted"
        if main is not None:
            main.uncancel()
        return ChatOutcome(None, conversation.conversation_id, received[0], request.record)  # type: ignore[attr-defined]
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        finish(status)


async def run_conversation(
    profile: str = "offline",
    *,
    input: Path | None = None,
    output: Path | None = None,
    record: Path | None = None,
    overrides: Sequence[str] = (),
    fast: bool = False,
    observers: Sequence[Callable[[Event], None]] = (),
) -> ConversationResult:
    """Run one conversation from a profile, the library way (``voicekit chat`` without the display).

    ``input``/``output`` are WAV files (``None``: microphone / speaker). Raises
    :class:`voicekit.errors.VoicekitError` on bad input; cancelling the task ends the
    conversation cleanly.
    """
    request = ChatRequest(
        profile=profile,
        overrides=overrides,
        input=input,
        output=output,
        record=record,
        fast=fast,
        observers=list(observers),
    )
    conversation, finish = await prepare(request)
    status = "failed"
    try:
        result = await conversation.run()
        status = "ended"
        return result
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    finally:
        finish(status)
