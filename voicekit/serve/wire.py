"""The binary frames on the socket: a small hand codec for ``frames.proto``.

Each websocket message is one protobuf ``pipecat.Frame`` whose oneof holds a text,
audio, transcription or message frame. The schema is four tiny messages, so a
hand codec is shorter than generated code, needs no protobuf runtime at run time
and is fast on the hot path (one audio frame every 20-40 ms per connection). The
tests check it byte for byte against the protobuf runtime built from ``frames.proto``.

Encoding follows proto3: fields in field-number order, scalars at their default
value left out, ``pts`` written whenever it is set. Decoding skips unknown fields
and raises :class:`WireError` on anything malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

# oneof field numbers of pipecat.Frame
TEXT, AUDIO, TRANSCRIPTION, MESSAGE = 1, 2, 3, 4
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MAX_UINT64 = (1 << 64) - 1


class WireError(ValueError):
    """A message that is not a well-formed frame."""


@dataclass(frozen=True, slots=True)
class TextFrame:
    text: str
    id: int = 0
    name: str = ""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """16-bit little-endian PCM, interleaved when ``num_channels`` > 1."""

    audio: bytes
    sample_rate: int = 0
    num_channels: int = 0
    id: int = 0
    name: str = ""
    pts: int | None = None


@dataclass(frozen=True, slots=True)
class TranscriptionFrame:
    text: str
    user_id: str = ""
    timestamp: str = ""
    id: int = 0
    name: str = ""


@dataclass(frozen=True, slots=True)
class MessageFrame:
    """One RTVI message as JSON text."""

    data: str


Frame = TextFrame | AudioFrame | TranscriptionFrame | MessageFrame


# --- encoding -----------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0 or value > _MAX_UINT64:
        raise ValueError(f"{value} does not fit a uint64")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _uint(field: int, value: int) -> bytes:
    return _varint(field << 3 | _VARINT) + _varint(value) if value else b""


def _bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | _LEN) + _varint(len(value)) + value if value else b""


def _str(field: int, value: str) -> bytes:
    return _bytes(field, value.encode("utf-8"))


def _wrap(kind: int, body: bytes) -> bytes:
    return _varint(kind << 3 | _LEN) + _varint(len(body)) + body


def encode(frame: Frame) -> bytes:
    """One ``pipecat.Frame`` holding ``frame``."""
    if isinstance(frame, AudioFrame):
        body = (
            _uint(1, frame.id) + _str(2, frame.name) + _bytes(3, frame.audio)
            + _uint(4, frame.sample_rate) + _uint(5, frame.num_channels)
        )
        if frame.pts is not None:
            body += _varint(6 << 3 | _VARINT) + _varint(frame.pts)
        return _wrap(AUDIO, body)
    if isinstance(frame, MessageFrame):
        return _wrap(MESSAGE, _str(1, frame.data))
    if isinstance(frame, TextFrame):
        return _wrap(TEXT, _uint(1, frame.id) + _str(2, frame.name) + _str(3, frame.text))
    if isinstance(frame, TranscriptionFrame):
        body = (
            _uint(1, frame.id) + _str(2, frame.name) + _str(3, frame.text)
            + _str(4, frame.user_id) + _str(5, frame.timestamp)
        )
        return _wrap(TRANSCRIPTION, body)
    raise TypeError(f"not a frame: {type(frame).__name__}")


def encode_audio(pcm: bytes, sample_rate: int, num_channels: int = 1) -> bytes:
    """The hot path of :func:`encode` for mono bot audio."""
    body = _bytes(3, pcm) + _uint(4, sample_rate) + _uint(5, num_channels)
    return _wrap(AUDIO, body)


def encode_message(data: str) -> bytes:
    return _wrap(MESSAGE, _str(1, data))


# --- decoding -----------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & _MAX_UINT64, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def _fields(data: bytes) -> dict[int, int | bytes]:
    """Field number → last value (varints as int, length-delimited as bytes), ordered by
    last appearance; fixed-width fields are skipped."""
    out: dict[int, int | bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise WireError("field number 0")
        value: int | bytes
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise WireError(f"field {field} runs past the end of the message")
            value = data[pos : pos + size]
            pos += size
        elif wire_type in (_I64, _I32):
            pos += 8 if wire_type == _I64 else 4
            if pos > end:
                raise WireError(f"field {field} runs past the end of the message")
            continue
        else:
            raise WireError(f"unsupported wire type {wire_type} (field {field})")
        out.pop(field, None)
        out[field] = value
    return out


def _int(fields: dict[int, int | bytes], field: int, bits: int = 64) -> int:
    value = fields.get(field, 0)
    if not isinstance(value, int):
        raise WireError(f"field {field} should be an integer")
    return value & ((1 << bits) - 1)


def _raw(fields: dict[int, int | bytes], field: int) -> bytes:
    value = fields.get(field, b"")
    if not isinstance(value, bytes):
        raise WireError(f"field {field} should be length-delimited")
    return value


def _text(fields: dict[int, int | bytes], field: int) -> str:
    try:
        return _raw(fields, field).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"field {field} is not valid UTF-8") from None


def decode(data: bytes) -> Frame | None:
    """The frame inside one ``pipecat.Frame``; ``None`` when it holds no kind we know."""
    outer = _fields(data)
    kinds = [k for k in outer if k in (TEXT, AUDIO, TRANSCRIPTION, MESSAGE)]
    if not kinds:
        return None
    kind = kinds[-1]  # a oneof keeps the last member it was given
    inner = _fields(_raw(outer, kind))
    if kind == AUDIO:
        return AudioFrame(
            audio=_raw(inner, 3), sample_rate=_int(inner, 4, 32), num_channels=_int(inner, 5, 32),
            id=_int(inner, 1), name=_text(inner, 2), pts=_int(inner, 6) if 6 in inner else None,
        )
    if kind == MESSAGE:
        return MessageFrame(_text(inner, 1))
    if kind == TEXT:
        return TextFrame(_text(inner, 3), id=_int(inner, 1), name=_text(inner, 2))
    return TranscriptionFrame(
        _text(inner, 3), user_id=_text(inner, 4), timestamp=_text(inner, 5), id=_int(inner, 1), name=_text(inner, 2)
    )
