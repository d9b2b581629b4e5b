"""Gemini Live (``client.aio.live`` of ``google-genai``): a model that listens and speaks.

Two ways to use it, chosen by ``mode``:

``audio`` (the default for Live models)
    Speech to speech. The engine opens the stream ``realtime(history)`` once per
    conversation, pushes 16 kHz microphone PCM into it and gets the user's transcript,
    the model's 24 kHz audio and its transcript back (see :mod:`.stream` for the exact
    event policy). It replaces both STT and TTS.

``text``
    A text LLM for a cascade (STT → Gemini Live → TTS). ``respond`` streams
    ``TextDelta``/``LLMDone`` over one live session kept for the whole conversation
    (opened by ``start``; turns on it are sequential). Native-audio models cannot
    answer in TEXT, so for them the live session asks for AUDIO with an output
    transcription, streams the transcription and throws the audio away; other Live
    models answer in TEXT (``response_modality`` overrides).

Tools: either way, the tools given (``realtime(history, tools=...)``, ``respond(...,
tools=...)``) are declared in the live session's setup, which cannot change them later (text
mode opens a new live session when the tools change). The model's ``toolCall`` gives
``ToolCall`` events, the results go back as a ``toolResponse`` (``send_tool_response``, by
id and name), and ``toolCallCancellation`` (the user interrupted) gives ``ToolCallsCancelled``.

Either way the live session survives the service's connection limit: on ``goAway`` or
a dropped socket it reconnects with the newest resumption handle and sends again what
the resumed live session has not seen, so no turn is lost or answered twice (:mod:`.link`,
:mod:`.replay`). Reconnecting follows the llm role's ``retry:`` policy; errors are sorted
by :mod:`.failures`. TLS: the SDK always uses ``wss://`` and trusts ``SSL_CERT_FILE``
when set; ``ca_file`` trusts one more PEM bundle (a proxy, or a local test server).
"""

from __future__ import annotations

import os
import re
import ssl
import warnings
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from voicekit.errors import VoicekitError
from voicekit.events import LLMEvent
from voicekit.options import CloudOptions, RetryPolicy
from voicekit.plugins.llm.gemini_live import functions
from voicekit.plugins.llm.gemini_live.failures import Account, service_error
from voicekit.plugins.llm.gemini_live.link import LiveLink
from voicekit.plugins.llm.gemini_live.stream import GeminiRealtimeStream, Transcript
from voicekit.plugins.llm.gemini_live.text import LiveTextChat, transcript_of
from voicekit.plugins.llm.gemini_live.wire import language_code, language_name
from voicekit.roles import LLM, BackendContext, Capabilities, Message, ModelInfo, ToolSpec
from voicekit.sdk import import_sdk

FALLBACK_KEY_ENV = "GOOGLE_API_KEY"
# Checked 2026-12-04 against Google's "Gemini deprecations" page and the Gemini 3.8 Live model page
# (ai.google.dev, September 2026): gemini-3.8-live is the stable Live model (released 2026-09-15), answers
# in audio only (text comes as its output transcription) and succeeds gemini-3.1-flash-live-preview and
# the 2.5 native-audio previews.
DEFAULT_MODEL = "gemini-3.8-live"
AUDIO_CAPABILITIES = Capabilities(
    streaming=True, accepts_audio=True, produces_audio=True, sample_rates=(16000,), tools=True
)
TEXT_CAPABILITIES = Capabilities(streaming=True, tools=True)


