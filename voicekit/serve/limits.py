"""What one client may cost the server, and the checks that hold it to that.

- :class:`ServeLimits`: every limit of ``voicekit serve`` with its default (docs/serve.md
  lists them, with what a client gets when it crosses one).
- :func:`check_json`: the size and nesting of an RTVI message, looked at before it is parsed.
- :class:`Budget`: a token bucket (messages per second with a burst).
- :func:`plan_descriptors`: fits the connection and conversation limits under the process's
  open-file limit (``RLIMIT_NOFILE``), so running out of descriptors never stops the server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicekit.clock import now
from voicekit.serve.wire import WireError

#: descriptors a conversation may hold besides its client's socket (backend sockets, files)
FDS_PER_CONVERSATION = 6
#: descriptors the process needs whatever its load (Python, libraries, logs, the ledger)
RESERVED_FDS = 64
#: connections the event loop may accept in one go, before any of them is looked at
ACCEPT_BURST = 128


@dataclass(frozen=True)
class ServeLimits:
    """What one connection may send, and how long it may take; a connection that goes past
    a limit is closed with the code given here (RTVI ``error`` first, saying which limit)."""

    handshake_timeout_s: float = 10.0  # HTTP request headers, and the RTVI client-ready after the socket opens
    new_sessions_burst: int = 100  # conversations started at once ...
    new_sessions_per_s: float = 5.0  # ... then this many per second, whoever asks (1013 beyond it)
    max_json_chars: int = 64 * 1024  # one RTVI message (1007 beyond it)
    max_json_depth: int = 32  # nesting of an RTVI message (1007 beyond it)
    max_id_chars: int = 128  # an RTVI message id (1007 beyond it)
    max_text_chars: int = 4096  # one typed message (an error-response beyond it; nothing is closed)
    text_burst: int = 10  # typed messages at once ...
    text_per_s: float = 1.0  # ... then this many per second (1008 beyond it)
    message_burst: int = 200  # socket messages of any kind at once ...
    messages_per_s: float = 200.0  # ... then this many per second (1008 beyond it)
    rtvi_burst: int = 50  # RTVI (JSON) messages at once ...
    rtvi_per_s: float = 20.0  # ... then this many per second (1008 beyond it)
    audio_ahead_s: float = 5.0  # microphone audio received ahead of real time (1008 beyond it)
    outbox_items: int = 1000  # messages queued for a client that does not read ...
    outbox_bytes: int = 4 << 20  # ... or their bytes (1008 beyond either)


# --- JSON, before it is parsed ------------------------------------------------------------

_ESCAPES = re.compile(r"\\.", re.DOTALL)
# +1 for an opening bracket, -1 (255 as int8) for a closing one, 0 for every other byte
_STEPS = bytes(1 if i in b"[{" else 255 if i in b"]}" else 0 for i in range(256))
_MAX_INT_DIGITS = 32


def check_json(text: str, *, max_chars: int, max_depth: int) -> None:
    """Raise :class:`WireError` when ``text`` is longer than ``max_chars`` or nests arrays and
    objects deeper than ``max_depth``. Linear time, in C: strings are cut out, and the deepest
    point is the largest running sum of what is left (+1 per opening bracket, -1 per closing one)."""
    if len(text) > max_chars:
        raise WireError(f"an RTVI message of {len(text)} characters is over the limit of {max_chars}")
    if text.count("[") + text.count("{") <= max_depth:
        return  # the common case: too few brackets to nest too deep
    outside = "".join(_ESCAPES.sub("", text).split('"')[0::2]).encode()  # what is not inside a string
    steps = np.frombuffer(outside.translate(_STEPS), dtype=np.int8)
    if len(steps) and int(np.cumsum(steps, dtype=np.int32).max()) > max_depth:
        raise WireError(f"an RTVI message nests deeper than {max_depth} levels")


def _bounded_int(digits: str) -> int:
    if len(digits) > _MAX_INT_DIGITS:
        raise WireError(f"a number of {len(digits)} digits in an RTVI message (at most {_MAX_INT_DIGITS})")
    return int(digits)


def loads(text: str, *, max_chars: int, max_depth: int) -> Any:
    """``json.loads`` after :func:`check_json`; any problem is a :class:`WireError`."""
    check_json(text, max_chars=max_chars, max_depth=max_depth)
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise WireError(f"message is not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:  # nesting the scan lets through only when malformed; belt and braces
        raise WireError(f"an RTVI message nests deeper than {max_depth} levels") from None


def shown(value: object, chars: int = 40) -> str:
    """A client's value quoted in a message, cut short: answers never echo much of what came in."""
    if isinstance(value, str):
        return repr(value) if len(value) <= chars else repr(value[:chars]) + "…"
    if value is None or isinstance(value, bool | int | float):
        return repr(value)  # numbers are at most 32 digits (see loads)
    return f"a JSON {'object' if isinstance(value, dict) else 'array' if isinstance(value, list) else 'value'}"


