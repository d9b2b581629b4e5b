"""What a new Live connection must be sent again, so that no user turn is lost.

A resumption handle stands for the live session as it was when the service sent it:
what the client wrote after the newest handle is not in it (the service's documented
advice is to buffer those messages and send them again after reconnecting). Without
that, a turn typed just before a ``goAway`` or a dropped socket is simply never
answered. :class:`ReplayBuffer` keeps that account, free of I/O:

* Audio and activity markers are dropped once a newer handle covers them. A handle
  is taken to cover what was written before the handle *before* it arrived: what was
  written just before a handle arrives may still have been on its way to the service
  when the handle was made (only the Vertex ``transparent`` mode says which message a
  handle ends with, and the Gemini API has none).
* A typed turn (``text``, ``content``) stays until the model starts answering it: a
  handle that came after it may hold the words but not an answer, and sending them
  again costs one repeated line of context while not sending them loses the turn.
* When the model starts a turn, everything written before it (and not behind an
  earlier turn of the model) is answered and dropped: sending it again would make the
  model answer twice, so a reply cut by the connection is reported, never repeated.
* What was written while the model was still answering an earlier turn waits for that
  turn to end (``interrupted`` or ``turnComplete``); the next reply answers it.
* A tool response is part of the model's turn in flight (the model waits for it): like a
  typed turn it stays until the model goes on (more of its reply, or the turn's end), and
  then it is dropped, so a new connection gets it once or, once answered, never.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: message kinds that are a user turn of their own and expect a reply
TYPED_TURNS = frozenset({"text", "content"})
#: message kinds kept until the model answers them, whatever handles come
AWAITING_ANSWER = TYPED_TURNS | {"tool_response"}


@dataclass(slots=True)
class _Written:
    kind: str
    payload: Any
    behind: bool  # written while the model was answering an earlier turn
    handles: int  # handles that had arrived when it was written


class ReplayBuffer:
    """Messages written on the current connection that the next one has to get again."""

    def __init__(self, max_audio_bytes: int) -> None:
        self.max_audio_bytes = max_audio_bytes
        self._items: list[_Written] = []
        self._audio_bytes = 0
        self._handles = 0

    def written(self, kind: str, payload: Any, *, model_speaking: bool) -> None:
        """The SDK wrote this message; ``model_speaking``: a reply to an earlier turn is under way."""
        self._items.append(_Written(kind, payload, model_speaking, self._handles))
        if kind == "audio":
            self._audio_bytes += len(payload)
            while self._audio_bytes > self.max_audio_bytes and self._drop_oldest_audio():
                pass

    def covered(self) -> None:
        """A new resumption handle: audio and markers written before the previous one are in the live session."""
        self._handles += 1
        self._keep(lambda item: item.kind in AWAITING_ANSWER or item.handles >= self._handles - 1)

    def reply_started(self) -> None:
        """The model began a turn: it answers everything written before it but not behind a reply."""
        self._keep(lambda item: item.behind)

    def tool_answered(self) -> None:
        """The model went on after the tool responses written so far: they are in its turn."""
        self._keep(lambda item: item.kind != "tool_response")

    def turn_ended(self) -> None:
        """The model's turn ended: what waited behind it is next in line for an answer."""
        for item in self._items:
            item.behind = False

    @property
    def awaiting_reply(self) -> bool:
        """A typed turn or a tool response was written and the model has not answered it yet."""
        return any(item.kind in AWAITING_ANSWER for item in self._items)

    def take(self) -> list[tuple[str, Any]]:
        """Everything to send again, in the order it was written; the buffer is empty after."""
        items = [(item.kind, item.payload) for item in self._items]
        self._items.clear()
        self._audio_bytes = 0
        return items

    def __len__(self) -> int:
        return len(self._items)

    def _keep(self, wanted: Any) -> None:
        self._items = [item for item in self._items if wanted(item)]
        self._audio_bytes = sum(len(item.payload) for item in self._items if item.kind == "audio")

    def _drop_oldest_audio(self) -> bool:
        for i, item in enumerate(self._items):
            if item.kind == "audio":
                self._audio_bytes -= len(item.payload)
                del self._items[i]
                return True
        return False
