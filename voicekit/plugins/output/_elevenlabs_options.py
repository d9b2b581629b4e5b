"""The options of ``output: elevenlabs`` and the addresses and settings derived from them."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import Field

from voicekit.options import CloudOptions

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
_NO_LANGUAGE_CODE = ("eleven_multilingual_v2", "eleven_monolingual_v1", "eleven_multilingual_v1")


class ElevenLabsOptions(CloudOptions):
    """Options of the ElevenLabs voice (retries follow the role's ``retry:`` policy)."""

    voice_id: str = Field("JBFqnCBsd6RMkjVDRZzb", description="Voice to speak with (an id from the voice library)")
    model: str = Field(
        # Checked 2026-12-04 against ElevenLabs' "Models" overview (elevenlabs.io/docs/overview/models):
        # Flash v2.5 is the current real-time model (~75 ms); the Turbo models are being retired in its favour.
        "eleven_flash_v2_5",
        description="eleven_flash_v2_5 (fastest, 32 languages), eleven_multilingual_v2, eleven_v3",
    )
    output_format: Literal["pcm_16000", "pcm_22050", "pcm_24000"] = Field(
        "pcm_24000", description="Raw 16-bit PCM at this sample rate"
    )
    language: str | None = Field(None, description="ISO 639-1 language code; default: the profile's language")
    stability: float = Field(0.5, ge=0.0, le=1.0, description="Voice stability")
    similarity_boost: float = Field(0.75, ge=0.0, le=1.0, description="How closely to keep to the original voice")
    style: float = Field(0.0, ge=0.0, le=1.0, description="Style exaggeration (V2+ models)")
    speed: float = Field(1.0, ge=0.7, le=1.2, description="Speaking speed")
    use_speaker_boost: bool = Field(True, description="Boost similarity to the original speaker")
    chunk_length_schedule: list[Annotated[int, Field(ge=50, le=500)]] | None = Field(
        None,
        min_length=1,
        max_length=10,
        description="Characters buffered before each audio chunk is generated (each 50-500); default: service's",
    )
    flush_each_sentence: bool = Field(
        True, description="Flush after every sentence so its audio starts at once (else only at the end of a turn)"
    )
    auto_mode: bool = Field(False, description="Let the service skip its chunk schedule (for whole sentences)")
    inactivity_timeout_s: int | None = Field(
        None, ge=1, le=180, description="Service's idle timeout for a context; default: the service's (20 s)"
    )
    keepalive_s: float = Field(8.0, gt=0, le=180, description="Idle time after which a keep-alive is sent")
    transport: Literal["websocket", "http"] = Field(
        "websocket", description="websocket: one multi-context socket per conversation; http: one request per sentence"
    )

    @property
    def http_base_url(self) -> str:
        """The REST base (``https://api.elevenlabs.io`` unless ``base_url`` says otherwise)."""
        parts = urlsplit((self.base_url or DEFAULT_BASE_URL).rstrip("/"))
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path, "", ""))

    def language_code(self, profile_language: str | None) -> str | None:
        """The ISO 639-1 code to send, or ``None`` for models that take none."""
        language = self.language or profile_language
        if not language or self.model in _NO_LANGUAGE_CODE:
            return None
        return language.replace("_", "-").split("-")[0].lower()

    def websocket_url(self, language_code: str | None) -> str:
        """The multi-context socket address: the HTTP base with ws(s) and the query."""
        parts = urlsplit(self.http_base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query: dict[str, str] = {"model_id": self.model, "output_format": self.output_format}
        if language_code:
            query["language_code"] = language_code
        if self.inactivity_timeout_s is not None:
            query["inactivity_timeout"] = str(self.inactivity_timeout_s)
        query["sync_alignment"] = "true"  # alignment per chunk is what splits audio between sentences
        if self.auto_mode:
            query["auto_mode"] = "true"
        path = f"{parts.path}/v1/text-to-speech/{self.voice_id}/multi-stream-input"
        return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))

    def voice_settings(self) -> dict[str, Any]:
        return {
            "stability": self.stability,
            "similarity_boost": self.similarity_boost,
            "style": self.style,
            "speed": self.speed,
            "use_speaker_boost": self.use_speaker_boost,
        }
