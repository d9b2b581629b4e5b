"""The ``voicekit`` command: the root Typer app and error handling, nothing else."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

from voicekit.commands import (
    bench,
    chat,
    config,
    devices,
    doctor,
    keys,
    models,
    plugins,
    profiles,
    serve,
    sessions,
    tools,
)


def _readable_argument_help() -> None:
    """Typer writes an argument's Python type after its name (``NAME <str>``, ``REPORT... <list[Path]>``);
    an argument given a metavar is shown by the metavar alone."""
    from typer.core import TyperArgument

    shown = getattr(TyperArgument, "display_type_rich", None)
    if shown is None:
        return

    def display_type_rich(self: TyperArgument, ctx: Any) -> str | None:
        return None if self.metavar else shown(self, ctx)

    setattr(TyperArgument, "display_type_rich", display_type_rich)  # noqa: B010 - patched on purpose


_readable_argument_help()

app = typer.Typer(
    name="voicekit",
    help="Real-time voice conversations with AI: speech in, a language model, speech or an avatar out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("chat")(chat.chat)
app.command("devices")(devices.devices)
app.command("doctor")(doctor.doctor)
app.add_typer(bench.app, name="bench")
app.command("serve")(serve.serve)
app.add_typer(config.app, name="config")
app.add_typer(keys.app, name="keys")
app.add_typer(plugins.app, name="plugins")
app.add_typer(profiles.app, name="profiles")
app.add_typer(sessions.app, name="sessions")
app.add_typer(tools.app, name="tools")
app.add_typer(models.app, name="models")

_state = {"verbose": False}


def _print_version(value: bool) -> None:
    if value:
        from voicekit import __version__

        typer.echo(f"voicekit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs and full tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """voicekit: talk to AI, every stage a swappable backend."""
    _state["verbose"] = verbose
    _setup_logging(verbose)
    if ctx.resilient_parsing:  # shell completion: no side effects
        return
    _load_environment()
    if ctx.invoked_subcommand not in (None, "sessions", "keys", "config"):
        _warn_orphans()


def _load_environment() -> None:
    """A ``.env`` in the working directory, then the key store: neither replaces a variable already set."""
    from voicekit.keys import load_into_environment
    from voicekit.settings import load_dotenv

    load_dotenv()
    load_into_environment()


def _setup_logging(verbose: bool) -> None:
    import logging

    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_time=False, show_path=verbose, console=_stderr())],
    )


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False)


def _warn_orphans() -> None:
    try:
        from voicekit.ledger.ledger import orphan_warning

        message = orphan_warning()
    except Exception:
        import logging

        logging.getLogger(__name__).debug("orphan check failed", exc_info=True)
        return
    if message:
        from rich.markup import escape

        _stderr().print(f"[yellow]warning:[/] {escape(message)}")


def _add_plugin_commands() -> None:
    """Let installed plugins add commands; a broken one is skipped (see 'voicekit plugins list')."""
    from voicekit.plugins import third_party_plugins_installed

    if not third_party_plugins_installed():
        return  # built-in plugins add no commands: spare every start-up the plugin machinery
    from voicekit.registry import get_plugin_manager, plugin_label

    pm = get_plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(app)
        except Exception:  # noqa: BLE001
            import logging

            logging.getLogger(__name__).debug("plugin %s failed to add commands", plugin_label(pm, impl.plugin))


def _usage_error_class() -> Any:
    """The usage-error base of the click Typer runs on (recent Typer carries its own copy)."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        from click import ClickException  # type: ignore[assignment]
    return ClickException


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning errors into one line and an exit code."""
    from voicekit.errors import VoicekitError

    usage_error = _usage_error_class()

    try:
        _add_plugin_commands()
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _stderr().print("[yellow]interrupted[/]")
        sys.exit(130)
    except usage_error as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _stderr().print("[yellow]interrupted[/]")
        sys.exit(130)
    except VoicekitError as exc:
        _print_error(exc, str(exc))
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, -v for details
        _print_error(exc, f"{type(exc).__name__}: {exc} (run with -v for details)")
        sys.exit(1)


def _print_error(exc: BaseException, line: str) -> None:
    """The one error line (after the traceback with -v), credentials in URLs hidden in both."""
    import os
    import traceback

    from rich.markup import escape

    from voicekit.redaction import redact_text, url_secrets

    # a library may quote part of a malformed URL (a password cut at an '@'): hide what the
    # URLs of the environment (VOICEKIT_LEDGER_URL, ...) hold wherever it shows up
    known = [secret for value in os.environ.values() if "://" in value for secret in url_secrets(value)]
    console = _stderr()
    if _state["verbose"]:
        console.print(escape(redact_text("".join(traceback.format_exception(exc)), known)), end="", soft_wrap=True)
    console.print(f"[red]error:[/] {escape(redact_text(line, known))}", soft_wrap=True)
