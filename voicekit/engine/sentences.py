"""Split streaming LLM text into sentences, so each can be spoken as soon as it is complete."""

from __future__ import annotations

import re
from collections.abc import Iterator

# End of a sentence: terminal punctuation (with closing quotes/brackets) followed by whitespace.
_END = re.compile(r"""[.!?…。！？]+["'»”’)\]]*\s+|\n+""")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m no fig approx т.е т.д т.п др см г гг им".split()
)


class SentenceSplitter:
    """Feed text pieces with :meth:`push`; complete sentences come out in order.

    A sentence ends at ``.``, ``!``, ``?``, ``…`` or a newline followed by whitespace,
    except after common abbreviations and inside numbers (``3.5``). A run longer than
    ``max_chars`` is cut at the last comma or space so a long clause never holds the voice back.
    """

    def __init__(self, min_chars: int = 2, max_chars: int = 250) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buffer = ""

    def push(self, text: str) -> Iterator[str]:
        self._buffer += text
        start = 0
        for match in _END.finditer(self._buffer):
            candidate = self._buffer[start : match.end()].strip()
            if len(candidate) < self.min_chars or self._is_abbreviation(self._buffer[start : match.start() + 1]):
                continue
            yield candidate
            start = match.end()
        self._buffer = self._buffer[start:]
        while len(self._buffer) > self.max_chars:
            cut = max(self._buffer.rfind(", ", 0, self.max_chars), self._buffer.rfind(" ", 0, self.max_chars))
            if cut <= 0:
                cut = self.max_chars
            head, self._buffer = self._buffer[: cut + 1].strip(), self._buffer[cut + 1 :]
            if head:
                yield head

    def flush(self) -> Iterator[str]:
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            yield rest

    @staticmethod
    def _is_abbreviation(text: str) -> bool:
        words = text.rstrip().split()
        if not words:
            return False
        last = words[-1].lower().rstrip(".")
        return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha() and text.rstrip().endswith("."))
