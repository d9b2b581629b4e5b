"""What every tool is, wherever it comes from (a plugin's function, an MCP server)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from voicekit.errors import VoicekitError
from voicekit.roles import ToolSpec


class ToolError(VoicekitError):
    """A tool failed in a way the model should hear about: raise it from a tool with a
    message for the model ("no city called 'Pariss'"); voicekit hands the message back as
    the call's error result and the conversation goes on."""


class ToolsError(VoicekitError):
    """The tools of a profile cannot be set up (an unknown tool, an MCP server that does not
    start): the conversation does not start."""

    exit_code = 2


class Tool(ABC):
    """One tool the model may call.

    ``spec`` is what the model is told; ``source`` says where the tool comes from, for
    people (``plugin voicekit``, ``mcp uvx mcp-server-fetch``); ``destructive`` marks a tool
    that changes or deletes things, which runs only when ``allowed``.
    ``max_result_chars`` caps what the model gets back.
    """

    spec: ToolSpec
    source: str = ""
    destructive: bool = False
    allowed: bool = True
    max_result_chars: int = 8000

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the tool; return its result as text, or raise (:class:`ToolError` for a
        message meant for the model). Cancellation (the user interrupted) must stop it."""
