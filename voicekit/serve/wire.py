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
            _uint(1, frame.id)
            + _str(2, frame.name)
            + _bytes(3, frame.audio)
            + _uint(4, frame.sample_rate)
            + _uint(5, frame.num_channels)
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
            _uint(1, frame.id)
            + _str(2, frame.name)
            + _str(3, frame.text)
            + _str(4, frame.user_id)
            + _str(5, frame.timestamp)
        )
        return _wrap(TRANSCRIPTION, body)
    raise TypeError(f"not a frame: {type(frame).__name__}")


def encode_audio(pcm: bytes, sample_rate: int, num_channels: int = 1) -> bytes:
    """The hot path of :func:`encode` for bot audio (same bytes, fewer steps)."""
    if not pcm:
        return encode(AudioFrame(pcm, sample_rate, num_channels))
    head = b"\x1a" + _varint(len(pcm))
    tail = _uint(4, sample_rate) + _uint(5, num_channels)
    return b"".join((b"\x12", _varint(len(head) + len(pcm) + len(tail)), head, pcm, tail))


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


def _fields(data: bytes, pos: int, end: int) -> dict[int, int | tuple[int, int]]:
    """The fields of the message in ``data[pos:end]``: field number → its last value, a
    varint as an int or a length-delimited field as its (start, end) in ``data``; ordered
    by last appearance. Fixed-width fields are skipped."""
    out: dict[int, int | tuple[int, int]] = {}
    while pos < end:
        key = data[pos]  # tags and small values are one byte: read those inline
        if key < 0x80:
            pos += 1
        else:
            key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise WireError("field number 0")
        value: int | tuple[int, int]
        if wire_type == _VARINT or wire_type == _LEN:
            if pos < end and data[pos] < 0x80:
                number = data[pos]
                pos += 1
            else:
                number, pos = _read_varint(data, pos)
            if wire_type == _VARINT:
                value = number
            else:
                if pos + number > end:
                    raise WireError(f"field {field} runs past the end of the message")
                value = (pos, pos + number)
                pos += number
        elif wire_type == _I64 or wire_type == _I32:
            pos += 8 if wire_type == _I64 else 4
            if pos > end:
                raise WireError(f"field {field} runs past the end of the message")
            continue
        else:
            raise WireError(f"unsupported wire type {wire_type} (field {field})")
        out.pop(field, None)
        out[field] = value
    if pos > end:
        raise WireError("truncated varint")
    return out


def _int(fields: dict[int, int | tuple[int, int]], field: int, bits: int = 64) -> int:
    value = fields.get(field, 0)
    if not isinstance(value, int):
        raise WireError(f"field {field} should be an integer")
    return value & ((1 << bits) - 1)


def _span(fields: dict[int, int | tuple[int, int]], field: int) -> tuple[int, int]:
    value = fields.get(field, (0, 0))
    if isinstance(value, int):
        raise WireError(f"field {field} should be length-delimited")
    return value


def _text(data: bytes, fields: dict[int, int | tuple[int, int]], field: int) -> str:
    start, end = _span(fields, field)
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"field {field} is not valid UTF-8") from None


def decode(data: bytes) -> Frame | None:
    """The frame inside one ``pipecat.Frame``; ``None`` when it holds no kind we know."""
    outer = _fields(data, 0, len(data))
    kinds = [k for k in outer if k in (TEXT, AUDIO, TRANSCRIPTION, MESSAGE)]
    if not kinds:
        return None
    kind = kinds[-1]  # a oneof keeps the last member it was given
    inner = _fields(data, *_span(outer, kind))
    if kind == AUDIO:
        start, end = _span(inner, 3)
        return AudioFrame(
            audio=data[start:end],
            sample_rate=_int(inner, 4, 32),
            num_channels=_int(inner, 5, 32),
            id=_int(inner, 1),
            name=_text(data, inner, 2),
            pts=_int(inner, 6) if 6 in inner else None,
        )
    if kind == MESSAGE:
        return MessageFrame(_text(data, inner, 1))
    if kind == TEXT:
        return TextFrame(_text(data, inner, 3), id=_int(inner, 1), name=_text(data, inner, 2))
    return TranscriptionFrame(
        _text(data, inner, 3),
        user_id=_text(data, inner, 4),
        timestamp=_text(data, inner, 5),
        id=_int(inner, 1),
        name=_text(data, inner, 2),
    )


def audio_payload(data: bytes) -> tuple[bytes, int, int] | None:
    """``(pcm, sample_rate, num_channels)`` of a message that is one plain audio frame, the
    bulk of what clients send, read without building a frame; ``None`` for anything else
    (then :func:`decode` reads it). Malformed audio frames raise :class:`WireError`."""
    end = len(data)
    if end < 2 or data[0] != 0x12:
        return None
    size = data[1]
    pos = 2
    if size >= 0x80:
        size, pos = _read_varint(data, 1)
    if pos + size != end:
        return None  # more outer fields: the general path
    pcm = b""
    rate = channels = 0
    while pos < end:
        key = data[pos]
        pos += 1
        if key in (0x08, 0x20, 0x28, 0x30):  # id, sample_rate, num_channels, pts: varints
            value = data[pos] if pos < end else 0x80
            if value < 0x80:
                pos += 1
            else:
                value, pos = _read_varint(data, pos)
            if key == 0x20:
                rate = value & 0xFFFFFFFF
            elif key == 0x28:
                channels = value & 0xFFFFFFFF
        elif key in (0x12, 0x1A):  # name, audio
            size = data[pos] if pos < end else 0x80
            if size < 0x80:
                pos += 1
            else:
                size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise WireError("audio frame runs past the end of the message")
            if key == 0x1A:
                pcm = data[pos : pos + size]
            else:
                try:
                    data[pos : pos + size].decode("utf-8")
                except UnicodeDecodeError:
                    raise WireError("field 2 is not valid UTF-8") from None
            pos += size
        else:
            return None  # unknown fields, or multi-byte keys: the general path
    return pcm, rate, channels
