"""Google Cloud Text-to-Speech with Chirp 3 HD voices, streamed over gRPC.

One ``StreamingSynthesize`` call per turn: the first request carries only the voice
and ``StreamingAudioConfig`` (PCM, 24 kHz), then each sentence goes in as ``input.text``
the moment the language model finishes it, and audio is yielded as it arrives. One
stream per turn keeps the prosody of the reply continuous and pays the connection
set-up once.

The service's responses carry audio only, with nothing tying it to the sentence it
came from, so per-sentence events are attributed by estimate: each fed sentence is
given an expected length (characters × seconds per character, learned from the
previous turns' real audio), and ``SpeakingEnded`` / ``SpeakingStarted`` move to the
next sentence once that much audio has come — and never before the next sentence has
been sent. The first ``SpeakingStarted`` comes with the turn's first audio. Events stay
in order (started, audio…, ended per sentence); a boundary may be off by a fraction of
a sentence, which only matters for what a barge-in records as spoken.

``streaming: false`` uses plain ``SynthesizeSpeech`` per sentence instead: exact events,
LINEAR16 audio whose WAV header is parsed (not assumed to be 44 bytes) and removed.
``interrupt()`` cancels the call in flight; no audio of that turn comes after it.

Who retries: not this backend. A failure raises a :class:`~voicekit.errors.BackendError`
that says whether a retry may help (UNAVAILABLE, RESOURCE_EXHAUSTED with the service's
``RetryInfo`` delay as ``retry_after``); the core tries ``speak()`` again per the role's
``retry:`` policy when nothing of the turn was yielded yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field

from voicekit.errors import AudioFormatError, BackendError, VoicekitError
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.plugins import _gcloud
from voicekit.roles import Capabilities, ModelInfo, Output
from voicekit.sdk import import_sdk

_DEFAULT_SECONDS_PER_CHAR = 0.07
_FIRST_ANSWER_WAIT_S = 0.15  # longest wait for the call's first answer before the second sentence goes


class Chirp3Output(Output):
    """Google Chirp 3 HD voices (``ru-RU-Chirp3-HD-Aoede``, ``en-US-Chirp3-HD-Charon`` …).

    Each call is tried once; the core retries ``speak()`` per the role's ``retry:`` policy.
    """

    class Options(_gcloud.GoogleCloudOptions):
        voice: str | None = Field(None, description="Voice name, e.g. ru-RU-Chirp3-HD-Aoede; default from language")
        speaker: str = Field("Aoede", description="Chirp 3 HD speaker used when voice is not set")
        sample_rate: int = Field(24000, ge=8000, le=48000, description="Output sample rate (Chirp 3 HD is 24 kHz)")
        speaking_rate: float | None = Field(None, ge=0.25, le=2.0, description="Speed, 1.0 is the voice's own")
        streaming: bool = Field(True, description="One streaming call per turn; false: SynthesizeSpeech per sentence")

    capabilities = Capabilities(streaming=True, sample_rates=(24000, 16000, 22050, 44100, 48000), produces_audio=True)
    api_key_env: ClassVar[str | None] = None  # ADC or credentials_file (GOOGLE_APPLICATION_CREDENTIALS)
    extra: ClassVar[str | None] = "google"
    sdk_distributions: ClassVar[tuple[str, ...]] = ("google-cloud-texttospeech", "grpcio")
    options: Options

    def __init__(self, options: Any = None, context: Any = None) -> None:
        super().__init__(options, context)
        self.sample_rate = self.options.sample_rate
        locale = _gcloud.locale_for(self.options.language or self.context.language)
        self.voice = self.options.voice or f"{locale}-Chirp3-HD-{self.options.speaker}"
        self.language_code = "-".join(self.voice.split("-")[:2])
        self._sdk: Any = None
        self._client: Any = None
        self._connection: _gcloud.Connection | None = None
        self._turn = 0
        self._cut_turn = 0  # the last turn interrupt() stopped
        self._inflight: Any = None  # the streaming call or unary task of the current turn
        self._seconds_per_char = _DEFAULT_SECONDS_PER_CHAR / (self.options.speaking_rate or 1.0)
        self._learned = False

    async def start(self) -> None:
        if self._connection is not None:
            return
        self._sdk = import_sdk(
            "google.cloud.texttospeech_v1", package="google-cloud-texttospeech", extra="google", backend="chirp3"
        )
        transports = import_sdk(
            "google.cloud.texttospeech_v1.services.text_to_speech.transports.grpc_asyncio",
            package="google-cloud-texttospeech",
            extra="google",
        )
        endpoint = _gcloud.parse_endpoint(self.options.base_url, "texttospeech.googleapis.com", self.label)
        self._connection = await _gcloud.connect(
            transports.TextToSpeechGrpcAsyncIOTransport, endpoint, self.options, self.label
        )
        self._client = self._sdk.TextToSpeechAsyncClient(transport=self._connection.transport)

    async def list_models(self) -> list[ModelInfo]:
        """The voices of the profile's language (``ListVoices``), Chirp 3 HD and others, by name."""
        sdk = import_sdk(
            "google.cloud.texttospeech_v1", package="google-cloud-texttospeech", extra="google", backend="chirp3"
        )
        transports = import_sdk(
            "google.cloud.texttospeech_v1.services.text_to_speech.transports.grpc_asyncio",
            package="google-cloud-texttospeech",
            extra="google",
        )
        endpoint = _gcloud.parse_endpoint(self.options.base_url, "texttospeech.googleapis.com", self.label)
        connection = await _gcloud.connect(
            transports.TextToSpeechGrpcAsyncIOTransport, endpoint, self.options, self.label
        )
        try:
            client = sdk.TextToSpeechAsyncClient(transport=connection.transport)
            response = await client.list_voices(language_code=self.language_code, metadata=connection.metadata)
        except Exception as exc:
            raise _gcloud.translate(exc, self.label, "Text-to-Speech", self.profile_key) from exc
        finally:
            await connection.transport.close()
        return [
            ModelInfo(
                id=voice.name,
                name=voice.name.rsplit("-", 1)[-1],
                description=f"{sdk.SsmlVoiceGender(voice.ssml_gender).name.lower()}, "
                f"{voice.natural_sample_rate_hertz} Hz",
                languages=tuple(voice.language_codes),
                kind="voice",
            )
            for voice in response.voices
        ]

    def chosen_model(self) -> str | None:
        return self.voice

    async def aclose(self) -> None:
        await self.interrupt()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.transport.close()

    async def interrupt(self) -> None:
        self._cut_turn = self._turn
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.cancel()

    def _cut(self, turn: int) -> bool:
        return self._cut_turn >= turn

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        if self._client is None:
            raise BackendError(f"{self.label}: start() the backend before speaking")
        self._turn += 1
        if self.options.streaming:
            return self._speak_streaming(sentences, self._turn)
        return self._speak_unary(sentences, self._turn)

    # --- one streaming call per turn ---------------------------------------------------

    async def _speak_streaming(self, sentences: AsyncIterator[str], turn: int) -> AsyncIterator[OutputEvent]:
        source = _SentencePump(sentences)
        try:
            try:
                first = await source.get()
            except _SourceFailed as failed:
                raise failed.error from None
            if first is None:
                return  # a turn without text opens no stream
            # Before the rate is learned, guess short: a boundary a little early beats a
            # sentence left without audio.
            plan = _Attribution(self.sample_rate, self._seconds_per_char * (1.0 if self._learned else 0.85))
            plan.add(first)
            try:
                async for event in self._one_stream(plan, source, turn):
                    yield event
            except _SourceFailed as failed:
                raise failed.error from None
            except VoicekitError:
                raise
            except Exception as exc:
                raise _gcloud.translate(exc, self.label, "Text-to-Speech", self.profile_key) from exc
            if self._cut(turn):
                return
            for event in plan.finish():
                yield event
            self._learn(plan)
        finally:
            await source.close()

    async def _one_stream(self, plan: _Attribution, source: _SentencePump, turn: int) -> AsyncIterator[OutputEvent]:
        call = await self._open_stream()
        self._inflight = call
        answered = asyncio.Event()
        feeder = asyncio.get_running_loop().create_task(self._feed(call, plan, source, answered))
        feeder.add_done_callback(lambda task: task.cancelled() or task.exception() is None or call.cancel())
        try:
            async for response in call:
                answered.set()
                for event in plan.audio(response.audio_content):
                    if self._cut(turn):
                        return
                    yield event
            if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
                raise feeder.exception()  # type: ignore[misc]
        except asyncio.CancelledError:
            if _being_cancelled():
                raise
            if feeder.done() and not feeder.cancelled() and isinstance(feeder.exception(), _SourceFailed):
                raise feeder.exception() from None  # type: ignore[misc]
            if self._cut(turn):
                return  # our own interrupt() cancelled the call
            raise
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
            call.cancel()
            if self._inflight is call:
                self._inflight = None

    async def _open_stream(self) -> Any:
        sdk = self._sdk
        call = await self._client.streaming_synthesize(
            requests=None, retry=None, timeout=None, metadata=self._connection.metadata if self._connection else ()
        )
        config = sdk.StreamingSynthesizeConfig(
            voice=sdk.VoiceSelectionParams(name=self.voice, language_code=self.language_code),
            streaming_audio_config=sdk.StreamingAudioConfig(
                audio_encoding=sdk.AudioEncoding.PCM,
                sample_rate_hertz=self.sample_rate,
                speaking_rate=self.options.speaking_rate or 0.0,
            ),
        )
        await call.write(sdk.StreamingSynthesizeRequest(streaming_config=config))
        return call

    async def _feed(self, call: Any, plan: _Attribution, source: _SentencePump, answered: asyncio.Event) -> None:
        """Send the turn's first sentence, then the rest as they come."""
        sdk = self._sdk
        for sent in plan.fed:
            await call.write(sdk.StreamingSynthesizeRequest(input=sdk.StreamingSynthesisInput(text=sent.strip())))
        # Let a rejection of the call (a quota, a voice) come back before more text goes: grpc
        # reports a write that races the end of the call as INTERNAL, and the service's own
        # status is lost. The first sentence's audio is not delayed by this.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered.wait(), _FIRST_ANSWER_WAIT_S)
        if call.done():
            return
        while (text := await source.get()) is not None:
            plan.add(text)
            await call.write(sdk.StreamingSynthesizeRequest(input=sdk.StreamingSynthesisInput(text=text.strip())))
        await call.done_writing()

    def _learn(self, plan: _Attribution) -> None:
        chars = sum(len(t) for t in plan.fed)
        if chars >= 20 and plan.produced:
            measured = plan.produced / (2 * self.sample_rate) / chars
            weight = 0.5 if self._learned else 1.0  # the first real measure replaces the guess
            self._seconds_per_char += weight * (measured - self._seconds_per_char)
            self._learned = True

    # --- SynthesizeSpeech per sentence -------------------------------------------------

    async def _speak_unary(self, sentences: AsyncIterator[str], turn: int) -> AsyncIterator[OutputEvent]:
        chunk = _even(self.sample_rate // 5 * 2)  # 200 ms pieces, so a barge-in cuts quickly
        async for text in sentences:
            if not text.strip():
                continue
            if self._cut(turn):
                return
            task = asyncio.get_running_loop().create_task(self._synthesize(text))
            self._inflight = task
            try:
                pcm, rate = await task
            except asyncio.CancelledError:
                if self._cut(turn) and not _being_cancelled():
                    return
                task.cancel()
                raise
            finally:
                if self._inflight is task:
                    self._inflight = None
            if self._cut(turn):
                return
            yield SpeakingStarted(text=text)
            for at in range(0, len(pcm), chunk):
                if self._cut(turn):
                    return
                yield AudioOut(pcm=pcm[at : at + chunk], sample_rate=rate)
            yield SpeakingEnded(text=text)

    async def _synthesize(self, text: str) -> tuple[bytes, int]:
        sdk = self._sdk
        request = sdk.SynthesizeSpeechRequest(
            input=sdk.SynthesisInput(text=text.strip()),
            voice=sdk.VoiceSelectionParams(name=self.voice, language_code=self.language_code),
            audio_config=sdk.AudioConfig(
                audio_encoding=sdk.AudioEncoding.LINEAR16,
                sample_rate_hertz=self.sample_rate,
                speaking_rate=self.options.speaking_rate or 0.0,
            ),
        )
        metadata = self._connection.metadata if self._connection else ()
        try:
            response = await self._client.synthesize_speech(
                request=request, retry=None, timeout=self.options.timeout_s, metadata=metadata
            )
        except VoicekitError:
            raise
        except Exception as exc:
            raise _gcloud.translate(exc, self.label, "Text-to-Speech", self.profile_key) from exc
        return wav_to_pcm(response.audio_content, self.sample_rate)


class _SourceFailed(Exception):
    """The sentence iterator (the language model) failed; its error is re-raised unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _SentencePump:
    """Reads the turn's sentences in a task of its own, so that cancelling the stream's
    feeder (an interrupt, a failed call) never cancels the language model's iterator mid-step."""

    def __init__(self, sentences: AsyncIterator[str]) -> None:
        self._queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._pump(sentences))

    async def _pump(self, sentences: AsyncIterator[str]) -> None:
        try:
            async for text in sentences:
                if text.strip():
                    self._queue.put_nowait(text)
        except Exception as exc:  # noqa: BLE001 - handed to the reader, who raises it
            self._queue.put_nowait(_SourceFailed(exc))
        self._queue.put_nowait(None)

    async def get(self) -> str | None:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # every later reader fails the same way
            raise item
        if item is None:
            self._queue.put_nowait(None)
        return item

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return bool(task is not None and task.cancelling())


