"""``voicekit profiles validate`` passes exactly when ``voicekit chat`` gets past its start-up.

**Past start-up** means that :func:`voicekit.engine.runner.prepare` returned a
conversation: the profile was found, merged and overridden, its secrets were read, every
backend the conversation uses was built (not started) with its options checked, its
nested backends and ``fallback:`` backends checked too, what the LLM needs is there
(:func:`voicekit.roles.missing_roles`), and the audio source, sink and voice activity
detector were made. Nothing has gone over the network yet: starting the backends and
talking belong to the conversation, not to its start-up.

The equivalence holds for a voice conversation (``chat --input FILE.wav``) with the
variables that the profile's ``${NAME}`` placeholders name set (validate leaves them as
placeholders, chat needs their values). ``chat --text`` builds no STT and needs none:
there, passing validate implies getting past start-up, and the only profiles that
validate rejects but ``chat --text`` accepts are those whose problems all concern the
STT or the voice activity detector.

Every shipped profile is crossed with every variant below in-process (``check_profile``,
which is all ``profiles validate`` runs, against ``prepare()``); a subset runs as real
``voicekit`` subprocesses with stdin closed, where a probe run before the CLI reports
when ``prepare()`` returns and, for cloud profiles, ends the process there (the probe
changes nothing before that point).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from voicekit.engine.runner import ChatRequest, prepare
from voicekit.errors import VoicekitError
from voicekit.profiles import check_profile
from voicekit.registry import Registry, load_registry

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "audio" / "hello.wav"
SHIPPED = sorted(
    p for p in (ROOT / "profiles").glob("*.yaml") if yaml.safe_load(p.read_text()).get("abstract") is not True
)
# the keys too: validate says "ok" only for a profile chat can start here (the keys are never used:
# chat stops right after its start-up checks)
SECRETS = {
    "LIVEAVATAR_AVATAR_ID": "avatar-from-the-environment",
    "DEEPGRAM_API_KEY": "unused",
    "GEMINI_API_KEY": "unused",
    "ELEVENLABS_API_KEY": "unused",
    "LIVEAVATAR_API_KEY": "unused",
}

LITE = "output={use: liveavatar, avatar_id: a1, mode: LITE, tts: {use: espeak, %s: en-us}}"
VARIANTS: dict[str, tuple[str, ...]] = {
    "as-shipped": (),
    "live-text-no-stt": ("llm.use=gemini_live", "llm.mode=text", "stt=null"),
    "live-audio": ("llm={use: gemini_live, mode: audio}", "stt=null"),
    "no-output": ("output=null",),
    "no-stt": ("stt=null",),
    "bad-nested-tts": (LITE % "voise",),
    "good-nested-tts": (LITE % "voice",),
    "bad-fallback": ("llm.fallback=[{use: echo}, {use: echo, prefx: x}]",),
    "good-fallback": ("llm.fallback=[{use: echo}]",),
    "speech-fallback": ("llm.fallback=[{use: gemini_live, mode: audio}]",),
    "bad-option": ("llm.temperatur=0.5",),
    "unsupported-language": ("language=de",),
    "silero-vad": ("audio.vad=silero",),
    "bad-retry": ("llm.retry={attempts: 0}",),
    "unknown-backend": ("output.use=espeek",),
}
CASES = [(path, name) for path in SHIPPED for name in VARIANTS]


def case_id(case: tuple[Path, str]) -> str:
    return f"{case[0].stem}:{case[1]}"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def no_lines() -> AsyncIterator[str]:
    return
    yield  # an async generator that ends at once: stdin closed


def startup(path: Path, overrides: tuple[str, ...], out: Path, registry: Registry, *, text: bool) -> str | None:
    """``None`` if ``chat`` gets past start-up, else its error; a crash is a test failure."""

    async def main() -> None:
        request = ChatRequest(
            profile=str(path),
            overrides=overrides,
            input=None if text else HELLO,
            output=out,
            text=text,
            text_lines=no_lines() if text else None,
            fast=True,
            registry=registry,
        )
        conversation, finish = await prepare(request)
        await conversation.sink.aclose()
        finish("ended")

    try:
        asyncio.run(main())
    except VoicekitError as exc:
        assert "\n" not in str(exc), str(exc)
        return str(exc)
    return None


def concerns_stt_only(problem: str) -> bool:
    return re.search(r"(^|: )(stt\b|\S+: stt backend|audio\.vad:)", problem) is not None


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_validate_passes_exactly_when_chat_gets_past_startup(
    case: tuple[Path, str], registry: Registry, secrets: None, tmp_path: Path
) -> None:
    path, variant = case
    overrides = VARIANTS[variant]
    problems = check_profile(path, registry, overrides)
    voice = startup(path, overrides, tmp_path / "voice.wav", registry, text=False)
    assert (problems == []) == (voice is None), f"validate: {problems or 'ok'}; chat: {voice or 'past start-up'}"
    typed = startup(path, overrides, tmp_path / "typed.wav", registry, text=True)
    if not problems:
        assert typed is None, typed
    elif typed is None:
        assert all(concerns_stt_only(p) for p in problems), problems


def test_the_matrix_has_both_outcomes(registry: Registry, secrets: None) -> None:
    """The variants are not all good or all bad: each side is asserted both ways."""
    outcomes = {
        name: {check_profile(path, registry, overrides) == [] for path in SHIPPED}
        for name, overrides in VARIANTS.items()
    }
    assert outcomes["as-shipped"] == {True} and outcomes["bad-nested-tts"] == {False}
    assert outcomes["good-fallback"] == {True, False}  # echo cannot stand in for a speech-to-speech model
    assert outcomes["live-text-no-stt"] == {False} and outcomes["bad-fallback"] == {False}


def test_abstract_profiles_validate_but_do_not_run(registry: Registry, tmp_path: Path) -> None:
    """The one deliberate difference: a profile only meant for ``extends:`` is checked as far as it goes."""
    base = ROOT / "profiles" / "base.yaml"
    assert check_profile(base, registry) == []
    error = startup(base, (), tmp_path / "x.wav", registry, text=False)
    assert error is not None and "is abstract" in error


# --- the same, as real processes ------------------------------------------------------------------

MARK = "voicekit-test: past start-up"
PROBE = f"""
import sys
import voicekit.engine.runner as runner

