"""Build a conversation from a profile and run it: what ``voicekit chat``, ``bench`` and ``serve`` run.

:func:`prepare` loads the profile, builds each role's backends (the one named by ``use``
and its ``fallback:`` list, with the role's ``retry:`` policy), the audio source and sink,
the recorder and the ledger row, and the profile's tools; :func:`run_chat` runs it with
signal handling. Whatever ends the conversation — its end, an error, Ctrl-C, SIGTERM,
SIGHUP — the tools' servers are stopped (MCP child processes included), the recording is
flushed and the ledger row is closed with the status and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from voicekit.audio.sinks import AudioSink, NullSink, WavFileSink
from voicekit.engine.conversation import Conversation, ConversationResult
from voicekit.engine.end_of_turn import BACKCHANNELS, PauseTimings, SilenceDetector, TurnDetector, TurnPolicy
from voicekit.engine.fallback import BackendChain
from voicekit.errors import ProfileError, VoicekitError
from voicekit.events import ErrorEvent, Event
from voicekit.ledger.ledger import SessionLedger
from voicekit.ledger.remote import RemoteSessions
from voicekit.ledger.unavailable import open_ledger, start_conversation_row
from voicekit.roles import BackendContext

if TYPE_CHECKING:
    from voicekit.engine.tools import ToolLoop
    from voicekit.tools.config import ToolsConfig

log = logging.getLogger(__name__)

#: signals that end a conversation cleanly; the exit code is 128 + the signal's number
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: ``finish(status, reason)``: close the recording and the ledger row
Finisher = Callable[..., None]


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
    #: told the conversation's id as soon as it has one (its ledger row written, or the ledger unavailable)
    on_conversation_id: Callable[[str], None] | None = None
    registry: Any = None  # a loaded voicekit.registry.Registry to reuse; None: load the plugins now
    warn: Callable[[str], None] = log.warning
    tools: ToolsConfig | None = None  # the tools the model gets; None: the profile's


@dataclass
class ChatOutcome:
    result: ConversationResult | None
    conversation_id: str
    signal: int | None = None
    recording: Path | None = None


async def prepare(request: ChatRequest) -> tuple[Conversation, Finisher]:
    """Load the profile, build backends, source and sink; return the conversation and its finisher."""
    from voicekit.profiles import build_chain, load_profile
    from voicekit.recording import ConversationRecorder
    from voicekit.registry import load_registry
    from voicekit.roles import missing_roles

    profile = load_profile(request.profile, request.overrides)
    registry = request.registry or load_registry()
    # a broken ledger only stops conversations that would open a billable session (see UnavailableLedger);
    # its writes can wait on a lock or a network: they stay off the loop other conversations share
    ledger = open_ledger(request.ledger, request.warn)
    ledger, conversation_id = await start_conversation_row(ledger, profile.name, request.warn)
    if request.on_conversation_id is not None:
        request.on_conversation_id(conversation_id)
    remote = RemoteSessions(ledger, conversation_id)
    context = BackendContext(
        language=profile.language,
        conversation_id=conversation_id,
        remote_sessions=remote,
        record_dir=request.record,
        fast=request.fast,
    )
    chains: dict[str, BackendChain[Any]] = {}
    sink: AudioSink | None = None
    try:
        for role in ("llm", "stt", "output"):
            spec = profile.spec(role)
            if spec is None or (role == "stt" and request.text):
                continue
            backends = build_chain(profile, role, registry, context)
            chains[role] = BackendChain(role, backends, spec.retry, warn=request.warn)
        llm = chains["llm"].active
        missing = missing_roles(
            llm.name,
            llm.capabilities,
            has_stt="stt" in chains,
            has_output="output" in chains,
            audio_input=not request.text,
        )
        if missing:
            raise ProfileError(f"profile '{profile.name}': {missing[0]}")
        output = chains["output"].active if "output" in chains else None
        rate = profile.audio.output_rate or (output.sample_rate if output is not None else 24000)
        source = None if request.text else (request.source or _open_source(request))
        sink = request.sink_factory(rate) if request.sink_factory else _open_sink(request, rate)
        recorder = (
            ConversationRecorder(request.record, profile=profile.name, conversation_id=conversation_id)
            if request.record
            else None
        )
        vad = _make_vad(profile) if source is not None else None
        toolbox = _make_toolbox(request, profile, registry, llm)
        detector = make_turn_detector(profile, registry) if source is not None else None
    except BaseException as exc:
        if isinstance(sink, WavFileSink):
            sink.discard()  # the conversation never ran: an existing --output file stays as it was
        _end_row(ledger, conversation_id, 0, None, "failed", str(exc) or type(exc).__name__)
        raise
    remote.start_heartbeat()  # the ledger rows stay alive while the conversation runs
    observers = list(request.observers)
    if recorder is not None:
        observers.append(recorder)
    conversation = Conversation(
        llm=chains["llm"],
        stt=chains.get("stt"),
        output=chains.get("output"),
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
        warn=request.warn,
        tools=_tool_loop(toolbox, request.tools or _tools_config(profile)),
        policy=turn_policy(profile),
        detector=detector,
    )
    conversation.conversation_id = conversation_id  # type: ignore[attr-defined]

    def finish(status: str, reason: str | None = None) -> None:
        """Close the recording and the ledger row; a ledger failure here only warns."""
        remote.stop_heartbeat()
        if reason:
            conversation.emit(ErrorEvent(reason, fatal=True))
        if recorder is not None:
            try:
                recorder.close(status=status, reason=reason)
            except Exception as exc:  # noqa: BLE001 - the row must still be closed
                log.warning("could not finish the recording in %s: %s", request.record, exc)
        _end_row(
            ledger,
            conversation_id,
            len(conversation.metrics),
            str(request.record) if request.record else None,
            status,
            reason,
        )

    return conversation, finish


def _tools_config(profile: Any) -> ToolsConfig:
    """The profile's tool settings; bad ones are a :class:`ProfileError` naming the key."""
    from voicekit.tools.config import ToolsConfig, tool_problems

    problems = tool_problems(profile.data)
    if problems:
        path, message = problems[0]
        where = ".".join(str(part) for part in path)
        raise ProfileError(f"profile '{profile.name}': {where}: {message}")
    return ToolsConfig.from_profile(profile.data)


