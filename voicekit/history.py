"""The conversation history: each conversation's transcript and metrics under its ledger id.

``<data dir>/history/<conversation id>/`` holds ``transcript.jsonl`` and ``metrics.json``
exactly as a recording has them (:mod:`voicekit.recording`, without the audio), so
``voicekit sessions show ID`` can print any past conversation. The oldest conversations
are removed when the folder grows beyond ``history_max_mb`` (config.toml); ``history =
false`` or ``voicekit chat --no-history`` keeps nothing.

Who does what: the CLI makes a :class:`HistoryKeeper`, sets :meth:`HistoryKeeper.bind` as
the request's ``on_conversation_id`` (it learns the id once the ledger row is written, or
the ledger is found unavailable: a broken ledger never loses the history) and adds the
keeper as an observer; it calls :meth:`HistoryKeeper.close` with the outcome.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.events import Event

if TYPE_CHECKING:
    from voicekit.recording import ConversationRecorder

log = logging.getLogger(__name__)


def history_dir() -> Path:
    from voicekit.settings import settings

    return settings().history_dir


class HistoryKeeper:
    """Keeps one conversation's transcript and metrics under its ledger id."""

    def __init__(self, profile: str, directory: Path | None = None, max_mb: float | None = None) -> None:
        from voicekit.settings import settings

        self.profile = profile
        self.directory = directory or history_dir()
        self.max_mb = settings().history_max_mb if max_mb is None else max_mb
        self.conversation_id: str | None = None
        self._recorder: ConversationRecorder | None = None

    def bind(self, conversation_id: str) -> None:
        """Start keeping conversation ``conversation_id`` (a failure to write only warns)."""
        from voicekit.recording import ConversationRecorder

        self.conversation_id = conversation_id
        try:
            self._recorder = ConversationRecorder(
                self.directory / conversation_id, profile=self.profile, conversation_id=conversation_id, audio=False
            )
        except Exception as exc:  # noqa: BLE001 - history must never stop a conversation
            log.warning("conversation history not kept: %s", exc)

    def __call__(self, event: Event) -> None:
        if self._recorder is not None:
            self._recorder(event)

    def close(self, status: str, reason: str | None = None) -> None:
        """Write metrics.json with the outcome, then trim the history to its size cap."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        try:
            recorder.close(status=status, reason=reason)
            prune(self.directory, self.max_mb, keep=recorder.directory)
        except Exception as exc:  # noqa: BLE001 - history must never fail the command
            log.warning("conversation history not finished: %s", exc)


def prune(directory: Path, max_mb: float, *, keep: Path | None = None) -> list[Path]:
    """Remove the oldest conversations until the history is at most ``max_mb``; the removed folders."""
    if not directory.is_dir():
        return []
    folders = sorted((p for p in directory.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    sizes = {p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in folders}
    total, limit = sum(sizes.values()), max_mb * 1024 * 1024
    removed = []
    for folder in folders:
        if total <= limit:
            break
        if keep is not None and folder == keep:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= sizes[folder]
        removed.append(folder)
    return removed


def find(conversation_id: str, directory: Path | None = None) -> Path | None:
    """The history folder of a conversation: its whole id, or a prefix only one id starts with."""
    from voicekit.errors import VoicekitError

    base = directory or history_dir()
    exact = base / conversation_id
    if exact.is_dir():
        return exact
    if not base.is_dir() or not conversation_id:
        return None
    matches = [p for p in base.iterdir() if p.is_dir() and p.name.startswith(conversation_id)]
    if len(matches) > 1:
        names = ", ".join(sorted(p.name for p in matches)[:5])
        raise VoicekitError(f"'{conversation_id}' starts several conversation ids ({names}); give more of it")
    return matches[0] if matches else None


def read(folder: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A kept conversation's metrics.json (``None`` while it runs or if it died) and transcript lines."""
    metrics = None
    path = folder / "metrics.json"
    if path.is_file():
        metrics = json.loads(path.read_text(encoding="utf-8"))
    lines = []
    transcript = folder / "transcript.jsonl"
    if transcript.is_file():
        for line in transcript.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a crash: what came before is what was said
    return metrics, lines
