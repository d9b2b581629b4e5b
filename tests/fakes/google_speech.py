"""A local Google Cloud Speech-to-Text for tests: ``StreamingRecognize`` v1 and v2 over real gRPC.

It checks what the service checks — the first request carries only the config (v2:
with a well-formed recognizer), later ones only audio of at most ``max_chunk_bytes``,
a LINEAR16 config with a language, credentials when ``api_key`` is set, the stream
duration limit (``max_stream_s`` of audio or of wall time: OUT_OF_RANGE on v1, ABORTED
on v2, worded as the service words them) and the no-audio timeout — and answers from a script driven by the
audio: every stretch of sound found by an energy detector is one utterance and gets
the next scripted transcript. An utterance given as a list of parts is finalized in
pieces, like ``latest_long`` does on long sentences. Interim results reveal one word
per ``word_s`` of sound; finals carry ``result_end_time`` (v2: ``result_end_offset``).
With voice-activity events on, ``SPEECH_ACTIVITY_BEGIN`` / ``_END`` bracket each one.

By default each stretch of sound takes the next utterance of the script (the pointer
moves when a part is finalized). With ``pick="tone"`` a pure tone names its utterance
by its pitch, so audio sent again on a new stream gets the same words, as with the real
service: tests of stream restarts use it to check that nothing is lost or said twice.
Run standalone::

    python -m tests.fakes.google_speech --port 50051 --script "hello there" --script "how are you"
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.cloud import speech_v1, speech_v2

from tests.fakes.google_grpc import FakeGoogleServer, pump_requests, serve_main

RECOGNIZER = re.compile(r"^projects/[^/]+/locations/([^/]+)/recognizers/[^/]+$")
REGIONAL_MODELS = ("chirp_2", "chirp_3", "chirp")
IDLE_MESSAGE = "Audio Timeout Error: Long duration elapsed without audio. Audio should be sent close to real time."


@dataclass
class StreamLog:
    """What one ``StreamingRecognize`` call received and how it ended."""

    version: str
    metadata: dict[str, str]
    config: Any = None
    recognizer: str = ""
    chunk_sizes: list[int] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    finals: list[str] = field(default_factory=list)
    code: str = "OK"
    details: str = ""
    ended_at: float | None = None


class EnergySegmenter:
    """Finds stretches of sound: 20 ms frames above ``threshold`` RMS, ended by ``end_silence_s`` of quiet."""

    def __init__(self, sample_rate: int, threshold: float = 400.0, end_silence_s: float = 0.4) -> None:
        self.rate = sample_rate
        self.frame_bytes = int(sample_rate * 0.02) * 2
        self.onset_hz = 0.0  # strongest frequency of the current stretch's first frame
        self.frame_s = 0.02
        self.threshold = threshold
        self.end_frames = max(1, round(end_silence_s / self.frame_s))
        self.buffer = bytearray()
        self.frames = 0
        self.start: float | None = None
        self.quiet = 0
        self.last_loud_end = 0.0

    def feed(self, pcm: bytes) -> list[tuple[str, float]]:
        """("start", t), ("sound", t) for each loud frame, ("end", t); t in seconds of stream audio."""
        self.buffer.extend(pcm)
        out: list[tuple[str, float]] = []
        while len(self.buffer) >= self.frame_bytes:
            frame = np.frombuffer(bytes(self.buffer[: self.frame_bytes]), dtype="<i2").astype(np.float64)
            del self.buffer[: self.frame_bytes]
            t0 = self.frames * self.frame_s
            self.frames += 1
            loud = float(np.sqrt(np.mean(frame * frame))) > self.threshold
            if loud:
                if self.start is None:
                    self.start = t0
                    self.onset_hz = self._pitch(frame)
                    out.append(("start", t0))
                self.quiet = 0
                self.last_loud_end = t0 + self.frame_s
                out.append(("sound", self.last_loud_end))
            elif self.start is not None:
                self.quiet += 1
                if self.quiet >= self.end_frames:
                    out.append(("end", self.last_loud_end))
                    self.start = None
        return out

    def _pitch(self, frame: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(frame * np.hanning(len(frame)), n=8192))
        return float(np.argmax(spectrum) * self.rate / 8192)

    def finish(self) -> list[tuple[str, float]]:
        if self.start is None:
            return []
        self.start = None
        return [("end", self.last_loud_end)]


class FakeSpeechServer(FakeGoogleServer):
    """Google Speech-to-Text streaming recognition, v1 and v2, on 127.0.0.1."""

    def __init__(
        self,
        script: list[str | list[str]] | None = None,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        max_chunk_bytes: int = 25600,
        max_stream_s: float = 305.0,
        idle_timeout_s: float = 10.0,
        word_s: float = 0.25,
        end_silence_s: float = 0.4,
        threshold: float = 400.0,
        end_event_first: bool = True,
        end_events: bool = True,
        cycle: bool = False,
        tls: tuple[Path, Path] | None = None,
        pick: str = "order",
        tone_base_hz: float = 400.0,
        tone_step_hz: float = 100.0,
    ) -> None:
        super().__init__(api_key=api_key, latency_s=latency_s, tls=tls)
        self.script = [[p] if isinstance(p, str) else list(p) for p in (script or [])]
        self.max_chunk_bytes = max_chunk_bytes
        self.max_stream_s = max_stream_s
        self.idle_timeout_s = idle_timeout_s
        self.word_s = word_s
        self.end_silence_s = end_silence_s
        self.threshold = threshold
        self.end_event_first = end_event_first  # SPEECH_ACTIVITY_END before the last final
        self.end_events = end_events  # False: a service that never says SPEECH_ACTIVITY_END
        self.cycle = cycle
        # "order": each stretch of sound takes the next utterance of the script; "tone": a
        # pure tone of tone_base_hz + i * tone_step_hz says utterance i, so the same audio
        # always gets the same words, as with the real service (use one-part utterances).
        self.pick = pick
        self.tone_base_hz = tone_base_hz
        self.tone_step_hz = tone_step_hz
        self.entry = 0  # script pointer: utterance index and parts already finalized
        self.part = 0
        self.streams: list[StreamLog] = []
        self.segments: list[float] = []  # durations of the finalized stretches of sound
        self.unscripted = 0  # stretches of sound heard after the script ran out

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        def handler(version: str, module: Any) -> grpc.GenericRpcHandler:
            async def call(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
                async for response in self._recognize(version, request_iterator, context):
                    yield response

            method = grpc.stream_stream_rpc_method_handler(
                call,
                request_deserializer=module.StreamingRecognizeRequest.deserialize,
                response_serializer=module.StreamingRecognizeResponse.serialize,
            )
            return grpc.method_handlers_generic_handler(
                f"google.cloud.speech.{version}.Speech", {"StreamingRecognize": method}
            )

        return [handler("v1", speech_v1), handler("v2", speech_v2)]

    # --- the script ------------------------------------------------------------------

    def remaining_parts(self, onset_hz: float, skip: int = 0) -> list[str]:
        """The parts the next stretch of sound says; ``skip`` parts are finalized but not yet sent."""
        if self.pick == "tone":
            index = round((onset_hz - self.tone_base_hz) / self.tone_step_hz)
            return list(self.script[index]) if 0 <= index < len(self.script) else []
        entry, part = self.entry, self.part
        for _ in range(skip + 1):
            if entry >= len(self.script) and self.cycle and self.script:
                entry, part = 0, 0
            if entry >= len(self.script):
                return []
            if _ == skip:
                break
            part += 1
            if part >= len(self.script[entry]):
                entry, part = entry + 1, 0
        return self.script[entry][part:]

    def part_finalized(self) -> None:
        if self.pick == "tone":
            return
        if self.entry >= len(self.script) and self.cycle:
            self.entry, self.part = 0, 0
        self.part += 1
        if self.part >= len(self.script[self.entry]):
            self.entry, self.part = self.entry + 1, 0

    # --- one call --------------------------------------------------------------------

    async def _abort(
        self, context: grpc.aio.ServicerContext, record: StreamLog, code: grpc.StatusCode, msg: str
    ) -> None:
        record.code, record.details = code.name, msg
        await context.abort(code, msg)

    async def _recognize(self, version: str, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        record = StreamLog(version, {})
        self.streams.append(record)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pump = asyncio.get_running_loop().create_task(pump_requests(request_iterator, queue))
        try:
            opened = time.monotonic()
            # Judged once the config is in, as over a real network, where the client's first
            # write is on its way before any rejection can come back.
            first = await self._next(queue, context, record, opened, opened)
            record.metadata = await self.check_call(context, record)
            fault = self.take_fault()
            if fault is not None and fault.after <= 0:
                record.code = fault.kind
                await self.fail(fault, context)
            if first is None:
                return
            rate, session = await self._configure(version, first, context, record)
            last_audio = time.monotonic()
            while True:
                request = await self._next(queue, context, record, opened, last_audio)
                if request is None:
                    for response in session.finish():
                        await self.pause()
                        yield response
                        session.delivered(response)
                    return
                audio = request.audio_content if version == "v1" else request.audio
                kind = type(request).pb(request).WhichOneof("streaming_request")
                if kind != ("audio_content" if version == "v1" else "audio") or (
                    version == "v2" and request.recognizer
                ):
                    await self._abort(
                        context,
                        record,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "Only the first request may carry a config; later requests carry only audio.",
                    )
                if len(audio) > self.max_chunk_bytes:
                    await self._abort(
                        context,
                        record,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Audio chunk can be of a maximum of {self.max_chunk_bytes} bytes. "
                        f"Received audio of {len(audio)} bytes instead.",
                    )
                last_audio = time.monotonic()
                record.chunk_sizes.append(len(audio))
                record.audio.extend(audio)
                audio_s = len(record.audio) / (2 * rate)
                if audio_s > self.max_stream_s:
                    await self._limit(version, context, record)
                for response in session.feed(audio):
                    await self.pause()
                    yield response
                    session.delivered(response)
                if fault is not None and audio_s >= fault.after:
                    record.code = fault.kind
                    await self.fail(fault, context)
        except (asyncio.CancelledError, GeneratorExit):  # the client cancelled the call
            if record.code == "OK":
                record.code = "CANCELLED"
            raise
        finally:
            pump.cancel()

    async def _next(
        self,
        queue: asyncio.Queue[Any],
        context: grpc.aio.ServicerContext,
        record: StreamLog,
        opened: float,
        last_audio: float,
    ) -> Any:
        now = time.monotonic()
        wait = min(self.max_stream_s - (now - opened), self.idle_timeout_s - (now - last_audio))
        try:
            item = await asyncio.wait_for(queue.get(), max(wait, 0.001))
        except TimeoutError:
            if time.monotonic() - opened >= self.max_stream_s:
                await self._limit(record.version, context, record)
            await self._abort(context, record, grpc.StatusCode.OUT_OF_RANGE, IDLE_MESSAGE)
        if isinstance(item, Exception):
            record.code = "CANCELLED"
            raise item
        return item

    async def _limit(self, version: str, context: grpc.aio.ServicerContext, record: StreamLog) -> None:
        limit = f"{self.max_stream_s:g}"
        if version == "v1":
            await self._abort(
                context,
                record,
                grpc.StatusCode.OUT_OF_RANGE,
                f"Exceeded maximum allowed stream duration of {limit} seconds.",
            )
        await self._abort(
            context, record, grpc.StatusCode.ABORTED, f"Max duration of {limit} seconds reached for stream."
        )

    async def _configure(
        self, version: str, first: Any, context: grpc.aio.ServicerContext, record: StreamLog
    ) -> tuple[int, _Session]:
        bad = grpc.StatusCode.INVALID_ARGUMENT
        if type(first).pb(first).WhichOneof("streaming_request") != "streaming_config":
            await self._abort(context, record, bad, "The first request must carry streaming_config and no audio.")
        streaming = first.streaming_config
        record.config = streaming
        if version == "v1":
            config = streaming.config
            if config.encoding != speech_v1.RecognitionConfig.AudioEncoding.LINEAR16:
                await self._abort(context, record, bad, "This fake understands LINEAR16 audio only.")
            if not config.language_code:
                await self._abort(context, record, bad, "Invalid recognition 'config': missing language_code.")
            rate, language = config.sample_rate_hertz, config.language_code
            interim, events = streaming.interim_results, streaming.enable_voice_activity_events
        else:
            record.recognizer = first.recognizer
            match = RECOGNIZER.match(first.recognizer)
            if not match:
                await self._abort(
                    context, record, bad, f"Invalid resource field value in the request: {first.recognizer!r}"
                )
            config = streaming.config
            decoding = config.explicit_decoding_config
            if decoding.encoding != speech_v2.ExplicitDecodingConfig.AudioEncoding.LINEAR16:
                await self._abort(context, record, bad, "This fake understands explicit LINEAR16 decoding only.")
            if not config.language_codes or not config.model:
                await self._abort(context, record, bad, "Recognition config needs a model and language_codes.")
            if config.model in REGIONAL_MODELS and match.group(1) == "global":  # type: ignore[union-attr]
                await self._abort(
                    context, record, bad, f'The model "{config.model}" does not exist in the location named "global".'
                )
            rate, language = decoding.sample_rate_hertz, config.language_codes[0]
            interim = streaming.streaming_features.interim_results
            events = streaming.streaming_features.enable_voice_activity_events
        if not 8000 <= rate <= 48000:
            await self._abort(context, record, bad, f"sample_rate_hertz {rate} is out of range 8000-48000.")
        return rate, _Session(self, version, record, rate, language, interim=interim, events=events)


class _Session:
    """Turns the sound of one stream into results, following the server's script."""

    def __init__(
        self,
        server: FakeSpeechServer,
        version: str,
        record: StreamLog,
        rate: int,
        language: str,
        *,
        interim: bool,
        events: bool,
    ) -> None:
        self.server = server
        self.version = version
        self.record = record
        self.language = language
        self.interim = interim
        self.events = events
        self.segmenter = EnergySegmenter(rate, server.threshold, server.end_silence_s)
        self.module: Any = speech_v1 if version == "v1" else speech_v2
        self.parts: list[str] = []  # parts of the current utterance not finalized yet
        self.start = 0.0
        self.shown = 0  # words of this utterance revealed so far
        self.done = 0  # words of this utterance already finalized
        self.finals_sent = 0
        self.commits: dict[int, Any] = {}
        self.pending = 0  # finals made but not yet sent

    def feed(self, pcm: bytes) -> list[Any]:
        out: list[Any] = []
        for kind, t in self.segmenter.feed(pcm):
            if kind == "start":
                self.start, self.shown, self.done = t, 0, 0
                self.parts = self.server.remaining_parts(self.segmenter.onset_hz, self.pending)
                if not self.parts:
                    self.server.unscripted += 1
                if self.events:
                    out.append(self._event("SPEECH_ACTIVITY_BEGIN", t))
            elif kind == "sound":
                out.extend(self._progress(t))
            else:
                out.extend(self._end(t))
        return out

    def finish(self) -> list[Any]:
        out: list[Any] = []
        for _, t in self.segmenter.finish():
            out.extend(self._end(t))
        return out

    def _progress(self, t: float) -> list[Any]:
        if not self.parts:
            return []
        total = self.done + sum(len(p.split()) for p in self.parts)
        shown = min(total, 1 + int((t - self.start) / self.server.word_s))
        if shown == self.shown:
            return []
        self.shown = shown
        current = shown - self.done  # words of the unfinalized parts revealed so far
        out: list[Any] = []
        first = len(self.parts[0].split())
        if len(self.parts) > 1 and current >= first:  # the first part is complete: finalize it
            out.append(self._final(self.parts.pop(0), t))
            self.done += first
            current -= first
            if current == 0:
                return out
        if self.interim:
            out.append(self._result(" ".join(" ".join(self.parts).split()[:current]), t, final=False))
        return out

    def _end(self, t: float) -> list[Any]:
        out: list[Any] = []
        ends = self.events and self.server.end_events
        if ends and self.server.end_event_first:
            out.append(self._event("SPEECH_ACTIVITY_END", t))
        while self.parts:
            out.append(self._final(self.parts.pop(0), t, duration=None if self.parts else t - self.start))
        if ends and not self.server.end_event_first:
            out.append(self._event("SPEECH_ACTIVITY_END", t))
        return out

    def _final(self, text: str, t: float, duration: float | None = None) -> Any:
        # v1 starts every final after the first of a stream with a space, as the service does.
        sent = " " + text if self.version == "v1" and self.finals_sent else text
        self.finals_sent += 1
        response = self._result(sent, t, final=True)

        self.pending += 1

        def commit() -> None:
            self.pending -= 1
            self.server.part_finalized()
            self.record.finals.append(text)
            if duration is not None:
                self.server.segments.append(duration)

        self.commits[id(response)] = commit
        return response

    def delivered(self, response: Any) -> None:
        """A response went out: only now does the script move on (a cancelled call loses it)."""
        commit = self.commits.pop(id(response), None)
        if commit is not None:
            commit()

    def _result(self, text: str, t: float, *, final: bool) -> Any:
        m = self.module
        alt = m.SpeechRecognitionAlternative(transcript=text, confidence=0.92 if final else 0.0)
        end = {"result_end_time" if self.version == "v1" else "result_end_offset": timedelta(seconds=t)}
        language = self.language.lower() if self.version == "v1" else self.language
        result = m.StreamingRecognitionResult(
            alternatives=[alt], is_final=final, stability=0.0 if final else 0.01, language_code=language, **end
        )
        return m.StreamingRecognizeResponse(results=[result])

    def _event(self, name: str, t: float) -> Any:
        m = self.module
        kind = getattr(m.StreamingRecognizeResponse.SpeechEventType, name)
        when = {"speech_event_time" if self.version == "v1" else "speech_event_offset": timedelta(seconds=t)}
        return m.StreamingRecognizeResponse(speech_event_type=kind, **when)


def _make(args: Any) -> FakeSpeechServer:
    script = args.script or ["hello there", "how are you today"]
    return FakeSpeechServer(script, api_key=args.api_key, latency_s=args.latency, cycle=True)


if __name__ == "__main__":
    serve_main(_make, "A local Google Cloud Speech-to-Text (StreamingRecognize v1 and v2).")