def _make_toolbox(request: ChatRequest, profile: Any, registry: Any, llm: Any) -> Any:
    """The conversation's tools (MCP servers not started yet), or ``None`` without tools."""
    config = request.tools or _tools_config(profile)
    if not config.enabled:
        return None
    from voicekit.tools.registry import load_tool_registry
    from voicekit.tools.toolbox import Toolbox

    toolbox = Toolbox(config, load_tool_registry(getattr(registry, "pm", None)))
    if not llm.capabilities.tools:
        request.warn(f"llm '{llm.name}' does not call tools: the profile's tools are not offered to it")
    return toolbox


def _tool_loop(toolbox: Any, config: ToolsConfig) -> ToolLoop | None:
    """The loop that runs the model's tool calls, or ``None`` without tools (the conversation
    starts and stops its servers)."""
    if toolbox is None:
        return None
    from voicekit.engine.tools import ToolLoop

    filler = config.tools_filler
    return ToolLoop(
        toolbox,
        timeout_s=config.tools_timeout_s,
        max_rounds=config.max_tool_rounds,
        filler=filler.text if filler else None,
        filler_after_s=filler.after_ms / 1000 if filler else 1.0,
    )


def _end_row(
    ledger: SessionLedger, cid: str, turns: int, recording: str | None, status: str, reason: str | None
) -> None:
    try:
        ledger.end_conversation(cid, turns=turns, recording=recording, status=status, reason=reason)
    except Exception as exc:  # noqa: BLE001 - the conversation's own outcome matters more than its row
        log.warning("could not record the end of conversation %s in the ledger: %s", cid, exc)


