"""The kit for plugin authors: scripted backends, contract tests, test audio.

Everything is imported on first use, so ``import voicekit.testing`` is cheap and needs
neither pytest nor any vendor SDK. Only the contract classes
(:class:`STTContract`, :class:`LLMContract`, :class:`OutputContract`, and
:class:`RemoteSessionContract` for a backend with a billable remote session) need
pytest and pytest-asyncio::

    from voicekit.testing import ScriptedLLM, ScriptedOutput
    from voicekit.testing.contracts import OutputContract
    from voicekit.testing.remote_session import ChatProfile, RemoteSessionContract
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

_LAZY = {
    "ScriptedSTT": "voicekit.testing.scripted",
    "ScriptedLLM": "voicekit.testing.scripted",
    "ScriptedOutput": "voicekit.testing.scripted",
    "NullOutput": "voicekit.testing.scripted",
    "LLMCall": "voicekit.testing.scripted",
    "EchoLLM": "voicekit.plugins.llm.echo",
    "STTContract": "voicekit.testing.contracts",
    "LLMContract": "voicekit.testing.contracts",
    "OutputContract": "voicekit.testing.contracts",
    "RemoteSessionContract": "voicekit.testing.remote_session",
    "ChatProfile": "voicekit.testing.remote_session",
    "WavSource": "voicekit.audio.wav",
    "synthesize": "voicekit.testing.speech",
}

if TYPE_CHECKING:
    from voicekit.audio.wav import WavSource
    from voicekit.plugins.llm.echo import EchoLLM
    from voicekit.testing.contracts import LLMContract, OutputContract, STTContract
    from voicekit.testing.remote_session import ChatProfile, RemoteSessionContract
    from voicekit.testing.scripted import LLMCall, NullOutput, ScriptedLLM, ScriptedOutput, ScriptedSTT
    from voicekit.testing.speech import synthesize

__all__ = [
    "ChatProfile",
    "EchoLLM",
    "LLMCall",
    "LLMContract",
    "NullOutput",
    "OutputContract",
    "RemoteSessionContract",
    "STTContract",
    "ScriptedLLM",
    "ScriptedOutput",
    "ScriptedSTT",
    "WavSource",
    "synthesize",
]

# Under pytest, let it rewrite the contracts' asserts so that failures show the values.
_rewrite = getattr(sys.modules.get("pytest"), "register_assert_rewrite", None)
for _contracts in ("voicekit.testing.contracts", "voicekit.testing.remote_session"):
    if _rewrite is not None and _contracts not in sys.modules:
        _rewrite(_contracts)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'voicekit.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
