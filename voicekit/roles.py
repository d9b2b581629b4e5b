"""The three roles a backend can play: STT, LLM and Output.

A backend is a class with an ``Options`` pydantic model, ``capabilities`` and, for
cloud services, ``api_key_env``. It is built from its options, opened with
``start()`` and closed with ``aclose()`` (safe to call twice). Vendor SDKs are
imported inside ``start()`` through :func:`voicekit.sdk.import_sdk`, never at module level.

Who does what:

- A backend raises :mod:`voicekit.errors` exceptions; it does not sleep and try again on
  its own. ``BackendError(retryable=True, retry_after=...)`` says that trying again may
  help. The core retries (``retry:`` of the role's profile section) and then switches to
  the role's ``fallback:`` backends. A backend that keeps a connection open for a whole
  conversation (a streaming STT, a live model) reconnects with the core's policy, through
  :class:`voicekit.engine.retry.Retrier` and ``context.retry``.
- The core keeps the conversation history and hands it to the LLM on every turn.
- The core runs tools: an LLM that declares ``Capabilities.tools`` receives the tools'
  declarations (:class:`ToolSpec`) with every ``respond`` and yields
  :class:`~voicekit.events.ToolCall` events; the engine runs the calls and asks again with
  the results in the history. An LLM that does not declare it never sees a tool.
- The core opens and closes nothing for a backend but the backend itself: a backend
  closes what it opened in ``aclose()``, remote billable sessions included (opened
  through ``context.remote_sessions`` so that the ledger always knows about them).

This module is the ground floor: it imports nothing of voicekit above errors, events,
options, keys and sdk.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from voicekit.errors import MissingSecretError
from voicekit.events import LLMEvent, OutputEvent, RealtimeEvent, STTEvent, ToolCall, ToolResult
from voicekit.keys import lookup as lookup_key
from voicekit.options import RetryPolicy
from voicekit.sdk import import_sdk as import_sdk  # re-exported for plugins written before voicekit.sdk

if TYPE_CHECKING:
    from pydantic import BaseModel

Role = Literal["stt", "llm", "output"]
#: every role, in the order a conversation's audio flows through them
ROLES: tuple[Role, ...] = ("stt", "llm", "output")


@dataclass(frozen=True)
class Capabilities:
    """What a configured backend can do; the engine plans the conversation from these.

    A backend declares its defaults in the class attribute ``capabilities``; one whose
    abilities depend on its options (a live model in text or audio mode) overrides
    :meth:`Backend.capabilities_for`. Read them from a built backend
    (``backend.capabilities``) or from options (``Cls.capabilities_for(options)``),
    never from the class alone.
    """

    streaming: bool = True
    interim_results: bool = False
    languages: tuple[str, ...] = ()  # empty: any language
    sample_rates: tuple[int, ...] = (16000,)  # STT input / output audio rates it can use
    accepts_audio: bool = False  # a realtime LLM that takes microphone PCM
    produces_audio: bool = False  # an LLM or output that yields AudioOut
    remote_session: bool = False  # opens a billable remote session
    tools: bool = False  # an LLM that takes tool declarations and yields ToolCall events


@dataclass(frozen=True)
class ModelInfo:
    """A model or voice a service offers, as :meth:`Backend.list_models` reports it.

    ``id`` is what a profile writes in the backend's option (``model``, ``voice_id``,
    ``voice``); the rest is for people choosing one.
    """

    id: str
    name: str = ""
    description: str = ""
    languages: tuple[str, ...] = ()
    kind: Literal["model", "voice"] = "model"
    aliases: tuple[str, ...] = ()  # other names the service takes for it (Deepgram's nova-3 for nova-3-general)

    def answers_to(self, name: str) -> bool:
        """Whether a profile naming ``name`` means this model or voice."""
        return name == self.id or name in self.aliases


@dataclass(frozen=True)
class MissingRole:
    """A role a profile must fill because of what its LLM can and cannot do."""

    role: Literal["stt", "output"]
    llm: str  # the LLM's name, for the message
    reason: str  # "does not take audio" | "does not speak"

    def __str__(self) -> str:
        return f"{self.role}: missing, and llm '{self.llm}' {self.reason}; add {self.role}: {{use: ...}}"


def missing_roles(
    llm_name: str, llm: Capabilities, *, has_stt: bool, has_output: bool, audio_input: bool = True
) -> list[MissingRole]:
    """The one rule of what a conversation needs besides its LLM.

    An STT when the LLM takes no audio (unless the user types: ``audio_input=False``), and
    an output when the LLM produces no audio. ``voicekit profiles validate``, the runner
    and the engine all ask this function, so they never disagree.
    """
    missing = []
    if audio_input and not has_stt and not llm.accepts_audio:
        missing.append(MissingRole("stt", llm_name, "does not take audio"))
    if not has_output and not llm.produces_audio:
        missing.append(MissingRole("output", llm_name, "does not speak"))
    return missing


@dataclass(frozen=True)
class Message:
    """One entry of the conversation history the core keeps.

    ``user`` and ``assistant`` messages hold text (an interrupted assistant message only
    what was heard). With tools, one round of a reply is one ``assistant`` message that
    also carries the calls the model made (``tool_calls``, its ``text`` then being whatever
    it said before them) and their results (``tool_results``, one per call, in the calls'
    order); a backend spreads it over its vendor's messages (OpenAI: the assistant message
    and a ``tool`` message per result; Gemini: a ``functionCall`` content and a
    ``functionResponse`` one). Only LLMs that declare ``Capabilities.tools`` ever see a
    message with calls.
    """

    role: Literal["user", "assistant"]
    text: str
    interrupted: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model is told about it: its name, what it does (for the model to
    read), and the JSON Schema of its arguments (an ``object`` schema). An LLM backend turns
    it into its vendor's declaration; it never calls the tool itself."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


class RemoteSessionHandle(Protocol):
    """One billable remote session as a backend sees it (see :class:`voicekit.ledger.RemoteSession`)."""

    remote_id: str | None
    closed: bool

    def bind(self, remote_id: str, closer: Callable[[], Awaitable[None]], meta: dict[str, Any] | None = None) -> None:
        """The service gave the session an id; ``closer`` stops it (tolerating 'already closed')."""

    def mark_closed(self) -> None:
        """The session is closed on the service: clear its ledger row."""


class RemoteSessionTracker(Protocol):
    """Where a backend opens billable remote sessions (see :class:`voicekit.ledger.RemoteSessions`)."""

    def opening(self, backend: str, meta: dict[str, Any] | None = None) -> RemoteSessionHandle:
        """Write the ledger row; call this *before* asking the service for a session."""

    async def close_all(self) -> list[str]:
        """Close every session not closed yet."""


class BackendBuilder(Protocol):
    """Builds a backend from a profile-style spec, validated like a top-level one."""

    def __call__(
        self, role: Role, spec: Mapping[str, Any], *, path: tuple[str | int, ...], context: BackendContext
    ) -> Backend: ...


@dataclass
class BackendContext:
    """What the core hands every backend: conversation-wide settings and services.

    - ``language``: the profile's language, the default for every backend.
    - ``conversation_id``: the ledger id of the conversation ("" when run standalone).
    - ``remote_sessions``: where billable remote sessions are opened (``None``: standalone).
    - ``record_dir``: ``chat --record DIR`` (a backend may add its own files there).
    - ``fast``: the input is a file read faster than real time; do not wait for the clock.
    - ``retry``: the retry policy of this backend's role, for reconnect loops.
    - ``path``: where this backend sits in the profile (``("output",)``, ``("output", "tts")``).

    Nested backends (an avatar's voice, a voice that wraps another) are made with
    :meth:`build`, which validates them exactly like top-level ones.
    """

    language: str | None = None
    conversation_id: str = ""
    remote_sessions: RemoteSessionTracker | None = None
    record_dir: Path | None = None
    fast: bool = False
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy.model_validate({}))
    path: tuple[str | int, ...] = ()
    builder: BackendBuilder | None = field(default=None, repr=False, compare=False)

    def build(self, role: Role, spec: Mapping[str, Any], *, key: str | int) -> Backend:
        """Build the nested backend ``spec`` (``{"use": name, **options}``) found under ``key``.

        Errors name the profile file, line and nested path
        (``output.tts.voise: unknown option (did you mean 'voice'?)``). The backend is not
        started: the caller starts it in its own ``start()`` and closes it in ``aclose()``.
        """
        builder = self.builder
        if builder is None:
            from voicekit.profiles.build import standalone_builder

            builder = standalone_builder()
        return builder(role, spec, path=(*self.path, key), context=self)

    @property
    def extras(self) -> dict[str, Any]:
        """Deprecated: use the typed fields (``record_dir``, ``fast``) and :meth:`build`."""
        warnings.warn(
            "BackendContext.extras is deprecated: use context.record_dir, context.fast and context.build()",
            DeprecationWarning,
            stacklevel=2,
        )
        return {"record_dir": self.record_dir, "fast": self.fast}


class Backend:
    """Base of every backend. Subclass one of :class:`STT`, :class:`LLM`, :class:`Output`."""

    role: ClassVar[Role]
    Options: ClassVar[type[BaseModel]]
    capabilities: Capabilities = Capabilities()  # the class's default; see capabilities_for
    api_key_env: ClassVar[str | None] = None
    api_key_fallback_envs: ClassVar[tuple[str, ...]] = ()  # read when api_key_env is not set
    extra: ClassVar[str | None] = None  # the pip extra that brings the vendor SDK
    #: the distributions of ``extra`` this backend imports, when it needs only some of them
    sdk_distributions: ClassVar[tuple[str, ...]] = ()
    name: str = ""  # the name it was registered under; set by the registry
    key_source: str | None = None  # where api_key() found the key

    def __init__(self, options: Any = None, context: BackendContext | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.context = context or BackendContext()
        self.capabilities = type(self).capabilities_for(self.options)

    @classmethod
    def capabilities_for(cls, options: Any) -> Capabilities:
        """What the backend can do with these options (default: the class's ``capabilities``)."""
        return cls.capabilities

    async def start(self) -> None:
        """Import the SDK, check credentials, open long-lived connections."""

    async def aclose(self) -> None:
        """Release everything ``start`` opened. Must be safe to call twice."""

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def api_key(self) -> str:
        """The key from options (``api_key``), ``api_key_env`` or a ``api_key_fallback_envs``
        variable (each looked up in the environment, then in the key store: :mod:`voicekit.keys`),
        in that order; a clear error naming the variables if none is set.
        ``key_source`` then says where it came from, for error messages."""
        opt: Any = getattr(self.options, "api_key", None)
        value = opt.get_secret_value() if hasattr(opt, "get_secret_value") else (str(opt) if opt else "")
        if value:
            self.key_source = f"{self.role}.api_key" + (f" (or {self.api_key_env})" if self.api_key_env else "")
            return str(value)
        for env in (self.api_key_env, *self.api_key_fallback_envs):
            found = lookup_key(env) if env else None
            if found is not None:
                self.key_source = env if found.source == "environment" else f"{env} ({found.source.split(' (')[0]})"
                return found.value
        names = [env for env in (self.api_key_env, *self.api_key_fallback_envs) if env]
        where = (
            f"set the environment variable {names[0]}" + (f" (or {', '.join(names[1:])})" if names[1:] else "")
            if names
            else "set api_key in the profile"
        )
        raise MissingSecretError(f"{self.name or type(self).__name__}: no API key; {where}")

    async def list_models(self) -> list[ModelInfo]:
        """The models (or voices) the service offers to this backend's key: one cheap,
        authenticated call, made without ``start()`` and leaving nothing open.

        Who does what: ``voicekit doctor --online`` and ``voicekit models list`` call it; it
        raises :class:`~voicekit.errors.AuthError` for a rejected key and
        :class:`~voicekit.errors.BackendError` for anything else, and is not retried.
        The default says the backend cannot list: :class:`NotImplementedError`.
        """
        raise NotImplementedError(f"{self.label} cannot list the models of its service")

    def chosen_model(self) -> str | None:
        """The ``id`` among :meth:`list_models` that these options use (``None``: nothing to check)."""
        return None

    @property
    def label(self) -> str:
        """``role:name``, how messages name the backend."""
        return f"{self.role}:{self.name or type(self).__name__}"

    @property
    def profile_key(self) -> str:
        """Where the backend sits in its profile, for messages: ``output``, ``output.tts``, ``llm.fallback.0``."""
        return ".".join(str(part) for part in self.context.path) or self.role


# --- STT ----------------------------------------------------------------------------


class STTStream:
    """One streaming recognition: push PCM in, iterate events out.

    ``push_audio`` and ``end_input`` never block. Subclasses implement :meth:`run`,
    reading audio with :meth:`audio` and publishing with :meth:`emit`; an exception
    in ``run`` is raised to whoever iterates the stream.
    """

    def __init__(self, sample_rate: int = 16000, language: str | None = None) -> None:
        self.sample_rate = sample_rate
        self.language = language
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._events: asyncio.Queue[STTEvent | BaseException | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._input_ended = False

    def push_audio(self, pcm: bytes) -> None:
        """Queue 16-bit mono PCM at ``sample_rate``."""
        if not self._input_ended:
            self._audio.put_nowait(pcm)

    def end_input(self) -> None:
        """No more audio will come; the service should finalize what it heard."""
        if not self._input_ended:
            self._input_ended = True
            self._audio.put_nowait(None)

    async def audio(self) -> AsyncIterator[bytes]:
        """The pushed audio, in order, until ``end_input``."""
        while (chunk := await self._audio.get()) is not None:
            yield chunk

    def emit(self, event: STTEvent) -> None:
        self._events.put_nowait(event)

    async def run(self) -> None:
        """Talk to the service until input ends and every result is out."""
        raise NotImplementedError

    async def _main(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            self._events.put_nowait(exc)
        finally:
            self._events.put_nowait(None)

    async def __aenter__(self) -> STTStream:
        self._task = asyncio.get_running_loop().create_task(self._main(), name=type(self).__name__)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream and release the connection; safe to call twice."""
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
            # wait() never raises the stream task's own CancelledError: a CancelledError here
            # means whoever closes the stream is being cancelled, and must propagate
            await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: an error the reader did not see is not worth a warning

    def __aiter__(self) -> AsyncIterator[STTEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[STTEvent]:
        while (item := await self._events.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item


class STT(Backend):
    """Speech to text. ``stream()`` returns an :class:`STTStream` (an async context manager).

    A stream that fails beyond its own reconnects raises from its iteration; the engine then
    opens a stream of the next ``fallback:`` STT and replays the utterance's audio to it.
    """

    role: ClassVar[Role] = "stt"

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> STTStream:
        raise NotImplementedError


# --- LLM ----------------------------------------------------------------------------


class RealtimeStream:
    """A speech-to-speech stream with a realtime model (``accepts_audio`` LLMs), open for a
    whole conversation.

    Push user PCM with ``push_audio`` (or text with ``send_text``); iterate to get
    transcripts of both sides, bot ``AudioOut``, ``Interrupted`` and ``LLMDone``.
    A stream with ``client_activity`` wants the engine's VAD edges as
    ``activity_start``/``activity_end`` instead of detecting speech itself. The stream
    reconnects by itself (with ``context.retry``) and raises only what it cannot survive.
    """

    client_activity: bool = False

    async def activity_start(self) -> None:
        """The local VAD heard the user start speaking."""

    async def activity_end(self) -> None:
        """The local VAD heard the user stop speaking."""

    async def end_input(self) -> None:
        """No more audio will come (end of a file): answer what was heard."""

    def push_audio(self, pcm: bytes) -> None:
        raise NotImplementedError

    async def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def interrupt(self) -> None:
        """The user barged in locally: stop the current reply."""

    async def send_tool_results(self, results: Sequence[ToolResult]) -> None:
        """Hand the model the results of the ``ToolCall`` events it yielded (a stream opened
        with tools; the engine runs the calls and calls this as each one ends)."""
        raise NotImplementedError(f"{type(self).__name__} yielded a tool call but takes no tool results")

    def __aiter__(self) -> AsyncIterator[RealtimeEvent]:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> RealtimeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


#: Deprecated name of :class:`RealtimeStream`.
RealtimeSession = RealtimeStream


class LLM(Backend):
    """A language model. ``respond`` streams the reply to ``user_text`` given ``history``.

    ``history`` is the conversation so far, kept by the core: user turns and what the bot
    actually said (an interrupted reply holds only the words that were heard). The
    backend does not keep its own copy between turns.

    Tools: a backend that declares ``Capabilities(tools=True)`` is called as
    ``respond(history, user_text, tools=specs)``; it declares ``specs`` to its service in
    the vendor's format and yields a :class:`~voicekit.events.ToolCall` for each call the
    model makes, then ``LLMDone``. The engine runs the calls and calls ``respond`` again
    with the whole exchange in ``history`` (the user's message, then one assistant message
    per round carrying its ``tool_calls`` and ``tool_results``) and ``user_text=""``: no new
    user message, the model goes on from the results. ``tools`` may be empty (the last
    round allowed): then the model must answer in text. A backend without ``tools`` in its
    capabilities is never passed the keyword and never sees a message with calls.
    """

    role: ClassVar[Role] = "llm"

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        """Stream the reply; a backend with ``Capabilities.tools`` adds the keyword ``tools``
        (see :class:`ToolCallingLLM`)."""
        raise NotImplementedError

    def realtime(self, history: Sequence[Message] = ()) -> RealtimeStream:
        """For ``accepts_audio`` models: open a speech-to-speech stream.

        One that declares ``tools`` is called as ``realtime(history, tools=specs)``, yields
        ``ToolCall`` (and ``ToolCallsCancelled``) events and takes the results through
        :meth:`RealtimeStream.send_tool_results`.
        """
        raise NotImplementedError(f"{self.label} does not take audio")


class ToolCallingLLM(Protocol):
    """How the engine calls an LLM that declares ``Capabilities.tools`` (see :class:`LLM`)."""

    def respond(
        self, history: Sequence[Message], user_text: str, *, tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMEvent]: ...

    def realtime(self, history: Sequence[Message] = (), *, tools: Sequence[ToolSpec] = ()) -> RealtimeStream: ...


# --- Output -------------------------------------------------------------------------


class Output(Backend):
    """Speaks text: a TTS voice yielding ``AudioOut``, or a remote avatar.

    ``speak`` receives the reply one sentence at a time, as the LLM writes it, and
    yields, per sentence, ``SpeakingStarted(text)``, any ``AudioOut`` and
    ``SpeakingEnded(text)``. ``interrupt`` stops speech at once (barge-in). When ``speak``
    raises, the engine retries or falls back, and the next ``speak`` starts at the first
    sentence whose ``SpeakingEnded`` it did not get.
    """

    role: ClassVar[Role] = "output"
    sample_rate: int = 24000  # the rate of the AudioOut it yields

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        raise NotImplementedError

    async def interrupt(self) -> None:
        """Stop speaking now; audio of the interrupted turn must not come later."""
