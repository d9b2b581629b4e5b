"""Gemini Live (``client.aio.live`` of ``google-genai``): a model that listens and speaks.

Two ways to use it, chosen by ``mode``:

``audio`` (the default for Live models)
    Speech to speech. The engine opens ``realtime(history)`` once per conversation,
    pushes 16 kHz microphone PCM into it and gets the user's transcript, the model's
    24 kHz audio and its transcript back (see :mod:`.gemini_live_session` for the
    exact event policy). It replaces both STT and TTS.

``text``
    A text LLM for a cascade (STT → Gemini Live → TTS). ``respond`` streams
    ``TextDelta``/``LLMDone`` over one Live session kept for the whole conversation
    (opened by ``start``; turns on it are sequential). Native-audio models cannot
    answer in TEXT, so for them the session asks for AUDIO with an output
    transcription, streams the transcription and throws the audio away; other Live
    models answer in TEXT (``response_modality`` overrides).

Either way the session survives the service's connection limit: on ``goAway`` or a
dropped socket it reconnects with the newest resumption handle (:mod:`.gemini_live_link`).
TLS: the SDK always uses ``wss://`` and trusts ``SSL_CERT_FILE`` when set; ``ca_file``
trusts one more PEM bundle (a proxy, or a local test server).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from voicekit.errors import AuthError, BackendError, VoicekitError
from voicekit.events import LLMDone, LLMEvent, TextDelta
from voicekit.options import CloudOptions
from voicekit.plugins.llm.gemini_live.link import LiveLink
from voicekit.plugins.llm.gemini_live.stream import GeminiRealtimeStream, Transcript
from voicekit.plugins.llm.gemini_live.wire import language_code, language_name
from voicekit.roles import LLM, BackendContext, Capabilities, Message
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

FALLBACK_KEY_ENV = "GOOGLE_API_KEY"
DEFAULT_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
AUDIO_CAPABILITIES = Capabilities(streaming=True, accepts_audio=True, produces_audio=True, sample_rates=(16000,))
TEXT_CAPABILITIES = Capabilities(streaming=True)


class GeminiLiveOptions(CloudOptions):
    """Options of the Gemini Live backend."""

    model: str = Field(
        DEFAULT_MODEL,
        description="Live model: gemini-2.5-flash-native-audio-preview-12-2025, gemini-3.1-flash-live-preview; "
        "on Vertex gemini-live-2.5-flash-native-audio",
    )
    mode: Literal["auto", "audio", "text"] = Field(
        "auto",
        description="audio: speech to speech (replaces STT and TTS); text: a text LLM; auto: audio for Live models",
    )
    voice: str | None = Field(
        None, description="Prebuilt voice, e.g. Puck, Aoede, Charon, Kore, Fenrir, Leda, Orus, Zephyr"
    )
    language: str | None = Field(None, description="Spoken language (ru or ru-RU); default: the profile's language")
    language_instruction: bool = Field(
        True,
        description="Native-audio models pick their language themselves: also ask for it in the system instruction",
    )
    system: str | None = Field(None, description="System instruction: who the assistant is and how it answers")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature; default: the model's")
    activity_detection: Literal["server", "client"] = Field(
        "server",
        description="server: the service detects speech; client: the caller marks it with "
        "session.activity_start()/activity_end()",
    )
    response_modality: Literal["auto", "text", "audio"] = Field(
        "auto", description="text mode only: audio+transcription (native-audio models) or text; auto picks by model"
    )
    api_version: str | None = Field(None, description="API version in the socket path; default v1beta (Vertex: SDK's)")
    vertexai: bool = Field(False, description="Use Vertex AI instead of the Gemini API (project/location or api_key)")
    project: str | None = Field(None, description="Vertex project; default GOOGLE_CLOUD_PROJECT")
    location: str | None = Field(None, description="Vertex location; default GOOGLE_CLOUD_LOCATION or us-central1")
    context_window_compression: bool = Field(
        True, description="Sliding-window context compression, so sessions can outlast the context limit"
    )
    compression_trigger_tokens: int | None = Field(None, gt=0, description="Context size that triggers compression")
    session_resumption: bool = Field(True, description="Resume on a new connection after goAway or a dropped socket")
    ca_file: str | None = Field(
        None, description="PEM file of extra certificate authorities to trust (else SSL_CERT_FILE)"
    )
    max_retries: int = Field(3, ge=0, le=10, description="Reconnection attempts in a row before giving up")
    reply_timeout_s: float = Field(30.0, gt=0, description="text mode: longest wait for the next piece of a reply")


class GeminiLiveLLM(LLM):
    """Google Gemini Live through ``google-genai``: speech to speech, or text over one live session.

    The key comes from ``api_key``, ``GEMINI_API_KEY`` or, failing both,
    ``GOOGLE_API_KEY`` (Vertex may use application default credentials instead).
    """

    Options: ClassVar[type[GeminiLiveOptions]] = GeminiLiveOptions
    capabilities = AUDIO_CAPABILITIES  # the default mode's; see capabilities_for
    api_key_env: ClassVar[str | None] = "GEMINI_API_KEY"
    api_key_fallback_envs: ClassVar[tuple[str, ...]] = (FALLBACK_KEY_ENV,)
    extra: ClassVar[str | None] = "google"
    options: GeminiLiveOptions

    def __init__(self, options: GeminiLiveOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.mode: Literal["audio", "text"] = resolve_mode(self.options.mode, self.options.model)
        self._client: Any = None
        self._types: Any = None
        self._links: list[LiveLink] = []
        self._text_link: LiveLink | None = None
        self._text_transcript: Transcript = []
        self._text_synced = False
        self._turn_open = False  # text mode: a reply was left unread; its rest comes first

    @classmethod
    def capabilities_for(cls, options: GeminiLiveOptions) -> Capabilities:
        """Speech to speech in audio mode; a plain text LLM in text mode."""
        return AUDIO_CAPABILITIES if resolve_mode(options.mode, options.model) == "audio" else TEXT_CAPABILITIES

    @property
    def native_audio(self) -> bool:
        return is_native_audio(self.options.model)

    @property
    def audio_replies(self) -> bool:
        """Whether the session asks for AUDIO (else TEXT)."""
        if self.mode == "audio" or self.options.response_modality == "audio":
            return True
        return self.options.response_modality == "auto" and self.native_audio

    # --- credentials and client ---------------------------------------------------------

    async def start(self) -> None:
        if self._client is None:
            self._client = self._make_client()
        if self.mode == "text" and self._text_link is None:
            await self._open_text_link([])

    def _make_client(self) -> Any:
        opts = self.options
        key: str | None = None
        if not opts.vertexai:
            key = self.api_key()
        elif opts.api_key is not None or os.environ.get(str(self.api_key_env)):
            key = self.api_key()  # Vertex express mode
        genai = import_sdk("google.genai", package="google-genai", extra="google", backend=self.name or "gemini_live")
        self._types = import_sdk("google.genai.types", package="google-genai", extra="google")
        client_args: dict[str, Any] | None = None
        if opts.ca_file:
            client_args = {"ssl": ssl.create_default_context(cafile=opts.ca_file)}
        http_options = self._types.HttpOptions(
            base_url=opts.base_url,
            api_version=opts.api_version or (None if opts.vertexai else "v1beta"),
            async_client_args=client_args,
        )
        if opts.vertexai and key is None:
            return genai.Client(
                vertexai=True,
                project=opts.project or os.environ.get("GOOGLE_CLOUD_PROJECT"),
                location=opts.location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "us-central1",
                http_options=http_options,
            )
        return genai.Client(api_key=key, vertexai=opts.vertexai, http_options=http_options)

    async def aclose(self) -> None:
        links, self._links = self._links, []
        self._text_link = None
        for link in links:
            await link.aclose()
        client, self._client = self._client, None
        if client is not None:
            await client.aio.aclose()
            client.close()

    # --- sessions -----------------------------------------------------------------------

    def realtime(self, history: Sequence[Message] = ()) -> GeminiRealtimeStream:
        """Open the speech-to-speech session (``mode: audio``); use it as an async context manager."""
        if self.mode != "audio":
            raise VoicekitError(f"{self.label} is in text mode; set llm.mode=audio to talk to it")
        if self._client is None:
            self._client = self._make_client()
        transcript = _transcript(history)
        link = self._new_link(transcript)
        return GeminiRealtimeStream(link, transcript, client_activity=self.options.activity_detection == "client")

    def _new_link(self, transcript: Transcript) -> LiveLink:
        def connect(handle: str | None) -> tuple[Any, list[Any] | None]:
            seed = None if handle else self._seed(transcript)
            config = self.live_config(handle=handle, seeding=bool(seed))
            return self._client.aio.live.connect(model=self.options.model, config=config), seed

        link = LiveLink(
            connect=connect,
            translate=self.translate_error,
            types=self._types,
            label=self.label,
            resume=self.options.session_resumption,
            connect_timeout_s=self.options.timeout_s,
            max_retries=self.options.max_retries,
        )
        self._links.append(link)
        return link

    def live_config(self, *, handle: str | None = None, seeding: bool = False) -> Any:
        """The SDK's ``LiveConnectConfig`` for this backend's options."""
        t, opts = self._types, self.options
        config: dict[str, Any] = {
            "response_modalities": [t.Modality.AUDIO if self.audio_replies else t.Modality.TEXT],
            "temperature": opts.temperature,
            "system_instruction": self.system_instruction(),
        }
        if self.audio_replies:
            voice = None
            if opts.voice:
                voice = t.VoiceConfig(prebuilt_voice_config=t.PrebuiltVoiceConfig(voice_name=opts.voice))
            lang = self.language
            if voice is not None or lang:
                config["speech_config"] = t.SpeechConfig(voice_config=voice, language_code=lang and language_code(lang))
            config["output_audio_transcription"] = t.AudioTranscriptionConfig()
        if self.mode == "audio":
            config["input_audio_transcription"] = t.AudioTranscriptionConfig()
            if opts.activity_detection == "client":
                config["realtime_input_config"] = t.RealtimeInputConfig(
                    automatic_activity_detection=t.AutomaticActivityDetection(disabled=True)
                )
        if opts.session_resumption:
            config["session_resumption"] = t.SessionResumptionConfig(handle=handle)
        if opts.context_window_compression:
            config["context_window_compression"] = t.ContextWindowCompressionConfig(
                sliding_window=t.SlidingWindow(), trigger_tokens=opts.compression_trigger_tokens
            )
        if seeding:
            config["history_config"] = t.HistoryConfig(initial_history_in_client_content=True)
        return t.LiveConnectConfig(**config)

    @property
    def language(self) -> str | None:
        return self.options.language or self.context.language

    def system_instruction(self) -> str | None:
        parts = [self.options.system] if self.options.system else []
        lang = self.language
        if lang and self.native_audio and self.audio_replies and self.options.language_instruction:
            parts.append(f"Always speak {language_name(lang)}.")
        return "\n".join(parts) or None

    def _seed(self, transcript: Transcript) -> list[Any] | None:
        """The conversation so far as Content turns (roles alternate), for a fresh session."""
        merged: list[tuple[str, list[str]]] = []
        for role, text in transcript:
            if not text.strip():
                continue
            wire_role = "model" if role == "assistant" else "user"
            if merged and merged[-1][0] == wire_role:
                merged[-1][1].append(text)
            else:
                merged.append((wire_role, [text]))
        t = self._types
        return [t.Content(role=role, parts=[t.Part(text=" ".join(texts))]) for role, texts in merged] or None

    # --- text mode ------------------------------------------------------------------------

    async def _open_text_link(self, history: Sequence[Message]) -> LiveLink:
        if self._client is None:
            self._client = self._make_client()
        self._text_transcript = _transcript(history)
        self._turn_open = False
        link = self._text_link = self._new_link(self._text_transcript)
        await link.ready()
        return link

    async def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        if self.mode != "text":
            raise VoicekitError(f"{self.label} is in audio mode: it answers through realtime(); set llm.mode=text")
        link = self._text_link
        reopen = link is not None and not self._text_synced and any(m.text.strip() for m in history)
        if link is not None and (reopen or link.failed is not None):
            # opened by start() before the history was known, or failed (quota, network): start over
            self._links.remove(link)
            await link.aclose()
            link = None
        if link is None:
            link = await self._open_text_link(history if not self._text_synced else _as_history(self._text_transcript))
        self._text_synced = True
        skipping, self._turn_open = self._turn_open, True
        self._text_transcript.append(("user", user_text))
        link.send("text", user_text)
        pieces: list[str] = []
        try:
            async for update in self._reply_updates(link, skipping):
                text = update.output_text if self.audio_replies else update.model_text
                if text:
                    pieces.append(text)
                    yield TextDelta(text)
                if update.turn_complete or update.interrupted or update.connection_lost:
                    break
            self._turn_open = False
        finally:
            if pieces:
                self._text_transcript.append(("assistant", "".join(pieces)))
        yield LLMDone("".join(pieces))

    async def _reply_updates(self, link: LiveLink, skipping: bool) -> AsyncIterator[Any]:
        """Updates of this turn's reply, after the rest of an abandoned one."""
        swallow_complete = False
        while True:
            try:
                update = await asyncio.wait_for(link.next_update(), self.options.reply_timeout_s)
            except TimeoutError:
                raise BackendError(
                    f"{self.label}: no reply within {self.options.reply_timeout_s:g} s", retryable=True
                ) from None
            if update is None:
                raise BackendError(f"{self.label}: the live session closed during a reply", retryable=True)
            if skipping:
                if update.interrupted or update.turn_complete or update.connection_lost:
                    skipping = False
                    swallow_complete = update.interrupted and not update.turn_complete
                continue
            if swallow_complete:
                if update.turn_complete and not update.model_output:
                    swallow_complete = False
                    continue  # closes the interrupted turn
                if update.model_output or update.interrupted:
                    swallow_complete = False
            yield update

    # --- errors ---------------------------------------------------------------------------

    def translate_error(self, exc: BaseException) -> VoicekitError | None:
        """The error to raise for a failure of the service, or None when reconnecting may help."""
        if isinstance(exc, VoicekitError):
            return exc
        if _find(exc, ssl.SSLCertVerificationError) is not None:
            return BackendError(
                f"{self.label}: the server's TLS certificate is not trusted ({exc}); "
                "set SSL_CERT_FILE or llm.ca_file, or check llm.base_url"
            )
        if any(type(e).__name__ in ("DefaultCredentialsError", "RefreshError") for e in _chain(exc)):
            return AuthError(
                f"{self.label}: no usable Google Cloud credentials for Vertex AI ({exc}); set "
                "GOOGLE_APPLICATION_CREDENTIALS or run 'gcloud auth application-default login', or use GEMINI_API_KEY"
            )
        code, reason = close_info(exc)
        text = reason.lower()
        said = f" (server said: {code} {reason})" if reason else f" ({code})"
        if code in (401, 403) or "api key" in text or "unauthenticated" in text or "permission_denied" in text:
            where = "your Google Cloud credentials" if self.options.vertexai and self.key_source is None else None
            fix = f"check {where}" if where else f"set a valid key in {self.key_source or self.api_key_env}"
            return AuthError(f"{self.label}: the Gemini Live service rejected the API key{said}; {fix}")
        if code == 404 and "model" not in text:
            return BackendError(f"{self.label}: no Live endpoint at this address{said}; check llm.base_url")
        if ("model" in text and "not found" in text) or "not supported for bidigeneratecontent" in text:
            return BackendError(
                f"{self.label}: model {self.options.model!r} is not available for the Live API{said}; "
                f"set option llm.model (e.g. {DEFAULT_MODEL})"
            )
        if code == 429 or "quota" in text or "resource_exhausted" in text or "exhausted" in text:
            return BackendError(
                f"{self.label}: Gemini Live quota or rate limit reached{said}; retry later or check your plan",
                retryable=True,
            )
        if code in (400, 1007, 1008):
            return BackendError(f"{self.label}: the service refused the session{said}; check the llm options")
        return None


