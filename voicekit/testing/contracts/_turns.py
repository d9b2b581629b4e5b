"""How the Output contract reads and judges a turn: the framing of each sentence, its audio, and what may
come after ``interrupt()``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from voicekit.events import AudioOut, SpeakingEnded, SpeakingStarted
from voicekit.roles import Output
from voicekit.testing.contracts._support import clip, describe, expect, fail, short

OUTPUT_EVENTS = (SpeakingStarted, AudioOut, SpeakingEnded)

#: appended to what a turn after an interrupted one failed to say
LEAKED = "the interrupt of the turn before leaked into this one"


def check_turn(backend: Output, events: Sequence[Any], sentences: Sequence[str], what: str, hint: str = "") -> None:
    """Per sentence, in order: ``SpeakingStarted(text)``, its ``AudioOut`` (at least one if the output produces
    audio), ``SpeakingEnded(text)``. ``hint`` says why a turn that ends short may have done so."""
    __tracebackhide__ = True
    produces_audio = backend.capabilities.produces_audio
    done, audio = 0, 0
    speaking: str | None = None  # the sentence between its SpeakingStarted and SpeakingEnded
    last_ended: str | None = None
    silent: str | None = None  # ended without audio; told only if no AudioOut right after it says why

    def no_silent_sentence() -> None:
        __tracebackhide__ = True
        expect(
            silent is None,
            f"{what}: no AudioOut between SpeakingStarted({clip(silent or '')}) and its SpeakingEnded, "
            "although capabilities.produces_audio is set",
        )

    for event in events:
        expect(
            isinstance(event, OUTPUT_EVENTS),
            f"{what} yielded {describe(event)}, which is not an output event "
            "(SpeakingStarted, AudioOut, SpeakingEnded)",
        )
        if isinstance(event, SpeakingStarted):
            no_silent_sentence()
            expect(
                speaking is None,
                f"{what}: {describe(event)} before SpeakingEnded({clip(speaking or '')}): "
                "a sentence ends before the next one starts",
            )
            expect(done < len(sentences), f"{what}: {describe(event)} after all {len(sentences)} sentences were said")
            expected = sentences[done]
            expect(
                event.text.strip() == expected.strip(),
                f"{what}: {describe(event)} for sentence {done + 1}, expected SpeakingStarted({clip(expected)})",
            )
            speaking, audio = expected, 0
        elif isinstance(event, AudioOut):
            if speaking is None:
                where = (
                    f"after SpeakingEnded({clip(last_ended)})" if last_ended is not None else "before SpeakingStarted"
                )
                fail(
                    f"{what}: {describe(event)} {where}: "
                    "audio belongs between a sentence's SpeakingStarted and its SpeakingEnded"
                )
            check_audio(backend, event, f"{what}: {describe(event)} of {clip(speaking)}")
            audio += 1
        else:
            if speaking is None:
                after = f" (SpeakingEnded({clip(last_ended)}) came already)" if last_ended is not None else ""
                fail(f"{what}: {describe(event)} without a SpeakingStarted before it{after}")
            expect(
                event.text.strip() == speaking.strip(),
                f"{what}: {describe(event)} ends SpeakingStarted({clip(speaking)})",
            )
            silent = speaking if produces_audio and not audio else None
            speaking, last_ended, done = None, speaking, done + 1
    no_silent_sentence()
    expect(
        speaking is None,
        f"{what} ended inside sentence {done + 1}: SpeakingStarted({clip(speaking or '')}) without its SpeakingEnded",
    )
    if done < len(sentences):
        fail(
            f"{what} ended after {done} of {len(sentences)} sentences, "
            f"without SpeakingStarted({clip(sentences[done])}); it yielded {short(events)}"
            + (f": {hint}" if hint and not done else "")
        )


def check_audio(backend: Output, event: AudioOut, of: str) -> None:
    """Non-empty bytes of whole 16-bit samples, at the backend's ``sample_rate``."""
    __tracebackhide__ = True
    pcm = event.pcm
    expect(isinstance(pcm, bytes), f"{of} carries a {type(pcm).__name__}: pcm must be bytes")
    expect(len(pcm) > 0, f"{of} is empty: yield only audio that has samples")
    expect(len(pcm) % 2 == 0, f"{of} has an odd number of bytes: pcm is whole 16-bit samples")
    expect(
        event.sample_rate == backend.sample_rate,
        f"{of} is at {event.sample_rate} Hz, but the backend's sample_rate is {backend.sample_rate}",
    )


def expect_silent_after(after: Sequence[Any], when: str, hint: str = "") -> None:
    """Nothing but ``SpeakingEnded`` after an interrupt: no audio, no new sentence."""
    __tracebackhide__ = True
    spoken = [e for e in after if isinstance(e, (AudioOut, SpeakingStarted))]
    if spoken:
        fail(
            f"{describe(spoken[0])} after {when}; after it came {short(after)}: "
            "no audio and no new sentence may come after interrupt()" + (f" ({hint})" if hint else "")
        )


def cue_of(backend: Output) -> type[Any]:
    """The event to interrupt at: the first audio, or the first sentence of an output without audio."""
    return AudioOut if backend.capabilities.produces_audio else SpeakingStarted


async def read_to_cue(
    backend: Output,
    speech: AsyncIterator[Any],
    timeout: float,
    what: str,
    *,
    held_back: str | None = None,
    hint: str = "",
) -> list[Any]:
    """Read ``speech`` up to and including its first cue (see :func:`cue_of`).

    ``held_back`` is the first sentence when the next one is being held back, which
    makes a missing cue a sign of an output that waits for more text before it speaks.
    """
    __tracebackhide__ = True
    cue = cue_of(backend)
    events: list[Any] = []
    mute: Any = None  # a SpeakingEnded that came without audio: wrong, unless audio right after it says how
    try:
        async with asyncio.timeout(timeout) as deadline:
            async for event in speech:
                events.append(event)
                if mute is not None:
                    if isinstance(event, AudioOut):
                        fail(
                            f"{what}: {describe(event)} after {describe(mute)}: "
                            "audio belongs between a sentence's SpeakingStarted and its SpeakingEnded"
                        )
                    break
                if isinstance(event, cue):
                    return events
                if isinstance(event, SpeakingEnded) and cue is AudioOut:
                    mute = event
    except TimeoutError:
        if not deadline.expired():
            fail(f"{what} raised TimeoutError (it had yielded {short(events)})")
        if held_back is not None and mute is None:
            fail(
                f"{what}: no {cue.__name__} for {clip(held_back)} within {timeout:g} s while the next sentence was "
                f"held back; it yielded {short(events)}: speak each sentence as it arrives, without waiting for more"
            )
        if mute is None:
            fail(f"{what}: no {cue.__name__} within {timeout:g} s; it yielded {short(events)}")
    except Exception as exc:  # noqa: BLE001 - any error of the backend fails the contract, named
        fail(f"{what} raised {type(exc).__name__}: {exc} (it had yielded {short(events)})")
    if mute is not None:
        fail(
            f"{what}: {describe(mute)} without any AudioOut before it, although capabilities.produces_audio is set; "
            f"it yielded {short(events)}"
        )
    fail(f"{what} ended before its first {cue.__name__}; it yielded {short(events)}" + (f": {hint}" if hint else ""))
