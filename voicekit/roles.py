"""The three roles a backend can play: STT, LLM and Output.

A backend is a class with an ``Options`` pydantic model, ``capabilities`` and, for
cloud services, ``api_key_env``. It is built from its options, opened with
``start()`` and closed with ``aclose()`` (safe to call twice). Vendor SDKs are
imported inside ``start()`` through :func:`import_sdk`, never at module level.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from voicekit.errors import MissingExtraError, MissingSecretError
from voicekit.events import LLMEvent, OutputEvent, RealtimeEvent, STTEvent

if TYPE_CHECKING:
    from pydantic import BaseModel

    from voicekit.sessions import RemoteSessions

Role = Literal["stt", "llm", "output"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the engine plans the conversation from these."""

    streaming: bool = True
    interim_results: bool = False
    languages: tuple[str, ...] = ()  # empty: any language
    sample_rates: tuple[int, ...] = (16000,)  # STT input / output audio rates it can use
    accepts_audio: bool = False  # a realtime LLM that takes microphone PCM
    produces_audio: bool = False  # an LLM or output that yields AudioOut
    remote_session: bool = False  # opens a billable remote session


@dataclass(frozen=True)
class Message:
    """One entry of the conversation history the core keeps."""

    role: Literal["user", "assistant"]
    text: str
    interrupted: bool = False


@dataclass
class BackendContext:
    """What the core hands every backend: conversation-wide settings and services."""

    language: str | None = None
    conversation_id: str = ""
    remote_sessions: RemoteSessions | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base of every backend. Subclass one of :class:`STT`, :class:`LLM`, :class:`Output`."""

    role: ClassVar[Role]
    Options: ClassVar[type[BaseModel]]
    capabilities: ClassVar[Capabilities] = Capabilities()
    api_key_env: ClassVar[str | None] = None
    api_key_fallback_envs: ClassVar[tuple[str, ...]] = ()  # read when api_key_env is not set
    extra: ClassVar[str | None] = None  # the pip extra that brings the vendor SDK
    name: str = ""  # the name it was registered under; set by the registry
    key_source: str | None = None  # where api_key() found the key

    def __init__(self, options: Any = None, context: BackendContext | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.context = context or BackendContext()

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
        variable, in that order; a clear error naming the variables if none is set.
        ``key_source`` then says where it came from, for error messages."""
        opt: Any = getattr(self.options, "api_key", None)
        value = opt.get_secret_value() if hasattr(opt, "get_secret_value") else (str(opt) if opt else "")
        if value:
            self.key_source = f"{self.role}.api_key" + (f" (or {self.api_key_env})" if self.api_key_env else "")
            return str(value)
        for env in (self.api_key_env, *self.api_key_fallback_envs):
            if env and os.environ.get(env):
                self.key_source = env
                return os.environ[env]
        names = [env for env in (self.api_key_env, *self.api_key_fallback_envs) if env]
        where = f"set the environment variable {names[0]}" + (
            f" (or {', '.join(names[1:])})" if names[1:] else "") if names else "set api_key in the profile"
        raise MissingSecretError(f"{self.name or type(self).__name__}: no API key; {where}")

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name or type(self).__name__}"


def import_sdk(module: str, *, package: str, extra: str, backend: str | None = None) -> ModuleType:
    """Import a vendor SDK module, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and not module.startswith(exc.name) and not exc.name.startswith(module.split(".")[0]):
            raise  # a broken install of something else: show it as it is
        raise MissingExtraError(package, extra, backend) from exc


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
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if asyncio.current_task() and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise

    def __aiter__(self) -> AsyncIterator[STTEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[STTEvent]:
        while (item := await self._events.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item


class STT(Backend):
    """Speech to text. ``stream()`` returns an :class:`STTStream` (an async context manager)."""

    role: ClassVar[Role] = "stt"

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> STTStream:
        raise NotImplementedError


# --- LLM ----------------------------------------------------------------------------


class RealtimeSession:
    """A live speech-to-speech session with a realtime model (accepts_audio LLMs).

    Push user PCM with ``push_audio`` (or text with ``send_text``); iterate to get
    transcripts of both sides, bot ``AudioOut``, ``Interrupted`` and ``LLMDone``.
    A session with ``client_activity`` wants the engine's VAD edges as
    ``activity_start``/``activity_end`` instead of detecting speech itself.
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

    def __aiter__(self) -> AsyncIterator[RealtimeEvent]:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> RealtimeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class LLM(Backend):
    """A language model. ``respond`` streams the reply to ``user_text`` given ``history``."""

    role: ClassVar[Role] = "llm"

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        raise NotImplementedError

    def realtime(self, history: Sequence[Message] = ()) -> RealtimeSession:
        """For ``accepts_audio`` models: open a speech-to-speech session."""
        raise NotImplementedError(f"{self.label} does not take audio")


# --- Output -------------------------------------------------------------------------


class Output(Backend):
    """Speaks text: a TTS voice yielding ``AudioOut``, or a remote avatar.

    ``speak`` receives the reply one sentence at a time, as the LLM writes it, and
    yields, per sentence, ``SpeakingStarted(text)``, any ``AudioOut`` and
    ``SpeakingEnded(text)``. ``interrupt`` stops speech at once (barge-in).
    """

    role: ClassVar[Role] = "output"
    sample_rate: int = 24000  # the rate of the AudioOut it yields

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        raise NotImplementedError

    async def interrupt(self) -> None:
        """Stop speaking now; audio of the interrupted turn must not come later."""
