"""A local Google Cloud Text-to-Speech for tests: ``StreamingSynthesize`` and ``SynthesizeSpeech``.

Checks like the service: the first streaming request carries only ``streaming_config``
(a Chirp 3 HD voice, a streamable encoding), every later one only ``input.text``;
credentials when ``api_key`` is set. For each text it answers with a tone whose length
is ``seconds_per_char`` per character (a new pitch per text, so tests can tell the
sentences apart), as headerless PCM in ``chunk_s`` pieces; ``SynthesizeSpeech`` with
LINEAR16 returns a WAV file — with an extra ``LIST`` chunk before the data, so a client
that assumes a 44-byte header hears garbage. Run standalone::

    python -m tests.fakes.google_tts --port 50052
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from google.cloud import texttospeech_v1 as tts

from tests.fakes.google_grpc import FakeGoogleServer, pump_requests, serve_main

CHIRP3_VOICE = re.compile(r"^([a-z]{2,3}-[A-Z]{2})-Chirp3-HD-[A-Za-z]+$")
# a few of the documented Chirp 3 HD speakers, with the gender ListVoices reports for them
CHIRP3_SPEAKERS = {
    "Aoede": tts.SsmlVoiceGender.FEMALE,
    "Charon": tts.SsmlVoiceGender.MALE,
    "Kore": tts.SsmlVoiceGender.FEMALE,
}
STREAMABLE = {tts.AudioEncoding.PCM}  # the service also streams ALAW, MULAW, OGG_OPUS; this fake only PCM


@dataclass
class SynthesisLog:
    """One call: what came in, how much audio went out, how it ended."""

    kind: str  # "stream" or "unary"
    metadata: dict[str, str]
    voice: str = ""
    sample_rate: int = 0
    texts: list[str] = field(default_factory=list)
    text_times: list[float] = field(default_factory=list)  # monotonic arrival of each text
    audio_bytes: int = 0
    chunks: int = 0
    code: str = "OK"
    ended_at: float | None = None


def tone(seconds: float, rate: int, pitch_hz: float) -> bytes:
    n = max(1, round(seconds * rate))
    t = np.arange(n) / rate
    wave = np.sin(2 * np.pi * pitch_hz * t) * 6000
    fade = min(n // 2, int(0.005 * rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return wave.astype("<i2").tobytes()


def wav_file(pcm: bytes, rate: int, extra_chunk: bool) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        info = b"INFOISFT" + struct.pack("<I", 9) + b"fake-tts\x00" + b"\x00"  # odd size: padded
        chunks += b"LIST" + struct.pack("<I", len(info) - 1) + info
    chunks += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


class FakeTTSServer(FakeGoogleServer):
    """Google Text-to-Speech (v1) streaming and one-shot synthesis on 127.0.0.1."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        first_audio_s: float = 0.0,
        seconds_per_char: float = 0.06,
        chunk_s: float = 0.1,
        chunk_interval_s: float = 0.0,
        wav_extra_chunk: bool = True,
    ) -> None:
        super().__init__(api_key=api_key, latency_s=latency_s)
        self.first_audio_s = first_audio_s  # delay before the audio of each text
        self.seconds_per_char = seconds_per_char
        self.chunk_s = chunk_s
        self.chunk_interval_s = chunk_interval_s  # pacing between chunks (0: as fast as possible)
        self.wav_extra_chunk = wav_extra_chunk
        self.calls_log: list[SynthesisLog] = []
        self.locales = ("en-US", "ru-RU", "de-DE")  # what ListVoices offers
        self.list_requests: list[str] = []  # language_code of each ListVoices call

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        methods = {
            "StreamingSynthesize": grpc.stream_stream_rpc_method_handler(
                self._streaming,
                request_deserializer=tts.StreamingSynthesizeRequest.deserialize,
                response_serializer=tts.StreamingSynthesizeResponse.serialize,
            ),
            "ListVoices": grpc.unary_unary_rpc_method_handler(
                self._list_voices,
                request_deserializer=tts.ListVoicesRequest.deserialize,
                response_serializer=tts.ListVoicesResponse.serialize,
            ),
            "SynthesizeSpeech": grpc.unary_unary_rpc_method_handler(
                self._unary,
                request_deserializer=tts.SynthesizeSpeechRequest.deserialize,
                response_serializer=tts.SynthesizeSpeechResponse.serialize,
            ),
        }
        return [grpc.method_handlers_generic_handler("google.cloud.texttospeech.v1.TextToSpeech", methods)]

    @property
    def streams(self) -> list[SynthesisLog]:
        return [c for c in self.calls_log if c.kind == "stream"]

    def seconds_for(self, text: str) -> float:
        return len(text) * self.seconds_per_char

    async def _voice(self, voice: Any, context: grpc.aio.ServicerContext, record: SynthesisLog) -> None:
        match = CHIRP3_VOICE.match(voice.name)
        if not match:
            await self._abort(context, record, f"Voice '{voice.name}' does not exist or does not support this request.")
        if voice.language_code and voice.language_code != match.group(1):  # type: ignore[union-attr]
            await self._abort(context, record, f"Voice '{voice.name}' does not speak {voice.language_code}.")
        record.voice = voice.name

    async def _abort(self, context: grpc.aio.ServicerContext, record: SynthesisLog, message: str) -> None:
        record.code = "INVALID_ARGUMENT"
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    async def _streaming(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        record = SynthesisLog("stream", {})
        self.calls_log.append(record)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pump = asyncio.get_running_loop().create_task(pump_requests(request_iterator, queue))
        try:
            # Judged once the opening requests are in, as over a real network, where the
            # client's config and first text are on their way before a rejection comes back.
            first = await queue.get()
            ahead = [] if first is None or isinstance(first, Exception) else [await queue.get()]
            record.metadata = await self.check_call(context, record)
            fault = self.take_fault()
            if fault is not None and fault.after <= 0:
                record.code = fault.kind
                await self.fail(fault, context)
            if first is None or isinstance(first, Exception):
                return
            if type(first).pb(first).WhichOneof("streaming_request") != "streaming_config":
                await self._abort(context, record, "The first request must contain only streaming_config.")
            config = first.streaming_config
            await self._voice(config.voice, context, record)
            audio = config.streaming_audio_config
            if audio.audio_encoding not in STREAMABLE:
                await self._abort(context, record, "Streaming supports only PCM, ALAW, MULAW and OGG_OPUS encodings.")
            rate = audio.sample_rate_hertz or 24000
            record.sample_rate = rate
            chunk = int(self.chunk_s * rate) * 2
            while (request := ahead.pop() if ahead else await queue.get()) is not None:
                if isinstance(request, Exception):
                    return
                if type(request).pb(request).WhichOneof("streaming_request") != "input" or not request.input.text:
                    await self._abort(context, record, "Requests after the first must contain only input text.")
                text = request.input.text
                record.texts.append(text)
                record.text_times.append(time.monotonic())
                pcm = tone(self.seconds_for(text), rate, 220.0 + 40.0 * (len(record.texts) - 1))
                if self.first_audio_s:
                    await asyncio.sleep(self.first_audio_s)
                for at in range(0, len(pcm), chunk):
                    await self.pause()
                    if self.chunk_interval_s and at:
                        await asyncio.sleep(self.chunk_interval_s)
                    piece = pcm[at : at + chunk]
                    yield tts.StreamingSynthesizeResponse(audio_content=piece)
                    record.chunks += 1
                    record.audio_bytes += len(piece)
                    if fault is not None and record.chunks >= fault.after:
                        record.code = fault.kind
                        await self.fail(fault, context)
        except (asyncio.CancelledError, GeneratorExit):  # the client cancelled the call
            if record.code == "OK":
                record.code = "CANCELLED"
            raise
        finally:
            pump.cancel()

    async def _list_voices(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """``ListVoices``: the Chirp 3 HD voices of ``voices``, only those of the language asked for."""
        self.list_requests.append(request.language_code)
        await self.check_call(context)
        fault = self.take_fault()
        if fault is not None:
            await self.fail(fault, context)
        voices = [
            tts.Voice(
                name=f"{locale}-Chirp3-HD-{speaker}",
                language_codes=[locale],
                ssml_gender=gender,
                natural_sample_rate_hertz=24000,
            )
            for locale in self.locales
            for speaker, gender in CHIRP3_SPEAKERS.items()
            if not request.language_code or request.language_code == locale
        ]
        return tts.ListVoicesResponse(voices=voices)

    async def _unary(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        record = SynthesisLog("unary", {})
        self.calls_log.append(record)
        record.metadata = await self.check_call(context, record)
        fault = self.take_fault()
        if fault is not None:
            record.code = fault.kind
            await self.fail(fault, context)
        await self._voice(request.voice, context, record)
        text = request.input.text
        if not text:
            await self._abort(context, record, "Input text is empty.")
        record.texts.append(text)
        config = request.audio_config
        rate = config.sample_rate_hertz or 24000
        record.sample_rate = rate
        pcm = tone(self.seconds_for(text), rate, 220.0 + 40.0 * (len(record.texts) - 1))
        await self.pause()
        if self.first_audio_s:
            await asyncio.sleep(self.first_audio_s)
        if config.audio_encoding == tts.AudioEncoding.LINEAR16:
            content = wav_file(pcm, rate, self.wav_extra_chunk)
        elif config.audio_encoding == tts.AudioEncoding.PCM:
            content = pcm
        else:
            await self._abort(context, record, "This fake synthesizes LINEAR16 and PCM only.")
        record.audio_bytes = len(pcm)
        return tts.SynthesizeSpeechResponse(audio_content=content)


def _make(args: Any) -> FakeTTSServer:
    return FakeTTSServer(api_key=args.api_key, latency_s=args.latency)


if __name__ == "__main__":
    serve_main(_make, "A local Google Cloud Text-to-Speech (StreamingSynthesize, SynthesizeSpeech).")
