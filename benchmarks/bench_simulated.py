"""``voicekit bench`` on a cloud profile with no keys and no network: the vendors' local
fakes (the ones the tests use) stand in for the services, each with a set latency.

Runs the ``deepgram-elevenlabs`` profile through the real Deepgram, Gemini and ElevenLabs
SDKs against the fakes, in this process: Deepgram's finals come ``--stt-ms`` after the
end of speech it detects, Gemini's first chunk after ``--llm-ms`` (then one chunk every
``--llm-chunk-ms``), ElevenLabs' first audio after ``--tts-ms``. Prints the bench
report's per-stage summary as one JSON line (the whole report with ``--json FILE``).
Needs a source checkout (the fakes live in tests/fakes).

``python benchmarks/bench_simulated.py --turns 5 --stt-ms 150 --llm-ms 300 --tts-ms 120``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.deepgram import FakeDeepgram  # noqa: E402
from tests.fakes.elevenlabs import DEFAULT_KEY as ELEVENLABS_KEY  # noqa: E402
from tests.fakes.elevenlabs import ElevenLabsFake  # noqa: E402
from tests.fakes.gemini_rest import DEFAULT_KEY as GEMINI_KEY  # noqa: E402
from tests.fakes.gemini_rest import GeminiFake  # noqa: E402
from voicekit.audio.wav import write_wav  # noqa: E402
from voicekit.bench import BenchRequest, run_bench  # noqa: E402
from voicekit.testing.speech import synthesize  # noqa: E402


async def run(args: argparse.Namespace) -> dict[str, object]:
    deepgram = FakeDeepgram(script=["what is the weather like"], final_delay_ms=args.stt_ms)
    gemini = GeminiFake(
        replies=[["It is sunny ", "and warm today. ", "Take a hat ", "if you go out."]] * args.turns,
        first_chunk_delay_s=args.llm_ms / 1000,
        chunk_delay_s=args.llm_chunk_ms / 1000,
    )
    eleven = ElevenLabsFake(first_audio_delay_s=args.tts_ms / 1000)
    await deepgram.start()
    gemini_url, eleven_url = await gemini.start(), await eleven.start()
    os.environ.update(
        {"DEEPGRAM_API_KEY": deepgram.api_key, "GEMINI_API_KEY": GEMINI_KEY, "ELEVENLABS_API_KEY": ELEVENLABS_KEY}
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            clip = Path(tmp) / "question.wav"
            write_wav(clip, synthesize("what is the weather like"), 16000)
            request = BenchRequest(
                profiles=["deepgram-elevenlabs"],
                inputs=[clip],
                turns=args.turns,
                overrides=[
                    f"stt.base_url=http://127.0.0.1:{deepgram.port}",
                    f"llm.base_url={gemini_url}",
                    f"output.base_url={eleven_url}",
                ],
            )
            report = await run_bench(request)
    finally:
        await eleven.stop()
        await gemini.stop()
        await deepgram.stop()
    if args.json:
        Path(args.json).write_text(report.to_json())
    [run_] = report.runs
    return {
        "benchmark": "bench_simulated",
        "profile": run_.profile,
        "service_latencies_ms": {
            "stt": args.stt_ms,
            "llm_first": args.llm_ms,
            "llm_chunk": args.llm_chunk_ms,
            "tts_first": args.tts_ms,
        },
        "turns_completed": run_.turns_completed,
        "stages": {k: {"p50": v["p50"], "p95": v["p95"], "max": v["max"]} for k, v in run_.stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--stt-ms", type=float, default=150)
    parser.add_argument("--llm-ms", type=float, default=300)
    parser.add_argument("--llm-chunk-ms", type=float, default=30)
    parser.add_argument("--tts-ms", type=float, default=120)
    parser.add_argument("--json", help="write the whole bench report here")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