def resolve_mode(mode: str, model: str) -> Literal["audio", "text"]:
    if mode in ("audio", "text"):
        return mode  # type: ignore[return-value]
    return "audio" if is_native_audio(model) or "live" in model.lower() else "text"


def is_native_audio(model: str) -> bool:
    """Native-audio models speak themselves (and cannot answer in TEXT)."""
    name = model.lower()
    return "native-audio" in name or re.search(r"gemini-[3-9][\d.]*-[a-z-]*live", name) is not None


def close_info(exc: BaseException) -> tuple[int | None, str]:
    """(code, reason) of an SDK APIError, a websocket close, or an HTTP handshake refusal."""
    code: int | None = None
    reason = ""
    if hasattr(exc, "code") and hasattr(exc, "details"):  # google.genai.errors.APIError
        code = exc.code
        details = exc.details
        reason = details if isinstance(details, str) else str(getattr(exc, "message", "") or details or "")
    elif getattr(exc, "rcvd", None) is not None:  # websockets.ConnectionClosed
        code, reason = exc.rcvd.code, exc.rcvd.reason  # type: ignore[attr-defined]
    elif getattr(getattr(exc, "response", None), "status_code", None) is not None:  # websockets.InvalidStatus
        code = exc.response.status_code  # type: ignore[attr-defined]
        reason = bytes(getattr(exc.response, "body", b"") or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
    else:
        reason = str(exc) or type(exc).__name__
    reason = " ".join(str(reason).split())
    return (int(code) if isinstance(code, int) else None), (reason[:200] + "…" if len(reason) > 200 else reason)


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and its causes, innermost last."""
    chain: list[BaseException] = []
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _find(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _transcript(history: Sequence[Message]) -> Transcript:
    return [(m.role, m.text) for m in history if m.text.strip()]


def _as_history(transcript: Transcript) -> list[Message]:
    return [Message(role, text) for role, text in transcript]
