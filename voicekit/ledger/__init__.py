"""The ledger: conversations and billable remote sessions, in SQLite or PostgreSQL.

- :mod:`voicekit.ledger.store`: the database (one SQL dialect over SQLite and PostgreSQL).
- :mod:`voicekit.ledger.ledger`: :class:`SessionLedger`, its rows, and the orphan check.
- :mod:`voicekit.ledger.remote`: :class:`RemoteSessions`, what a conversation uses to open,
  keep alive and always close billable remote sessions; :class:`RemoteSessionManager`,
  what a backend registers so ``voicekit sessions`` can list and close its sessions.
- :mod:`voicekit.ledger.admin`: what ``voicekit sessions`` does.

Names are imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "SessionLedger": "voicekit.ledger.ledger",
    "ConversationRow": "voicekit.ledger.ledger",
    "RemoteSessionRow": "voicekit.ledger.ledger",
    "orphan_warning": "voicekit.ledger.ledger",
    "default_ledger_path": "voicekit.ledger.ledger",
    "default_ledger_target": "voicekit.ledger.ledger",
    "RemoteSession": "voicekit.ledger.remote",
    "RemoteSessions": "voicekit.ledger.remote",
    "RemoteSessionInfo": "voicekit.ledger.remote",
    "RemoteSessionManager": "voicekit.ledger.remote",
}

if TYPE_CHECKING:
    from voicekit.ledger.ledger import (
        ConversationRow,
        RemoteSessionRow,
        SessionLedger,
        default_ledger_path,
        default_ledger_target,
        orphan_warning,
    )
    from voicekit.ledger.remote import RemoteSession, RemoteSessionInfo, RemoteSessionManager, RemoteSessions

__all__ = [
    "ConversationRow",
    "RemoteSession",
    "RemoteSessionInfo",
    "RemoteSessionManager",
    "RemoteSessionRow",
    "RemoteSessions",
    "SessionLedger",
    "default_ledger_path",
    "default_ledger_target",
    "orphan_warning",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'voicekit.ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