def _open_sink(request: ChatRequest, rate: int) -> AudioSink:
    if request.output is not None:
        if request.input is not None and _same_file(request.input, request.output):
            raise VoicekitError(
                f"--input and --output are the same file ({request.output}): the reply would replace the "
                "speech it answers; write it to another file"
            )
        return WavFileSink(request.output, rate, realtime=not request.fast)
    if request.fast:
        return NullSink(rate, realtime=False)
    try:
        from voicekit.audio.devices import SpeakerSink

        return SpeakerSink(request.output_device, sample_rate=rate)
    except VoicekitError as exc:  # no speaker, or no pyaudio
        if request.input is None and not request.text:
            raise
        hint = "" if "--output" in str(exc) else " (write it to a file with --output FILE.wav)"
        request.warn(f"{exc}; the reply is not played{hint}")
        return NullSink(rate, realtime=True)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links and relative spellings included)."""
    try:
        return (a.exists() and b.exists() and a.samefile(b)) or a.resolve() == b.resolve()
    except OSError:
        return False


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

    turns = profile.turns
    silence = turns.end_of_speech_ms
    if turns.detector_name != "silence":  # a detector judges every pause: hear it as soon as it starts
        silence = min(silence, max(turns.complete_wait_ms, 50))
    return create_vad(
        profile.audio.vad,
        mode=profile.audio.vad_mode,
        min_speech_ms=turns.min_interruption_ms,
        min_silence_ms=silence,
    )


def make_turn_detector(profile: Any, registry: Any) -> TurnDetector | None:
    """The profile's end-of-turn detector (``turns.detector``), built and checked, not loaded."""
    from pydantic import ValidationError

    turns = profile.turns
    if turns.detector_name == "silence" and not turns.detector_options:
        return SilenceDetector(language=profile.language)  # the default needs no plugin lookup
    entry = registry.turn_detector(turns.detector_name)
    cls = entry.load()
    try:
        options = cls.Options.model_validate(turns.detector_options)
    except ValidationError as exc:
        problem = exc.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        raise ProfileError(f"{profile.where(('turns', 'detector'))}: turns.detector.{key}: {problem['msg']}") from None
    detector: TurnDetector = cls(options, language=profile.language)
    detector.check()
    return detector


def turn_policy(profile: Any) -> TurnPolicy:
    """The turn-taking settings of a profile's ``turns:`` section."""
    turns = profile.turns
    lang = (profile.language or "en").split("-")[0].lower()
    backchannels = turns.backchannels if turns.backchannels is not None else BACKCHANNELS
    words = tuple(backchannels.get(lang, ()) or backchannels.get("en", ()))
    return TurnPolicy(
        detector=turns.detector_name,
        timings=PauseTimings(turns.complete_wait_ms / 1000, turns.incomplete_wait_ms / 1000, turns.max_wait_ms / 1000),
        transcript_rules=turns.transcript_rules,
        preemptive=turns.preemptive,
        backchannels=words,
        false_interruption_s=turns.false_interruption_ms / 1000,
        language=profile.language,
    )


async def run_prepared(
    conversation: Conversation, finish: Finisher, *, signals: Sequence[int] = ()
) -> tuple[ConversationResult | None, int | None]:
    """Run a prepared conversation to its end and close its records, whatever happens.

    ``signals`` end it cleanly (the first one received is returned); an error is recorded
    as the reason (``failed: <the one-line error>``) and raised.
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received and main is not None:
            main.cancel()
        received.append(signum)

    installed = []
    for signum in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    status, reason = "failed", None
    try:
        result = await conversation.run()
        status = "ended"
        return result, None
    except asyncio.CancelledError:
        if not received:
            status, reason = "interrupted", "cancelled"
            raise
        status, reason = "interrupted", f"{signal.Signals(received[0]).name}"
        if main is not None:
            main.uncancel()
        return None, received[0]
    except BaseException as exc:
        reason = str(exc) or type(exc).__name__
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        finish(status, reason)


async def run_chat(request: ChatRequest) -> ChatOutcome:
    """Run one conversation; SIGINT, SIGTERM and SIGHUP end it cleanly (backends closed, files flushed)."""
    conversation, finish = await prepare(request)
    cid = cast(str, conversation.conversation_id)  # type: ignore[attr-defined]
    result, received = await run_prepared(conversation, finish, signals=STOP_SIGNALS)
    return ChatOutcome(result, cid, received, request.record)


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
    :class:`voicekit.errors.VoicekitError` on bad input or a backend that failed with no
    fallback left; cancelling the task ends the conversation cleanly.
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
    result, _ = await run_prepared(conversation, finish)
    assert result is not None  # without signal handlers, only a result or an exception comes back
    return result
