"""The models or voices a service offers, asked online with a backend's key.

:func:`list_service_models` is a Typer command (mount it as ``voicekit models list``);
:func:`fetch_models` and :func:`check_chosen` are what ``voicekit doctor --online`` uses.
Each asks :meth:`voicekit.roles.Backend.list_models`: one authenticated call per service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from voicekit.registry import Registry
    from voicekit.roles import Backend, ModelInfo


@dataclass
class OnlineCheck:
    """What one backend's service said: its models, and whether the configured one is among them."""

    path: str  # where the backend sits in the profile (llm, output.tts); its role outside one
    backend: str
    models: list[ModelInfo] | None  # None: the backend cannot list, or the call failed
    chosen: str | None = None
    error: str | None = None

    @property
    def chosen_missing(self) -> bool:
        return (
            self.models is not None
            and self.chosen is not None
            and not any(m.answers_to(self.chosen) for m in self.models)
        )

    def problem(self) -> str | None:
        """One line when the service refused, failed, or does not offer the configured model."""
        if self.error is not None:
            return f"{self.path}: {self.error}"
        if self.chosen_missing:
            kind = "voice" if self.models and self.models[0].kind == "voice" else "model"
            return (
                f"{self.path}: the service does not offer the {kind} '{self.chosen}' to this key; "
                f"see 'voicekit models list --backend {self.backend}'"
            )
        return None


def backend_for_listing(
    registry: Registry, name: str, profile: str | None = None, overrides: Sequence[str] = ()
) -> Backend:
    """Backend ``name`` configured as ``profile`` configures it (its key, base_url, model), else with defaults."""
    from voicekit.errors import UnknownBackendError
    from voicekit.roles import ROLES, BackendContext

    if profile is not None:
        from voicekit.profiles import load_profile

        loaded = load_profile(profile, overrides)
        for role in ROLES:
            spec = loaded.spec(role)
            for item in spec.chain() if spec is not None else ():
                if item.use == name:
                    return registry.create(role, name, dict(item.options), BackendContext(language=loaded.language))
        raise UnknownBackendError(f"profile '{loaded.name}' does not use a backend named '{name}'")
    roles = [role for role in ROLES if name in registry.backends[role]]
    if not roles:
        registry.entry("llm" if name.startswith("gemini") else "stt", name)  # raises with "did you mean"
    return registry.create(roles[0], name, {}, BackendContext())


async def fetch_models(backend: Backend, *, path: str = "") -> OnlineCheck:
    """Ask the backend's service for its models; a failure becomes the check's ``error``."""
    from voicekit.errors import VoicekitError

    where = path or backend.role
    check = OnlineCheck(where, backend.name or type(backend).__name__, None, backend.chosen_model())
    try:
        check.models = await backend.list_models()
    except NotImplementedError:
        check.chosen = None
    except VoicekitError as exc:
        check.error = str(exc)
    return check


def check_chosen(checks: Sequence[OnlineCheck]) -> list[str]:
    """Every problem of ``checks``, one line each."""
    return [line for check in checks if (line := check.problem()) is not None]


def list_service_models(
    backend: Annotated[str, typer.Option("--backend", "-b", metavar="NAME", help="Backend whose service to ask.")],
    profile: Annotated[
        Optional[str],
        typer.Option(
            "--profile", "-p", metavar="NAME", help="Configure the backend as this profile does (key, base_url)."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the models or voices a service offers to your key (online: one call to the service)."""
    import asyncio
    import json
    from dataclasses import asdict

    from voicekit.registry import load_registry

    registry = load_registry()
    built = backend_for_listing(registry, backend, profile)
    check = asyncio.run(fetch_models(built))
    if check.error is not None:
        from voicekit.errors import BackendError

        raise BackendError(check.error)
    if check.models is None:
        raise typer.BadParameter(f"backend '{backend}' cannot list the models of its service", param_hint="--backend")
    if json_out:
        typer.echo(json.dumps([asdict(m) for m in check.models], indent=2, ensure_ascii=False))
        return
    _print_models(check.models, check.chosen)


def _print_models(models: Sequence[ModelInfo], chosen: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "languages", "about", box=None, pad_edge=False)
    for model in models:
        mark = " (configured)" if chosen is not None and model.answers_to(chosen) else ""
        languages = ", ".join(model.languages[:6]) + (" …" if len(model.languages) > 6 else "")
        table.add_row(model.id + mark, model.name, languages, model.description)
    Console(highlight=False, emoji=False).print(table)
    kind = "voices" if models and models[0].kind == "voice" else "models"
    typer.echo(f"{len(models)} {kind}")