class GeminiLiveOptions(CloudOptions):
    """Options of the Gemini Live backend."""

    model: str = Field(
        DEFAULT_MODEL,
        description="Live model: gemini-3.8-live (audio out only; text mode uses its transcription); "
        "see 'voicekit models list --backend gemini_live'",
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
        "stream.activity_start()/activity_end()",
    )
    response_modality: Literal["auto", "text", "audio"] = Field(
        "auto", description="text mode only: audio+transcription (native-audio models) or text; auto picks by model"
    )
    api_version: str | None = Field(None, description="API version in the socket path; default v1beta (Vertex: SDK's)")
    vertexai: bool = Field(False, description="Use Vertex AI instead of the Gemini API (project/location or api_key)")
    project: str | None = Field(None, description="Vertex project; default GOOGLE_CLOUD_PROJECT")
    location: str | None = Field(None, description="Vertex location; default GOOGLE_CLOUD_LOCATION or us-central1")
    context_window_compression: bool = Field(
        True, description="Sliding-window context compression, so live sessions can outlast the context limit"
    )
    compression_trigger_tokens: int | None = Field(
        None, gt=0, le=10_000_000, description="Context size that triggers compression"
    )
    session_resumption: bool = Field(True, description="Resume on a new connection after goAway or a dropped socket")
    ca_file: str | None = Field(
        None, description="PEM file of extra certificate authorities to trust (else SSL_CERT_FILE)"
    )
    max_retries: int | None = Field(
        None, ge=0, le=10, description="Deprecated: set retry: {attempts: N} in the llm section (N = max_retries + 1)"
    )
    reply_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Longest silence of the model while a typed turn waits for its reply or a reply is under way; "
        "then the connection is replaced (retried by the retry policy)",
    )

    @field_validator("max_retries")
    @classmethod
    def _max_retries_is_deprecated(cls, value: int | None) -> int | None:
        if value is not None:
            warnings.warn(
                f"llm.max_retries is deprecated: set retry: {{attempts: {value + 1}}} in the llm section "
                "(attempts count the first try too)",
                DeprecationWarning,
                stacklevel=2,
            )
        return value