# --- rates ---------------------------------------------------------------------------------


class Budget:
    """A token bucket: ``burst`` at once, then ``per_s`` a second. :meth:`take` says whether
    one more is allowed."""

    __slots__ = ("_at", "_left", "burst", "per_s")

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst, self.per_s = burst, per_s
        self._left = float(burst)
        self._at = now()

    def take(self) -> bool:
        t = now()
        self._left = min(self.burst, self._left + (t - self._at) * self.per_s)
        self._at = t
        if self._left < 1:
            return False
        self._left -= 1
        return True


# --- descriptors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DescriptorPlan:
    """Connection and conversation limits that fit the open-file limit, and what was changed."""

    max_sessions: int
    max_connections: int
    accept_burst: int
    soft_limit: int  # RLIMIT_NOFILE to set (raised up to the hard limit when that helps)
    warning: str | None = None

    @staticmethod
    def needed(max_sessions: int, max_connections: int, accept_burst: int) -> int:
        return RESERVED_FDS + accept_burst + max_connections + FDS_PER_CONVERSATION * max_sessions


def plan_descriptors(soft: int, hard: int, max_sessions: int, max_connections: int) -> DescriptorPlan:
    """Fit ``max_connections`` open sockets and ``max_sessions`` conversations (each with its
    backends' descriptors) under the open-file limit: raise the soft limit towards the hard one
    if that is enough, else lower the limits and say so."""
    unlimited = 1 << 20  # RLIM_INFINITY, or as good as
    hard = unlimited if hard < 0 or hard > unlimited else hard
    soft = hard if soft < 0 or soft > hard else soft
    burst = ACCEPT_BURST
    needed = DescriptorPlan.needed(max_sessions, max_connections, burst)
    if needed <= soft:
        return DescriptorPlan(max_sessions, max_connections, burst, soft)
    if needed <= hard:
        return DescriptorPlan(max_sessions, max_connections, burst, needed)
    burst = max(8, min(ACCEPT_BURST, hard // 8))
    room = hard - RESERVED_FDS - burst
    connections = room - FDS_PER_CONVERSATION * max_sessions
    sessions = max_sessions
    if connections < max_sessions + 1:
        # every conversation is a connection too: share the room between them
        sessions = max(1, (room - 8) // (FDS_PER_CONVERSATION + 1))
        connections = max(sessions + 1, room - FDS_PER_CONVERSATION * sessions)
    connections = min(connections, max_connections)
    if room < FDS_PER_CONVERSATION + 2:
        raise ValueError(
            f"the open-file limit (ulimit -n) is {hard}: too low to serve; raise it to at least "
            f"{DescriptorPlan.needed(1, 2, burst)}"
        )
    changed = [f"--max-connections {connections}"]
    if sessions != max_sessions:
        changed.insert(0, f"--max-sessions {sessions}")
    warning = (
        f"the open-file limit (ulimit -n, hard limit {hard}) leaves room for {connections} connections and "
        f"{sessions} conversations: serving with {' and '.join(changed)}; raise the limit "
        f"(LimitNOFILE= under systemd, ulimit -Hn) to {needed} for the limits asked for"
    )
    return DescriptorPlan(sessions, connections, burst, hard, warning)
