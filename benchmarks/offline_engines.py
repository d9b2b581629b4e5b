"""Cost and accuracy of the offline engines: pocketsphinx STT and espeak-ng voices.

- pocketsphinx: sixteen espeak-spoken English sentences, one stream, 20 ms chunks pushed
  as fast as taken; word error rate, real-time factor of the whole stream, the slowest
  20 ms chunk, and the time from the detected end of speech (``SpeechEnded``) to the
  ``Final``, for each ``final_pass``. A noise floor of about -60 dBFS is added, as a
  microphone has.
- espeak-ng: milliseconds of synthesis per second of audio (English and Russian) and
  the time to the first audio chunk of a sentence.

Prints one JSON line. Example: ``python benchmarks/offline_engines.py``
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicekit.events import Final, SpeechEnded
from voicekit.plugins.output._espeakng import get_engine
from voicekit.plugins.stt.pocketsphinx import PocketsphinxSTT
from voicekit.testing.speech import synthesize

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "i would like to book a table for two people tonight",
    "can you tell me the weather forecast for tomorrow",
    "the meeting has been moved to next monday afternoon",
    "please send the report to my email address",
    "hello world",
    "good morning",
    "thank you very much",
    "what is your name",
    "open the door",
    "one two three four five",
    "where is the nearest train station",
    "i want to go home",
    "turn off the light",
    "the weather is nice today",
    "what time is it",
]


def word_errors(ref: str, hyp: str) -> int:
    r, h = ref.split(), hyp.split()
    row = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, row = row, [i] + [0] * len(h)
        for j in range(1, len(h) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
    return row[-1]


async def pocketsphinx(final_pass: str) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    parts = []
    for text in SENTENCES:
        clean = np.frombuffer(synthesize(text, pad_ms=0) + bytes(32000), dtype=np.int16).astype(np.float64)
        parts.append(np.clip(clean + rng.normal(0, 30, clean.size), -32768, 32767).astype(np.int16).tobytes())
    audio = b"".join(parts)
    stt = PocketsphinxSTT(PocketsphinxSTT.Options.model_validate({"final_pass": final_pass}))
    t0 = time.perf_counter()
    await stt.start()
    start_s = time.perf_counter() - t0
    finals: list[str] = []
    latencies: list[float] = []
    ended = 0.0
    async with stt.stream() as stream:

        async def read() -> None:
            nonlocal ended
            async for event in stream:
                if isinstance(event, SpeechEnded):
                    ended = event.t
                elif isinstance(event, Final):
                    finals.append(event.text)
                    latencies.append(event.t - ended)

        reader = asyncio.create_task(read())
        t0 = time.perf_counter()
        for i in range(0, len(audio), 640):
            stream.push_audio(audio[i : i + 640])
            await asyncio.sleep(0)
        stream.end_input()
        await reader
        elapsed = time.perf_counter() - t0
    await stt.aclose()
    # The slowest single chunk, measured on a decoder of the same kind.
    decoder = stt._new_decoder("streaming")
    decoder.start_utt()
    worst = 0.0
    for i in range(0, len(audio) // 4, 640):
        c0 = time.perf_counter()
        decoder.process_raw(audio[i : i + 640], False, False)
        decoder.hyp()
        worst = max(worst, time.perf_counter() - c0)
    decoder.end_utt()
    errors = sum(word_errors(ref, hyp) for ref, hyp in zip(SENTENCES, finals, strict=False))
    return {
        "start_s": round(start_s, 2),
        "utterances": len(SENTENCES),
        "finals": len(finals),
        "wer": round(errors / sum(len(s.split()) for s in SENTENCES), 3),
        "rtf": round(elapsed / (len(audio) / 32000), 3),
        "worst_chunk_ms": round(worst * 1000, 1),
        "end_to_final_ms_median": round(statistics.median(latencies) * 1000),
        "end_to_final_ms_max": round(max(latencies) * 1000),
    }


def espeak() -> dict[str, Any]:
    engine = get_engine()
    texts = {
        "en": "The weather is nice today, so let's take a long walk in the park before dinner. " * 3,
        "ru": "Сегодня хорошая погода, поэтому давай долго погуляем в парке перед ужином. " * 3,
    }
    result: dict[str, Any] = {"sample_rate": engine.sample_rate}
    for language, text in texts.items():
        voice = "en-us" if language == "en" else "ru"
        engine.synthesize_all("warm up", voice=voice)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            pcm = engine.synthesize_all(text, voice=voice)
            runs.append((time.perf_counter() - t0) * 1000 / (len(pcm) / 2 / engine.sample_rate))
        result[f"{language}_ms_per_audio_s"] = round(statistics.median(runs), 2)
    firsts, sizes = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        stamps: list[float] = []

        def on_audio(pcm: bytes, t0: float = t0, stamps: list[float] = stamps) -> None:
            stamps.append(time.perf_counter() - t0)
            sizes.append(len(pcm) // 2)

        engine.synthesize("Hello there, how are you?", on_audio, voice="en-us")
        firsts.append(stamps[0])
    result["en_first_chunk_ms"] = round(statistics.median(firsts) * 1000, 2)
    result["chunk_ms"] = round(max(sizes) / engine.sample_rate * 1000, 1)
    return result


async def main() -> None:
    results = {
        "benchmark": "offline_engines",
        "pocketsphinx_streaming": await pocketsphinx("streaming"),
        "pocketsphinx_batch": await pocketsphinx("batch"),
        "espeak": espeak(),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