class GeminiLiveLLM(LLM):
    """Google Gemini Live through ``google-genai``: speech to speech, or text over one live session.

    The key comes from ``api_key``, ``GEMINI_API_KEY`` or, failing both,
    ``GOOGLE_API_KEY`` (Vertex may use application default credentials instead).
    The backend keeps the live session (one per stream, or one for text mode) and
    reconnects it by ``context.retry``; the history the core hands over seeds a fresh
    live session, and text mode keeps its own transcript of the turns it carried, to
    seed a new one if resuming is refused.
    """

    Options: ClassVar[type[GeminiLiveOptions]] = GeminiLiveOptions
    capabilities = AUDIO_CAPABILITIES  # the default mode's; see capabilities_for
    api_key_env: ClassVar[str | None] = "GEMINI_API_KEY"
    api_key_fallback_envs: ClassVar[tuple[str, ...]] = (FALLBACK_KEY_ENV,)
    extra: ClassVar[str | None] = "google"
    sdk_distributions: ClassVar[tuple[str, ...]] = ("google-genai",)
    options: GeminiLiveOptions

    def __init__(self, options: GeminiLiveOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.mode: Literal["audio", "text"] = resolve_mode(self.options.mode, self.options.model)
        self._client: Any = None
        self._types: Any = None
        self._links: list[LiveLink] = []
        self._text: LiveTextChat | None = None  # text mode's, made at the first use (the label is known by then)

    @classmethod
    def capabilities_for(cls, options: GeminiLiveOptions) -> Capabilities:
        """Speech to speech in audio mode; a text LLM in text mode; tools in both."""
        return AUDIO_CAPABILITIES if resolve_mode(options.mode, options.model) == "audio" else TEXT_CAPABILITIES

    @property
    def native_audio(self) -> bool:
        return is_native_audio(self.options.model)

    @property
    def audio_replies(self) -> bool:
        """Whether the live session asks for AUDIO (else TEXT)."""
        if self.mode == "audio" or self.options.response_modality == "audio":
            return True
        return self.options.response_modality == "auto" and self.native_audio

    # --- credentials and client ---------------------------------------------------------

    async def start(self) -> None:
        if self._client is None:
            self._client = self._make_client()
        if self.mode == "text":
            await self._text_chat().start()

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

    async def list_models(self) -> list[ModelInfo]:
        """The Live models (``bidiGenerateContent``) this key may use (``models.list``)."""
        from voicekit.plugins.llm._gemini_models import list_models

        client = self._make_client()
        return await list_models(client, method="bidiGenerateContent", label=self.label, key_env=self.key_source)

    def chosen_model(self) -> str | None:
        return self.options.model

    async def aclose(self) -> None:
        links, self._links = self._links, []
        if self._text is not None:
            self._text.forget()
        for link in links:
            await link.aclose()
        client, self._client = self._client, None
        if client is not None:
            await client.aio.aclose()
            client.close()

    # --- live sessions ------------------------------------------------------------------

    def realtime(self, history: Sequence[Message] = (), *, tools: Sequence[ToolSpec] = ()) -> GeminiRealtimeStream:
        """The speech-to-speech stream (``mode: audio``), with ``tools`` declared; use it as an
        async context manager."""
        if self.mode != "audio":
            raise VoicekitError(f"{self.label} is in text mode; set llm.mode=audio to talk to it")
        transcript = transcript_of(history)
        link = self._open_link(transcript, tools)
        return GeminiRealtimeStream(link, transcript, client_activity=self.options.activity_detection == "client")

    def _open_link(self, transcript: Transcript, tools: Sequence[ToolSpec] = ()) -> LiveLink:
        """A live session with ``tools`` that seeds a fresh start from ``transcript`` (started when first read)."""
        if self._client is None:
            self._client = self._make_client()

        def connect(handle: str | None) -> tuple[Any, list[Any] | None]:
            seed = None if handle else self._seed(transcript, leave_out=link.queued_texts())
            config = self.live_config(handle=handle, seeding=bool(seed), tools=tools)
            return self._client.aio.live.connect(model=self.options.model, config=config), seed

        link = LiveLink(
            connect=connect,
            translate=self.translate_error,
            types=self._types,
            label=self.label,
            retry=self.retry_policy,
            resume=self.options.session_resumption,
            connect_timeout_s=self.options.timeout_s,
            reply_timeout_s=self.options.reply_timeout_s,
        )
        self._links.append(link)
        return link

    async def _close_link(self, link: LiveLink) -> None:
        self._links.remove(link)
        await link.aclose()

    @property
    def retry_policy(self) -> RetryPolicy:
        """The llm role's ``retry:`` policy (the deprecated ``max_retries`` still sets its attempts)."""
        policy = self.context.retry
        if self.options.max_retries is not None:
            policy = policy.model_copy(update={"attempts": self.options.max_retries + 1})
        return policy

    def live_config(self, *, handle: str | None = None, seeding: bool = False, tools: Sequence[ToolSpec] = ()) -> Any:
        """The SDK's ``LiveConnectConfig`` for this backend's options and ``tools``."""
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
        if tools:
            config["tools"] = [functions.declarations(t, tools)]
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

    def _seed(self, transcript: Transcript, leave_out: Sequence[str] = ()) -> list[Any] | None:
        """The conversation so far as Content turns (roles alternate), for a fresh live session.

        ``leave_out``: typed turns still to be sent, which end the transcript already.
        """
        turns = list(transcript)
        pending = list(leave_out)
        while turns and pending and turns[-1] == ("user", pending[-1]):
            turns.pop()
            pending.pop()
        merged: list[tuple[str, list[str]]] = []
        for role, text in turns:
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

    async def respond(
        self, history: Sequence[Message], user_text: str, *, tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMEvent]:
        """Text mode: the reply to ``user_text`` over the conversation's live session (see :class:`LiveTextChat`)."""
        if self.mode != "text":
            raise VoicekitError(f"{self.label} is in audio mode: it answers through realtime(); set llm.mode=text")
        async for event in self._text_chat().respond(history, user_text, tools=tools):
            yield event

    def _text_chat(self) -> LiveTextChat:
        if self._text is None:
            self._text = LiveTextChat(
                open_link=self._open_link,
                close_link=self._close_link,
                label=self.label,
                text_from="transcription" if self.audio_replies else "parts",
            )
        return self._text

    # --- errors ---------------------------------------------------------------------------

    def translate_error(self, exc: BaseException) -> VoicekitError | None:
        """The error to raise for a failure of the service, or None when reconnecting may help."""
        account = Account(
            label=self.label,
            model=self.options.model,
            default_model=DEFAULT_MODEL,
            vertexai=self.options.vertexai,
            key_source=self.key_source,
            key_env=self.api_key_env,
        )
        return service_error(exc, account)


def resolve_mode(mode: str, model: str) -> Literal["audio", "text"]:
    if mode in ("audio", "text"):
        return mode  # type: ignore[return-value]
    return "audio" if is_native_audio(model) or "live" in model.lower() else "text"


def is_native_audio(model: str) -> bool:
    """Native-audio models speak themselves (and cannot answer in TEXT)."""
    name = model.lower()
    return "native-audio" in name or re.search(r"gemini-[3-9][\d.]*-[a-z-]*live", name) is not None