class _Attribution:
    """Splits one stream's audio into sentences by expected length (see the module docstring)."""

    def __init__(self, sample_rate: int, seconds_per_char: float) -> None:
        self.sample_rate = sample_rate
        self.bytes_per_char = seconds_per_char * sample_rate * 2
        self.fed: list[str] = []
        self.bounds: list[int] = []  # expected end of each sentence, in bytes of turn audio
        self.index = -1  # the sentence now speaking
        self.current = 0  # audio bytes it has had
        self.produced = 0
        self.min_piece = _even(sample_rate // 100 * 2)  # 10 ms: no slivers of audio

    def add(self, text: str) -> None:
        self.fed.append(text)
        start = self.bounds[-1] if self.bounds else 0
        self.bounds.append(start + _even(int(len(text.strip()) * self.bytes_per_char)))

    def audio(self, pcm: bytes) -> list[OutputEvent]:
        out: list[OutputEvent] = []
        if not pcm or not self.fed:
            return out
        if self.index < 0:
            self.index = 0
            out.append(SpeakingStarted(text=self.fed[0]))
        while pcm:
            room = len(pcm)
            if self.index + 1 < len(self.fed) and self.current:
                room = max(0, self.bounds[self.index] - self.produced)
                if room < self.min_piece:
                    out.append(SpeakingEnded(text=self.fed[self.index]))
                    self.index += 1
                    self.current = 0
                    out.append(SpeakingStarted(text=self.fed[self.index]))
                    room = len(pcm) if self.index + 1 == len(self.fed) else max(self.min_piece, self._room())
            piece, pcm = pcm[:room], pcm[room:]
            out.append(AudioOut(pcm=piece, sample_rate=self.sample_rate))
            self.produced += len(piece)
            self.current += len(piece)
        return out

    def _room(self) -> int:
        return _even(self.bounds[self.index] - self.produced)

    def finish(self) -> list[OutputEvent]:
        """Close the turn. Sentences the guess left without audio get 10 ms of silence, so
        that every sentence is framed the same way (rare once the rate is learned)."""
        out: list[OutputEvent] = []
        if self.index >= 0:
            out.append(SpeakingEnded(text=self.fed[self.index]))
        for text in self.fed[self.index + 1 :]:
            pad = AudioOut(pcm=bytes(self.min_piece), sample_rate=self.sample_rate)
            out += [SpeakingStarted(text=text), pad, SpeakingEnded(text=text)]
        return out


def wav_to_pcm(data: bytes, expected_rate: int) -> tuple[bytes, int]:
    """The 16-bit mono samples of a RIFF/WAVE file and their rate, walking its chunks.

    Headers are not always 44 bytes (``LIST``/``fact`` chunks, extensible format), and
    a streamed WAV may give its data size as 0 or 0xFFFFFFFF: then the data runs to
    the end of the file. Bytes that are not a WAV file are taken as raw PCM.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data[: _even(len(data))], expected_rate
    pos, rate, fmt_seen = 12, expected_rate, False
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise AudioFormatError("malformed WAV from Text-to-Speech: short fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the real tag is in the GUID
                tag = struct.unpack_from("<H", data, body + 24)[0]
            if tag != 1 or channels != 1 or bits != 16:
                raise AudioFormatError(
                    f"Text-to-Speech sent WAV format {tag} with {channels} channel(s) at {bits} bits; "
                    f"expected 16-bit mono PCM"
                )
            fmt_seen = True
        elif chunk_id == b"data":
            if not fmt_seen:
                raise AudioFormatError("malformed WAV from Text-to-Speech: data before fmt")
            end = len(data) if size in (0, 0xFFFFFFFF) or body + size > len(data) else body + size
            return data[body : body + _even(end - body)], rate
        pos = body + size + (size & 1)  # chunks are padded to an even size
    raise AudioFormatError("malformed WAV from Text-to-Speech: no data chunk")


def _even(n: int) -> int:
    return n - n % 2
