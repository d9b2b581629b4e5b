"""Pieces of the Google Speech-to-Text backend: the v1/v2 API adapters and the utterance joiner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voicekit.errors import BackendError, ProfileError
from voicekit.events import Final, Interim, SpeechStarted, STTEvent, UtteranceEnd
from voicekit.plugins import _gcloud
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

_NO_SPACE_LANGUAGES = frozenset({"ja", "zh", "cmn", "yue", "th", "lo", "km", "my"})
_CHIRP_LOCATIONS = {"chirp_3": "us", "chirp_2": "us-central1", "chirp": "us-central1"}


@dataclass
class Update:
    """One response, reduced to what the stream needs."""

    begin: bool = False
    end: bool = False
    finals: list[tuple[str, float, str]] = field(default_factory=list)  # text, confidence, language
    interim: str | None = None  # None: this response carried no interim text
    final_end_s: float | None = None  # stream-relative end of the last final result


class SpeechAPI:
    """The differences between v1 and v2: requests, endpoint, response fields."""

    default_host = "speech.googleapis.com"
    transport_cls: Any

    def __init__(self, options: Any) -> None:
        self.options = options
        self.metadata: tuple[tuple[str, str], ...] = ()
        self.client: Any = None
        self.who = "stt:google"

    def bind(self, connection: _gcloud.Connection, who: str) -> None:
        self.metadata = connection.metadata
        self.who = who

    async def open(self) -> Any:
        call = await self.client.streaming_recognize(requests=None, retry=None, timeout=None, metadata=self.metadata)
        return call

    def config_request(self, sample_rate: int, language: str) -> Any:
        raise NotImplementedError

    def audio_request(self, pcm: bytes) -> Any:
        raise NotImplementedError

    def parse(self, response: Any) -> Update:
        raise NotImplementedError

    def _parse_results(self, results: Any, update: Update, end_field: str) -> None:
        interim: list[str] = []
        for result in results:
            if not result.alternatives:
                continue
            alt = result.alternatives[0]
            if result.is_final:
                update.finals.append((alt.transcript, alt.confidence, result.language_code))
                end = getattr(result, end_field, None)
                if end is not None:
                    update.final_end_s = end.total_seconds()
            else:
                interim.append(alt.transcript)
        if interim:
            update.interim = "".join(interim)


class SpeechV1(SpeechAPI):
    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.sdk = import_sdk("google.cloud.speech_v1", package="google-cloud-speech", extra="google", backend="google")
        module = "google.cloud.speech_v1.services.speech.transports.grpc_asyncio"
        self.transport_cls = import_sdk(
            module, package="google-cloud-speech", extra="google"
        ).SpeechGrpcAsyncIOTransport

    def bind(self, connection: _gcloud.Connection, who: str) -> None:
        super().bind(connection, who)
        self.client = self.sdk.SpeechAsyncClient(transport=connection.transport)

    def config_request(self, sample_rate: int, language: str) -> Any:
        sdk, opts = self.sdk, self.options
        config = sdk.RecognitionConfig(
            encoding=sdk.RecognitionConfig.AudioEncoding.LINEAR16,
            sample_rate_hertz=sample_rate,
            audio_channel_count=1,
            language_code=language,
            model=opts.model or "latest_long",
            enable_automatic_punctuation=opts.punctuation,
        )
        streaming = sdk.StreamingRecognitionConfig(
            config=config,
            interim_results=opts.interim_results,
            enable_voice_activity_events=opts.voice_activity_events,
        )
        return sdk.StreamingRecognizeRequest(streaming_config=streaming)

    def audio_request(self, pcm: bytes) -> Any:
        return self.sdk.StreamingRecognizeRequest(audio_content=pcm)

    def parse(self, response: Any) -> Update:
        if response.error and response.error.code:
            raise BackendError(
                f"{self.who}: the service reported error {response.error.code}: {response.error.message}"
            )
        kinds = self.sdk.StreamingRecognizeResponse.SpeechEventType
        update = Update(
            begin=response.speech_event_type == kinds.SPEECH_ACTIVITY_BEGIN,
            end=response.speech_event_type in (kinds.SPEECH_ACTIVITY_END, kinds.END_OF_SINGLE_UTTERANCE),
        )
        self._parse_results(response.results, update, "result_end_time")
        return update


class SpeechV2(SpeechAPI):
    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.sdk = import_sdk("google.cloud.speech_v2", package="google-cloud-speech", extra="google", backend="google")
        module = "google.cloud.speech_v2.services.speech.transports.grpc_asyncio"
        self.transport_cls = import_sdk(
            module, package="google-cloud-speech", extra="google"
        ).SpeechGrpcAsyncIOTransport
        self.model = options.model or "chirp_3"
        self.location = options.location or _CHIRP_LOCATIONS.get(self.model, "global")
        if self.location != "global":
            self.default_host = f"{self.location}-speech.googleapis.com"
        self.recognizer = ""

    def bind(self, connection: _gcloud.Connection, who: str) -> None:
        super().bind(connection, who)
        project = self.options.project or connection.project
        if not project:
            raise ProfileError(
                f"{who}: API v2 needs a Google Cloud project: set the option project or {_gcloud.PROJECT_ENV}"
            )
        self.recognizer = f"projects/{project}/locations/{self.location}/recognizers/{self.options.recognizer}"
        self.client = self.sdk.SpeechAsyncClient(transport=connection.transport)

    def config_request(self, sample_rate: int, language: str) -> Any:
        sdk, opts = self.sdk, self.options
        config = sdk.RecognitionConfig(
            explicit_decoding_config=sdk.ExplicitDecodingConfig(
                encoding=sdk.ExplicitDecodingConfig.AudioEncoding.LINEAR16,
                sample_rate_hertz=sample_rate,
                audio_channel_count=1,
            ),
            model=self.model,
            language_codes=[language],
            features=sdk.RecognitionFeatures(enable_automatic_punctuation=opts.punctuation),
        )
        features = sdk.StreamingRecognitionFeatures(
            interim_results=opts.interim_results, enable_voice_activity_events=opts.voice_activity_events
        )
        streaming = sdk.StreamingRecognitionConfig(config=config, streaming_features=features)
        return sdk.StreamingRecognizeRequest(recognizer=self.recognizer, streaming_config=streaming)

    def audio_request(self, pcm: bytes) -> Any:
        return self.sdk.StreamingRecognizeRequest(audio=pcm)

    def parse(self, response: Any) -> Update:
        kinds = self.sdk.StreamingRecognizeResponse.SpeechEventType
        update = Update(
            begin=response.speech_event_type == kinds.SPEECH_ACTIVITY_BEGIN,
            end=response.speech_event_type in (kinds.SPEECH_ACTIVITY_END, kinds.END_OF_SINGLE_UTTERANCE),
        )
        self._parse_results(response.results, update, "result_end_offset")
        return update


class Utterance:
    """Joins a user's finalized pieces into one ``Final``, by the rule of the backend's docstring."""

    def __init__(
        self, emit: Callable[[STTEvent], None], language: str, *, use_activity: bool, timeout_s: float
    ) -> None:
        self.emit = emit
        self.locale = language
        self.no_spaces = language.split("-")[0].lower() in _NO_SPACE_LANGUAGES
        self.use_activity = use_activity
        self.timeout_s = timeout_s
        self.pieces: list[str] = []
        self.confidences: list[float] = []
        self.language: str | None = None
        self.interim = ""
        self.speaking = False
        self.started = False  # SpeechStarted was emitted for this utterance
        self.resumed = False  # a new stream is re-hearing speech the old one had not finalized
        self._last_interim = ""
        self._timer: asyncio.TimerHandle | None = None

    @property
    def in_progress(self) -> bool:
        """Speech the service has heard but not finalized yet."""
        return self.speaking or bool(self.interim) or self.resumed

    def apply(self, update: Update) -> None:
        self._cancel_timer()
        if update.begin or update.end or update.finals or update.interim is not None:
            self.resumed = False
        if update.begin:
            self.speaking = True
            if not self.started:
                self.started = True
                self.emit(SpeechStarted(source="stt"))
        for text, confidence, language in update.finals:
            if text.strip():
                self.pieces.append(text)
                if confidence:
                    self.confidences.append(confidence)
                if language and language.lower() != self.locale.lower():
                    self.language = language  # the service recognized another language
            self.interim = ""
        if update.interim is not None:
            self.interim = update.interim
            self._emit_interim()
        if update.end:
            self.speaking = False
            if not self.pieces and not self.interim:
                self.started = False  # noise: nothing was said
        if self.pieces and not self.interim:
            if not self.use_activity or not self.speaking:
                self.flush()
            else:
                self._timer = asyncio.get_running_loop().call_later(self.timeout_s, self._on_timeout)

    def _emit_interim(self) -> None:
        text = self._join([*self.pieces, self.interim])
        if text and text != self._last_interim:
            self._last_interim = text
            self.emit(Interim(text=text))

    def _on_timeout(self) -> None:
        self._timer = None
        if self.pieces and not self.interim:
            log.debug("no end-of-speech event after the last final result; ending the utterance")
            self.speaking = False
            self.flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _join(self, parts: list[str]) -> str:
        if self.no_spaces:
            return "".join(p.strip() for p in parts).strip()
        return " ".join(p.strip() for p in parts if p.strip())

    def flush(self, *, include_interim: bool = False) -> None:
        self._cancel_timer()
        if include_interim and self.interim.strip():
            self.pieces.append(self.interim)
        self.interim = ""
        if self.pieces:
            confidence = round(sum(self.confidences) / len(self.confidences), 4) if self.confidences else None
            text = self._join(self.pieces)
            self.emit(Final(text=text, confidence=confidence, language=self.language or self.locale))
            self.emit(UtteranceEnd())
        self.pieces, self.confidences, self.language = [], [], None
        self._last_interim = ""
        self.started = False

    def stream_replaced(self) -> None:
        """The old stream's hypothesis is void: the new stream re-hears that audio."""
        self._cancel_timer()
        self.resumed = self.in_progress
        self.interim = ""
        self.speaking = False
