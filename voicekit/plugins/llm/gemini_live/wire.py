"""Reading Gemini Live server messages, independent of any connection.

:func:`read_update` turns one ``LiveServerMessage`` of the ``google-genai`` SDK (or
anything with the same attributes) into a flat :class:`LiveUpdate`, the only shape the
rest of the backend looks at. :func:`decode_server_message` parses wire JSON (camelCase,
as the service sends it) or the SDK's snake_case dumps into that SDK type. The
helpers for languages, durations and audio MIME types live here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

#: Rate of model audio when the MIME type does not say (the Live API speaks 24 kHz).
OUTPUT_RATE = 24000
INPUT_MIME = "audio/pcm;rate=16000"


@dataclass(slots=True)
class LiveUpdate:
    """What one server message says, flattened. Empty fields mean "not in this message"."""

    setup_complete: bool = False
    input_text: str = ""
    input_finished: bool = False
    output_text: str = ""
    model_text: str = ""  # text parts of the model turn (TEXT modality), thoughts excluded
    audio: list[tuple[bytes, int]] = field(default_factory=list)
    interrupted: bool = False
    generation_complete: bool = False
    turn_complete: bool = False
    voice_activity: Literal["start", "end"] | None = None
    go_away_s: float | None = None
    new_handle: str | None = None
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (id, name, args) of toolCall
    cancelled_calls: list[str] = field(default_factory=list)  # ids of toolCallCancellation
    # made by the backend: how many of the link's tool responses had been written when this came
    responses_written: int = 0
    # made by the backend, never by the service: the connection broke while the model spoke,
    connection_lost: bool = False
    # ... and the user's unanswered audio goes to the next connection again (heard and transcribed anew)
    audio_resent: bool = False

    @property
    def model_output(self) -> bool:
        """The message carries part of the model's reply."""
        return bool(self.audio or self.output_text or self.model_text)


def read_update(message: Any) -> LiveUpdate:
    """Flatten a ``LiveServerMessage`` into a :class:`LiveUpdate`."""
    update = LiveUpdate(setup_complete=getattr(message, "setup_complete", None) is not None)
    content = getattr(message, "server_content", None)
    if content is not None:
        _read_content(content, update)
    activity = getattr(message, "voice_activity", None)
    kind = str(getattr(getattr(activity, "voice_activity_type", None), "value", "") or "")
    if kind.endswith("ACTIVITY_START"):
        update.voice_activity = "start"
    elif kind.endswith("ACTIVITY_END"):
        update.voice_activity = "end"
    go_away = getattr(message, "go_away", None)
    if go_away is not None:
        update.go_away_s = parse_duration(getattr(go_away, "time_left", None))
    tool_call = getattr(message, "tool_call", None)
    for call in getattr(tool_call, "function_calls", None) or ():
        update.tool_calls.append((str(call.id or ""), str(call.name or ""), dict(call.args or {})))
    cancellation = getattr(message, "tool_call_cancellation", None)
    update.cancelled_calls = [str(i) for i in getattr(cancellation, "ids", None) or ()]
    resumption = getattr(message, "session_resumption_update", None)
    if resumption is not None and getattr(resumption, "resumable", None) and getattr(resumption, "new_handle", None):
        update.new_handle = str(resumption.new_handle)
    return update


def _read_content(content: Any, update: LiveUpdate) -> None:
    transcript = getattr(content, "input_transcription", None)
    if transcript is not None:
        update.input_text = getattr(transcript, "text", None) or ""
        update.input_finished = bool(getattr(transcript, "finished", None))
    transcript = getattr(content, "output_transcription", None)
    if transcript is not None:
        update.output_text = getattr(transcript, "text", None) or ""
    turn = getattr(content, "model_turn", None)
    for part in getattr(turn, "parts", None) or ():
        blob = getattr(part, "inline_data", None)
        if blob is not None and getattr(blob, "data", None):
            mime = getattr(blob, "mime_type", None) or ""
            if mime.startswith("audio/"):
                update.audio.append((bytes(blob.data), rate_from_mime(mime)))
        text = getattr(part, "text", None)
        if text and not getattr(part, "thought", None):
            update.model_text += text
    update.interrupted = bool(getattr(content, "interrupted", None))
    update.generation_complete = bool(getattr(content, "generation_complete", None))
    update.turn_complete = bool(getattr(content, "turn_complete", None))


def decode_server_message(raw: str | bytes | dict[str, Any]) -> Any:
    """Parse one server message (wire JSON or an SDK dump) into the SDK's ``LiveServerMessage``."""
    from google.genai import types

    data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    return types.LiveServerMessage.model_validate(data)


def rate_from_mime(mime: str) -> int:
    """``audio/pcm;rate=24000`` → 24000; a bare ``audio/pcm`` (as Vertex sends it) → 24000."""
    match = re.search(r"rate=(\d+)", mime)
    return int(match.group(1)) if match else OUTPUT_RATE


def parse_duration(value: Any) -> float | None:
    """A protobuf duration as the service sends it (``"10s"``, ``"0.5s"``, or seconds/nanos)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return float(value.get("seconds", 0) or 0) + float(value.get("nanos", 0) or 0) / 1e9
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*s?\s*", str(value))
    return float(match.group(1)) if match else None


_REGIONS = {
    "ar": "ar-EG", "bn": "bn-BD", "cmn": "cmn-CN", "de": "de-DE", "en": "en-US", "es": "es-US",
    "fr": "fr-FR", "hi": "hi-IN", "id": "id-ID", "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR",
    "nl": "nl-NL", "pl": "pl-PL", "pt": "pt-BR", "ru": "ru-RU", "th": "th-TH", "tr": "tr-TR",
    "uk": "uk-UA", "vi": "vi-VN", "zh": "cmn-CN",
}  # fmt: skip
_NAMES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French", "hi": "Hindi",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ru": "Russian", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese", "cmn": "Chinese",
}  # fmt: skip


def language_code(language: str) -> str:
    """A profile language as the BCP-47 code the Live API's speech config takes: ``ru`` → ``ru-RU``."""
    language = language.strip().replace("_", "-")
    if "-" in language:
        base, _, region = language.partition("-")
        return f"{base.lower()}-{region.upper()}"
    return _REGIONS.get(language.lower(), f"{language.lower()}-{language.upper()}")


def language_name(language: str) -> str:
    """``ru`` / ``ru-RU`` → ``Russian``; unknown languages are named by their code."""
    base = language.strip().replace("_", "-").partition("-")[0].lower()
    return _NAMES.get(base, language_code(language))