_prepare = runner.prepare


async def _probe(request):
    conversation, finish = await _prepare(request)
    print({MARK!r}, file=sys.stderr, flush=True)
    if {{stop}}:  # a cloud profile: what follows would start its backends over the network
        await conversation.sink.aclose()
        finish("ended")
        raise SystemExit(0)
    return conversation, finish


runner.prepare = _probe
"""


def run(*args: str, tmp_path: Path, stop: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **SECRETS, "COLUMNS": "200", "VOICEKIT_LEDGER": str(tmp_path / "ledger.sqlite3")}
    code = PROBE.format(stop=stop) + "\nfrom voicekit.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip


def sets(overrides: tuple[str, ...]) -> Iterator[str]:
    for text in overrides:
        yield from ("--set", text)


PROCESS_CASES = [
    ("offline", "as-shipped"),
    ("offline", "no-output"),
    ("gemini-live", "as-shipped"),
    ("gemini-live", "live-text-no-stt"),
    ("heygen-ru", "bad-nested-tts"),
    ("heygen-ru", "good-nested-tts"),
    ("deepgram-elevenlabs", "bad-fallback"),
    ("deepgram-elevenlabs", "good-fallback"),
    ("google-live-chirp3", "speech-fallback"),
]


@pytest.mark.parametrize(("profile", "variant"), PROCESS_CASES, ids=[f"{p}:{v}" for p, v in PROCESS_CASES])
def test_the_commands_agree(profile: str, variant: str, tmp_path: Path) -> None:
    overrides = tuple(sets(VARIANTS[variant]))
    validate = run("profiles", "validate", profile, *overrides, tmp_path=tmp_path)
    offline = profile == "offline"
    chat = run(
        "chat", "--profile", profile, *overrides, "--input", str(HELLO), "--output", str(tmp_path / "reply.wav"),
        "--fast", tmp_path=tmp_path, stop=not offline,
    )  # fmt: skip
    past = MARK in chat.stderr
    assert (validate.returncode == 0) == past, f"validate: {validate.stdout}\nchat: {chat.stderr}"
    if past:
        assert validate.stdout == f"{profile}: ok\n"
        assert chat.returncode == 0, chat.stderr  # the offline one talked for real, to the end
        if offline:
            assert "bot: You said:" in chat.stdout and (tmp_path / "reply.wav").stat().st_size > 44
        return
    assert validate.returncode == 1 and validate.stdout.strip(), validate.stdout
    errors = [line for line in chat.stderr.splitlines() if line.strip()]
    assert chat.returncode == 2 and len(errors) == 1 and errors[0].startswith("error: "), chat.stderr
    reported = errors[0].removeprefix("error: ")
    first = validate.stdout.splitlines()[0]
    # the same problem, said the same way where it is about a line of the profile
    assert first in reported or re.sub(r"^\S+: ", "", first) in reported, (first, reported)
