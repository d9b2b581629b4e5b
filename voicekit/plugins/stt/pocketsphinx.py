"""PocketSphinx: offline English speech recognition that needs no key and no download.

The ``pocketsphinx`` wheel ships the US English acoustic model, language model and
dictionary. A voice activity detector (webrtc by default) cuts the stream into
utterances. While the user speaks, a streaming decoder turns the audio into
``Interim`` hypotheses, and at the end of speech (``endpoint_silence_ms``) its
hypothesis becomes the ``Final``. The decoder also hears a little audio before the
detected start and silence after the end (``pad_ms``): without it, words at the edges
are lost. ``final_pass="batch"`` decodes each whole utterance once more, normalized
over that utterance, for a slightly better Final at the cost of latency.

A little noise (``comfort_noise_dbfs``) is mixed into what the decoders hear: digital
silence (exact zeros, as in synthesized or gated audio) throws the normalization off.

Decoding runs on one worker thread per stream; the event loop only queues audio.
Each decoder is used in one mode only (streaming or whole-utterance): mixing modes on
one PocketSphinx decoder crashes the process. Decoders are pooled by the backend, so
later streams start warm.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from voicekit.errors import AudioFormatError, ProfileError, VoicekitError
from voicekit.events import Final, Interim, SpeechEnded, SpeechStarted, STTEvent, UtteranceEnd
from voicekit.options import BackendOptions
from voicekit.roles import STT, BackendContext, Capabilities, STTStream
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

_SAMPLE_RATE = 16000


class PocketsphinxOptions(BackendOptions):
    """Options of the offline PocketSphinx recognizer."""

    language: str | None = Field(None, description="Only English (en) is available; default: the profile's language")
    endpoint_silence_ms: int = Field(400, ge=100, le=5000, description="Silence that ends an utterance")
    min_speech_ms: int = Field(150, ge=20, le=2000, description="Speech must last this long to start an utterance")
    vad: Literal["webrtc", "silero"] = Field("webrtc", description="Voice activity detector that finds utterances")
    vad_mode: int = Field(3, ge=0, le=3, description="webrtc aggressiveness, 0 (least) to 3 (most)")
    pad_ms: int = Field(
        300, ge=0, le=2000, description="Audio before the speech, and silence after it, that the decoder gets"
    )
    final_pass: Literal["streaming", "batch"] = Field(
        "streaming",
        description="streaming: the Final is the streaming hypothesis (~0.1 s after the endpoint);"
        " batch: decode each whole utterance again (a little more accurate, ~0.25 s more per s of speech)",
    )
    comfort_noise_dbfs: float | None = Field(
        -57.0, ge=-120, le=-30, description="Level of the noise mixed into what the decoder hears; null: none"
    )
    flat_pass: bool = Field(
        False, description="Run pocketsphinx's second (flat-lexicon) search at each endpoint: ~150 ms later Finals"
    )
    interim_results: bool = Field(True, description="Report partial hypotheses as Interim events")
    interim_interval_ms: int = Field(100, ge=20, le=5000, description="How often to look for a new partial hypothesis")
    acoustic_model: str | None = Field(
        None, description="Acoustic model directory; default: the en-us one in the wheel"
    )
    language_model: str | None = Field(None, description="Language model file; default: the en-us one in the wheel")
    dictionary: str | None = Field(None, description="Pronunciation dictionary; default: the en-us one in the wheel")


class PocketsphinxSTT(STT):
    """Offline streaming speech recognition with CMU PocketSphinx (US English)."""

    Options: ClassVar[type[PocketsphinxOptions]] = PocketsphinxOptions
    capabilities = Capabilities(streaming=True, interim_results=True, languages=("en",), sample_rates=(_SAMPLE_RATE,))
    extra: ClassVar[str | None] = "offline"
    options: PocketsphinxOptions

    def __init__(self, options: PocketsphinxOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._sdk: Any = None
        # Decoders not used by any stream, by mode; a decoder never changes mode.
        self._idle: dict[str, list[Any]] = {"streaming": [], "batch": []}
        self._lock = threading.Lock()
        language = (self.options.language or self.context.language or "en").lower()
        if language.split("-")[0] != "en":
            raise ProfileError(
                f"pocketsphinx recognizes only English, not '{language}'; use another stt backend (deepgram, google)"
            )

    @property
    def modes(self) -> tuple[str, ...]:
        """The decoder modes a stream uses with these options."""
        o = self.options
        streaming = o.interim_results or o.final_pass == "streaming"
        return ("streaming",) * streaming + ("batch",) * (o.final_pass == "batch")

    async def start(self) -> None:
        if self._sdk is not None:
            return
        self._sdk = import_sdk("pocketsphinx", package="pocketsphinx", extra="offline", backend="pocketsphinx")
        from voicekit.audio.vad import create_vad

        create_vad(self.options.vad, mode=self.options.vad_mode)  # a missing VAD engine fails now, not mid-stream
        # Loading a model takes ~0.4 s per decoder: load them side by side, off the loop.
        decoders = await asyncio.gather(*(asyncio.to_thread(self._new_decoder, mode) for mode in self.modes))
        for mode, decoder in zip(self.modes, decoders, strict=True):
            self._release(mode, decoder)

    async def aclose(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                idle.clear()

    def stream(self, *, sample_rate: int = _SAMPLE_RATE, language: str | None = None) -> STTStream:
        if sample_rate != _SAMPLE_RATE:
            raise AudioFormatError(f"pocketsphinx takes 16 kHz audio, not {sample_rate} Hz")
        if self._sdk is None:
            raise VoicekitError("pocketsphinx: call start() (or use 'async with') before stream()")
        return PocketsphinxStream(self, language=language or "en")

    def _new_decoder(self, mode: str) -> Any:
        config: dict[str, Any] = {"samprate": _SAMPLE_RATE, "loglevel": "FATAL"}
        if mode == "streaming" and not self.options.flat_pass:
            # The flat second pass costs ~150 ms at each endpoint and, measured on our
            # test speech, does not lower the word error rate of streaming decoding.
            config["fwdflat"] = False
        for option, key in (("acoustic_model", "hmm"), ("language_model", "lm"), ("dictionary", "dict")):
            if getattr(self.options, option):
                config[key] = getattr(self.options, option)
        try:
            return self._sdk.Decoder(**config)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ProfileError(f"pocketsphinx could not load its model ({exc}); check the stt model options") from exc

    def _acquire(self, mode: str) -> Any:
        with self._lock:
            if self._idle[mode]:
                return self._idle[mode].pop()
        return self._new_decoder(mode)

    def _release(self, mode: str, decoder: Any) -> None:
        with self._lock:
            self._idle[mode].append(decoder)


class PocketsphinxStream(STTStream):
    """One recognition stream: VAD endpointing and incremental decoding on a worker thread."""

    def __init__(self, stt: PocketsphinxSTT, language: str) -> None:
        super().__init__(_SAMPLE_RATE, language)
        self._stt = stt
        self._inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._stop = threading.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def post(event: STTEvent) -> None:
            try:
                loop.call_soon_threadsafe(self.emit, event)
            except RuntimeError:  # the loop is closed: nobody reads any more
                self._stop.set()

        def done(error: BaseException | None) -> None:
            def settle() -> None:
                if not finished.done():
                    if error is None:
                        finished.set_result(None)
                    else:
                        finished.set_exception(error)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass

        worker = threading.Thread(target=self._work, args=(post, done), name="pocketsphinx", daemon=True)
        worker.start()
        try:
            async for chunk in self.audio():
                self._inbox.put(chunk)
            self._inbox.put(None)
            await finished
        finally:
            if not finished.done():  # cancelled: let the worker stop at its next chunk
                self._stop.set()
                self._inbox.put(None)

    def _work(self, post: Any, done: Any) -> None:
        try:
            _Recognizer(self._stt, post, self._inbox, self._stop).run()
        except BaseException as exc:  # handed to the event loop, which raises it to the reader  # noqa: BLE001
            done(exc)
        else:
            done(None)


class _Recognizer:
    """The worker thread's side: frames, VAD, decoders, and the events they make."""

    def __init__(self, stt: PocketsphinxSTT, post: Any, inbox: queue.SimpleQueue[bytes | None], stop: threading.Event):
        from voicekit.audio.vad import create_vad

        options = stt.options
        self.stt, self.post, self.inbox, self.stop = stt, post, inbox, stop
        self.vad = create_vad(
            options.vad,
            mode=options.vad_mode,
            min_speech_ms=options.min_speech_ms,
            min_silence_ms=options.endpoint_silence_ms,
        )
        self.frame_bytes = self.vad.frame_bytes
        frame_ms = self.vad.frame_s * 1000
        # Enough frames to reach back to the detected start and ``pad_ms`` before it.
        self.preroll: collections.deque[bytes] = collections.deque(
            maxlen=int((options.min_speech_ms + options.pad_ms) / frame_ms) + 2
        )
        self.lead_bytes = int(_SAMPLE_RATE * (options.min_speech_ms + options.pad_ms) / 1000) * 2
        # The endpoint silence is real trailing audio already; top it up to pad_ms.
        self.tail_bytes = int(_SAMPLE_RATE * max(0, options.pad_ms - options.endpoint_silence_ms) / 1000) * 2
        self.pad_bytes = int(_SAMPLE_RATE * options.pad_ms / 1000) * 2
        self.interim_every = max(1, round(options.interim_interval_ms / frame_ms)) if options.interim_results else 0
        self.noise: np.ndarray[Any, Any] | None = None
        if options.comfort_noise_dbfs is not None:
            rms = 32768 * 10 ** (options.comfort_noise_dbfs / 20)
            # A fixed seed: the same audio always gives the same transcript.
            self.noise = np.rint(np.random.default_rng(0).standard_normal(_SAMPLE_RATE * 3) * rms).astype(np.int32)
        self.noise_at = 0
        self.modes = stt.modes
        self.streaming: Any = None
        self.batch: Any = None
        self.utterance: list[bytes] = []  # what the decoders hear of the current utterance
        self.in_utterance = False
        self.frames_in_utterance = 0
        self.last_partial = ""

    def run(self) -> None:
        if "streaming" in self.modes:
            self.streaming = self.stt._acquire("streaming")
        if "batch" in self.modes:
            self.batch = self.stt._acquire("batch")
        buffer = bytearray()
        size = self.frame_bytes
        try:
            while not self.stop.is_set():
                chunk = self.inbox.get()
                if chunk is None or self.stop.is_set():
                    break
                buffer += chunk
                offset = 0
                while offset + size <= len(buffer) and not self.stop.is_set():
                    self._frame(bytes(buffer[offset : offset + size]))
                    offset += size
                del buffer[:offset]
            if not self.stop.is_set():
                if self.in_utterance and buffer:
                    self._hear(self._condition(bytes(buffer)))
                if self.vad.flush() and self.in_utterance:
                    self._finish(ended=False)  # input stopped mid-speech: no trailing silence was heard
        finally:
            if self.streaming is not None:
                if self.in_utterance:
                    self.streaming.end_utt()
                self.stt._release("streaming", self.streaming)
            if self.batch is not None:
                self.stt._release("batch", self.batch)

    def _condition(self, pcm: bytes) -> bytes:
        """``pcm`` with the comfort noise mixed in."""
        if self.noise is None:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.int32)
        n, noise = samples.size, self.noise
        if self.noise_at + n > noise.size:
            self.noise_at = 0
        samples += noise[self.noise_at : self.noise_at + n]
        self.noise_at += n
        return bytes(np.clip(samples, -32768, 32767).astype(np.int16).tobytes())

    def _hear(self, pcm: bytes) -> None:
        if pcm:
            self.utterance.append(pcm)
            if self.streaming is not None:
                self.streaming.process_raw(pcm, False, False)

    def _frame(self, frame: bytes) -> None:
        events = self.vad.process(frame)
        if not self.in_utterance:
            self.preroll.append(frame)
            if events and isinstance(events[-1], SpeechStarted):
                self._begin()
            return
        self._hear(self._condition(frame))
        self.frames_in_utterance += 1
        if events and isinstance(events[-1], SpeechEnded):
            self._finish()
        elif self.interim_every and self.frames_in_utterance % self.interim_every == 0:
            hyp = self.streaming.hyp()
            text = hyp.hypstr.strip() if hyp is not None else ""
            if text and text != self.last_partial:
                self.last_partial = text
                self.post(Interim(text))

    def _begin(self) -> None:
        self.post(SpeechStarted(source="stt"))
        self.in_utterance, self.frames_in_utterance, self.last_partial = True, 0, ""
        self.utterance = []
        if self.streaming is not None:
            self.streaming.start_utt()
        lead = b"".join(self.preroll)
        if len(lead) < self.lead_bytes:  # speech right at the start of the stream: pad with silence
            lead = bytes(self.lead_bytes - len(lead)) + lead
        self._hear(self._condition(lead))
        self.preroll.clear()

    def _finish(self, ended: bool = True) -> None:
        self.post(SpeechEnded(source="stt"))
        self._hear(self._condition(bytes(self.tail_bytes if ended else self.pad_bytes)))
        self.in_utterance = False
        text = ""
        if self.streaming is not None:
            self.streaming.end_utt()
            text = _text(self.streaming)
        if self.batch is not None:
            self.batch.start_utt()
            self.batch.process_raw(b"".join(self.utterance), False, True)
            self.batch.end_utt()
            text = _text(self.batch)
        self.utterance = []
        if text:
            self.post(Final(text, language="en"))
            self.post(UtteranceEnd())


def _text(decoder: Any) -> str:
    hyp = decoder.hyp()
    return hyp.hypstr.strip() if hyp is not None else ""
