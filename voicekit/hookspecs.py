"""The hooks a voicekit plugin can implement.

A plugin is a module (or object) with functions marked ``@voicekit.hookimpl``. It is
found through the ``voicekit`` entry-point group::

    [project.entry-points.voicekit]
    myplugin = "voicekit_myplugin"

An implementation may take fewer arguments than its spec, so hooks can grow
arguments without breaking plugins. Every hook here returns nothing: plugins hand
what they add to the ``register`` callback they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

hookspec = pluggy.HookspecMarker("voicekit")
hookimpl = pluggy.HookimplMarker("voicekit")

#: ``register(name, backend)``: ``backend`` is a class or a lazy ``"module:Class"`` path.
Register = Callable[[str, Any], None]

#: ``register(function, name=None)``: ``function`` is a typed function (sync or async) or a
#: lazy ``"module:function"`` path; ``name`` defaults to the function's own name.
RegisterTool = Callable[..., None]


@hookspec
def register_stt(register: Register) -> None:
    """Register speech-to-text backends.

    :param register: call ``register(name, cls)`` once per backend; ``cls`` subclasses
        :class:`voicekit.roles.STT`, or is a ``"package.module:ClassName"`` string
        imported only when a profile uses the backend. ``name`` is what profiles put
        in ``stt: {use: name}``; two plugins registering one name is an error.
    """


@hookspec
def register_llm(register: Register) -> None:
    """Register language-model backends (:class:`voicekit.roles.LLM` subclasses).

    :param register: ``register(name, cls_or_path)``, as for :func:`register_stt`.
    """


@hookspec
def register_output(register: Register) -> None:
    """Register output backends: TTS voices and avatars (:class:`voicekit.roles.Output`).

    :param register: ``register(name, cls_or_path)``, as for :func:`register_stt`.
    """


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands or command groups to the ``voicekit`` CLI.

    :param app: the root Typer app; use ``app.command()`` or ``app.add_typer(...)``.
        Keep the module cheap to import: ``voicekit --help`` loads every plugin.
    """


@hookspec
def register_session_managers(register: Register) -> None:
    """Register managers for a backend's billable remote sessions.

    :param register: ``register(backend_name, factory)`` where ``factory()`` returns
        a :class:`voicekit.ledger.RemoteSessionManager` (or a ``"module:Class"``
        path to one). ``voicekit sessions list/close`` then list and close that
        backend's remote sessions, orphans included.
    """


@hookspec
def register_tools(register: RegisterTool) -> None:
    """Register tools a language model may call (function calling).

    :param register: call ``register(function)`` (or ``register(function, name="...")``)
        once per tool. ``function`` is a plain or async Python function with type hints, or a
        ``"package.module:function"`` string imported only when a profile uses the tool. Its
        signature and docstring become the tool's JSON schema: the docstring's first part
        describes the tool to the model, its ``Args:`` lines describe the arguments.
        Profiles offer it with ``tools: [{use: name}]``. The function raises
        :class:`voicekit.tools.ToolError` with a message for the model when it cannot do
        what was asked; voicekit runs it with a timeout and cancels it when the user
        interrupts. Two plugins registering one name is an error.
    """


@hookspec
def register_turn_detectors(register: Register) -> None:
    """Register end-of-turn detectors (:class:`voicekit.engine.end_of_turn.TurnDetector` subclasses).

    :param register: ``register(name, cls)``, ``cls`` a detector class or a lazy
        ``"module:Class"`` path; profiles pick it with ``turns: {detector: name}`` (options:
        ``turns: {detector: {use: name, ...}}``, validated by the class's ``Options``). The
        detector only judges pauses; turn-taking decides when the turn ends.
    """
