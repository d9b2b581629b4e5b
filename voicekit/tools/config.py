"""The ``tools:`` part of a profile: which tools the model gets, and how they are run.

```yaml
tools:
  - use: clock                                   # a tool registered through register_tools
  - mcp: {command: [uvx, mcp-server-fetch]}      # every tool of a stdio MCP server
  - mcp: {url: "http://localhost:8000/mcp", headers: {Authorization: "Bearer ${MCP_TOKEN}"}, only: [search]}
tools_timeout_s: 10      # one call's longest run; then the model is told it timed out
max_tool_rounds: 3       # model → tools → model rounds in one reply, at most
tools_filler: "One moment."   # said when tools run longer than a second (or {text: ..., after_ms: 1500})
```

:class:`ToolsConfig` validates these top-level keys (:data:`PROFILE_KEYS`) of a profile;
its errors carry the YAML path of the bad value (``tools.1.mcp.comand``), so the profile
loader can name the file and line.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from voicekit.errors import MissingSecretError

#: the top-level profile keys this module reads
PROFILE_KEYS = ("tools", "tools_timeout_s", "max_tool_rounds", "tools_filler")

DEFAULT_MAX_RESULT_CHARS = 8000
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginToolEntry(_Strict):
    """``- use: NAME``: one tool a plugin registered through ``register_tools``."""

    use: str = Field(min_length=1, description="The tool's registered name (voicekit tools list shows them)")
    max_result_chars: int = Field(
        DEFAULT_MAX_RESULT_CHARS, ge=100, le=1_000_000, description="Longer results are cut before the model sees them"
    )


class MCPServerConfig(_Strict):
    """``- mcp: {...}``: an MCP server, over stdio (``command``) or streamable HTTP (``url``)."""

    command: list[str] | None = Field(
        None, description="The server's command line: a list, or one string split like a shell would"
    )
    args: list[str] = Field(default_factory=list, description="More arguments after the command")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables for the server process")
    cwd: str | None = Field(None, description="Working directory of the server process")
    url: str | None = Field(None, description="Streamable HTTP endpoint, e.g. http://localhost:8000/mcp")
    headers: dict[str, str] = Field(
        default_factory=dict, description='HTTP headers, secrets as ${VAR}: {Authorization: "Bearer ${MCP_TOKEN}"}'
    )
    only: list[str] | None = Field(None, description="Offer only these of the server's tools (default: all)")
    allow_destructive: bool = Field(
        False, description="Run tools the server marks destructive; otherwise the model gets a refusal"
    )
    name: str | None = Field(None, description="A short name for messages (default: the command or the URL's host)")
    start_timeout_s: float = Field(30.0, gt=0, le=600, description="Longest wait for the server to start and list")
    max_result_chars: int = Field(
        DEFAULT_MAX_RESULT_CHARS, ge=100, le=1_000_000, description="Longer results are cut before the model sees them"
    )

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            return shlex.split(value)
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (a streamable HTTP server)")
        if self.command is not None and not self.command:
            raise ValueError("command is empty")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("args, env and cwd are for a stdio server (command), not for url")
        if self.command is not None and self.headers:
            raise ValueError("headers are for an HTTP server (url), not for command")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        return self

    @property
    def label(self) -> str:
        """How messages name the server."""
        if self.name:
            return self.name
        if self.command is not None:
            return " ".join(self.command)
        return str(self.url)


class MCPToolEntry(_Strict):
    """``- mcp: {...}``."""

    mcp: MCPServerConfig


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        if "use" in value:
            return "use"
        if "mcp" in value:
            return "mcp"
        return None
    return "use" if isinstance(value, str) else None


def _shorthand(value: Any) -> Any:
    return {"use": value} if isinstance(value, str) else value


ToolEntry = Annotated[
    Annotated[PluginToolEntry, Tag("use")] | Annotated[MCPToolEntry, Tag("mcp")],
    Discriminator(
        _entry_kind, custom_error_type="tool_entry", custom_error_message="expected {use: NAME} or {mcp: {...}}"
    ),
]


class FillerConfig(_Strict):
    """What to say while tools run, and after how long."""

    text: str = Field(min_length=1, description="A short sentence, e.g. 'One moment.'")
    after_ms: int = Field(1000, ge=0, le=60_000, description="Said once tools have run this long")


class ToolsConfig(_Strict):
    """The tools of a profile and how they run (the top-level keys in :data:`PROFILE_KEYS`)."""

    tools: list[ToolEntry] = Field(default_factory=list, description="The tools the model gets")
    tools_timeout_s: float = Field(10.0, gt=0, le=600, description="Longest run of one tool call")
    max_tool_rounds: int = Field(3, ge=1, le=20, description="Model → tools → model rounds in one reply, at most")
    tools_filler: FillerConfig | None = Field(
        None, description="Said while tools run longer than after_ms (a string, or {text, after_ms}); off by default"
    )

    @field_validator("tools", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [_shorthand(item) for item in value]
        return value

    @field_validator("tools_filler", mode="before")
    @classmethod
    def _filler(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @classmethod
    def from_profile(cls, data: Mapping[str, Any]) -> ToolsConfig:
        """The tool settings of a profile document (its other keys are ignored)."""
        return cls.model_validate({key: data[key] for key in PROFILE_KEYS if key in data})

    @property
    def enabled(self) -> bool:
        return bool(self.tools)


#: a YAML path (``("tools", 1, "mcp", "url")``) and what is wrong there
Problem = tuple[tuple[str | int, ...], str]


def tool_problems(data: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with the tool settings of a profile document, one problem per bad
    value, each with its YAML path (for the loader to turn into ``file:line``)."""
    try:
        ToolsConfig.from_profile(data)
    except ValidationError as exc:
        return [_problem(error) for error in exc.errors()]
    return []


def _problem(error: Any) -> Problem:
    loc = list(error["loc"])
    # a tagged union puts its tag into the location: tools.0.mcp.mcp.url is tools.0.mcp.url
    if len(loc) >= 3 and loc[0] == "tools" and isinstance(loc[1], int) and loc[2] in ("use", "mcp"):
        del loc[2]
    path = tuple(loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and path:
        key = str(path[-1])
        known = _known_keys(path)
        close = difflib.get_close_matches(key, known, n=1)
        message = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
    return path, message


def _known_keys(path: tuple[str | int, ...]) -> list[str]:
    if len(path) == 1:
        return list(PROFILE_KEYS)
    if len(path) == 3 and path[0] == "tools":
        return ["use", "max_result_chars", "mcp"]
    if len(path) == 4 and path[2] == "mcp":
        return list(MCPServerConfig.model_fields)
    if len(path) == 2 and path[0] == "tools_filler":
        return list(FillerConfig.model_fields)
    return []


def expand_variables(value: str, where: str) -> str:
    """``value`` with every ``${NAME}`` replaced from the environment; a missing one is an
    error naming it (profiles resolve these already; a config built in Python may not)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise MissingSecretError(f"{where}: the environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(replace, value)


__all__ = [
    "DEFAULT_MAX_RESULT_CHARS",
    "PROFILE_KEYS",
    "FillerConfig",
    "MCPServerConfig",
    "MCPToolEntry",
    "PluginToolEntry",
    "ToolEntry",
    "ToolsConfig",
    "expand_variables",
    "tool_problems",
]
