"""The models voicekit knows how to fetch: which backend uses each, where it lives, what it weighs.

A model is named ``FAMILY:MODEL`` (``whisper:tiny.en``, ``piper:en_US-lessac-medium``); the
family is the backend that loads it. Adding a model of a known family is one line in
:data:`KNOWN_MODELS`; a new family is one :class:`ModelFamily` more (a turn detector that
needs one ONNX file: ``ModelSpec(TURN, "smart-turn-v3", "pipecat-ai/smart-turn-v3",
("smart-turn-v3.0.onnx",), size_mb=8, entry="smart-turn-v3.0.onnx")``).

Piper voices share one repository laid out by language, so any voice name of Piper's form
(``xx_YY-name-quality``) resolves, listed here or not.

This module is plain data: it imports nothing heavy, so ``voicekit models list`` is quick.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from voicekit.errors import VoicekitError


class UnknownModelError(VoicekitError):
    """A model name that no family knows."""

    exit_code = 2


@dataclass(frozen=True)
class ModelFamily:
    """The models one backend loads: ``module`` is what it imports, ``extra`` the pip extra that brings it."""

    name: str
    module: str
    extra: str
    role: str  # the profile section of the backend (stt, output, ...), for error messages


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable model: ``files`` of the Hugging Face repository ``repo`` at ``revision``.

    ``entry`` is the file that *is* the model for its backend ("": the whole directory);
    ``voicekit models path`` prints it. ``size_mb`` is the download size, for listings
    before anything is downloaded.
    """

    family: ModelFamily
    model: str
    repo: str
    files: tuple[str, ...]
    size_mb: int
    license: str = ""  # "": each voice's own, in the MODEL_CARD that comes with it
    entry: str = ""
    revision: str = "main"

    @property
    def name(self) -> str:
        return f"{self.family.name}:{self.model}"


WHISPER = ModelFamily("whisper", module="faster_whisper", extra="whisper", role="stt")
PIPER = ModelFamily("piper", module="piper", extra="piper", role="output")
FAMILIES = (WHISPER, PIPER)

# CTranslate2 conversions of OpenAI's Whisper (MIT); the large-v3 generation has 128 mel bins,
# which its preprocessor_config.json says, and a JSON vocabulary.
_CT2 = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
_CT2_V3 = ("config.json", "model.bin", "preprocessor_config.json", "tokenizer.json", "vocabulary.json")

_PIPER_REPO = "rhasspy/piper-voices"
_PIPER_VOICE = re.compile(
    r"^(?P<family>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<speaker>[^-/]+)-(?P<quality>x_low|low|medium|high)$"
)
_PIPER_SIZE_MB = {"x_low": 21, "low": 63, "medium": 63, "high": 114}


def piper_voice(voice: str) -> ModelSpec:
    """The spec of Piper voice ``voice`` (``en_US-lessac-medium``): its ``.onnx`` and ``.onnx.json``."""
    match = _PIPER_VOICE.match(voice)
    if match is None:
        raise UnknownModelError(
            f"'{voice}' is not a Piper voice name (language_REGION-name-quality, e.g. en_US-lessac-medium)"
        )
    folder = f"{match['family']}/{match['family']}_{match['region']}/{match['speaker']}/{match['quality']}"
    onnx = f"{folder}/{voice}.onnx"
    files = (onnx, f"{onnx}.json", f"{folder}/MODEL_CARD")  # the card names the voice's dataset and license
    return ModelSpec(PIPER, voice, _PIPER_REPO, files, _PIPER_SIZE_MB[match["quality"]], entry=onnx)


def _whisper(model: str, repo: str, size_mb: int, files: tuple[str, ...] = _CT2) -> ModelSpec:
    return ModelSpec(WHISPER, model, repo, files, size_mb, license="MIT")


KNOWN_MODELS: tuple[ModelSpec, ...] = (
    _whisper("tiny.en", "Systran/faster-whisper-tiny.en", 75),
    _whisper("tiny", "Systran/faster-whisper-tiny", 75),
    _whisper("base.en", "Systran/faster-whisper-base.en", 145),
    _whisper("base", "Systran/faster-whisper-base", 145),
    _whisper("small.en", "Systran/faster-whisper-small.en", 484),
    _whisper("small", "Systran/faster-whisper-small", 484),
    _whisper("medium.en", "Systran/faster-whisper-medium.en", 1530),
    _whisper("medium", "Systran/faster-whisper-medium", 1530),
    _whisper("large-v3", "Systran/faster-whisper-large-v3", 3090, _CT2_V3),
    _whisper("large-v3-turbo", "mobiuslabsgmbh/faster-whisper-large-v3-turbo", 1620, _CT2_V3),
    _whisper("distil-large-v3", "Systran/faster-distil-whisper-large-v3", 1510, _CT2_V3),
    piper_voice("en_US-lessac-medium"),
    piper_voice("en_US-amy-medium"),
    piper_voice("en_US-ryan-high"),
    piper_voice("en_GB-alan-medium"),
    piper_voice("ru_RU-irina-medium"),
    piper_voice("ru_RU-denis-medium"),
    piper_voice("ru_RU-dmitri-medium"),
    piper_voice("ru_RU-ruslan-medium"),
    piper_voice("de_DE-thorsten-medium"),
    piper_voice("fr_FR-siwis-medium"),
    piper_voice("es_ES-davefx-medium"),
)

_BY_NAME = {spec.name: spec for spec in KNOWN_MODELS}


def family(name: str) -> ModelFamily:
    """The family (backend) called ``name``."""
    for candidate in FAMILIES:
        if candidate.name == name:
            return candidate
    known = ", ".join(f.name for f in FAMILIES)
    raise UnknownModelError(f"no backend '{name}' uses downloadable models; these do: {known}")


def resolve(name: str) -> ModelSpec:
    """The spec called ``name``: ``whisper:tiny.en``, or without the family when only one has it."""
    name = name.strip()
    if name in _BY_NAME:
        return _BY_NAME[name]
    prefix, colon, model = name.partition(":")
    if colon:
        if family(prefix) is PIPER:
            return piper_voice(model)
    else:
        matches = [spec for spec in KNOWN_MODELS if spec.model == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            options = " or ".join(spec.name for spec in matches)
            raise UnknownModelError(f"'{name}' is ambiguous: say {options}")
        if _PIPER_VOICE.match(name):
            return piper_voice(name)
    close = difflib.get_close_matches(name, [*_BY_NAME, *(s.model for s in KNOWN_MODELS)], n=1, cutoff=0.75)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UnknownModelError(f"unknown model '{name}'{hint}; 'voicekit models list --all' shows the known ones")


def models_of(family_name: str) -> tuple[ModelSpec, ...]:
    """The known models of one family."""
    return tuple(spec for spec in KNOWN_MODELS if spec.family.name == family_name)
