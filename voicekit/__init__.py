"""voicekit: real-time voice conversations with AI, every stage a swappable backend.

The public API is imported lazily so that ``voicekit --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voicekit import _moved

__version__ = "0.1.0"

_moved.install()  # old module paths (voicekit.pipeline, voicekit.sessions, ...) keep working

_LAZY = {
    "hookimpl": "voicekit.hookspecs",
    "Profile": "voicekit.profiles",
    "load_profile": "voicekit.profiles",
    "run_conversation": "voicekit.engine.runner",
    "Conversation": "voicekit.engine.conversation",
    "STT": "voicekit.roles",
    "LLM": "voicekit.roles",
    "Output": "voicekit.roles",
    "STTStream": "voicekit.roles",
    "RealtimeStream": "voicekit.roles",
    "RealtimeSession": "voicekit.roles",
    "Capabilities": "voicekit.roles",
    "Message": "voicekit.roles",
    "VoicekitError": "voicekit.errors",
    "events": "voicekit.events",
}

if TYPE_CHECKING:
    from voicekit import events
    from voicekit.engine.conversation import Conversation
    from voicekit.engine.runner import run_conversation
    from voicekit.errors import VoicekitError
    from voicekit.hookspecs import hookimpl
    from voicekit.profiles import Profile, load_profile
    from voicekit.roles import LLM, STT, Capabilities, Message, Output, RealtimeStream, STTStream

__all__ = [
    "LLM",
    "STT",
    "Capabilities",
    "Conversation",
    "Message",
    "Output",
    "Profile",
    "RealtimeStream",
    "STTStream",
    "VoicekitError",
    "events",
    "hookimpl",
    "load_profile",
    "run_conversation",
]


def __getattr__(name: str) -> Any:
    import importlib

    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'voicekit' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    return module if name == "events" else getattr(module, name)
