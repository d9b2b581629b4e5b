"""``voicekit models``: the weights local backends load — what is known, what is cached, getting them.

``list`` shows the models that the installed backends can use (``--all``: every known
model), whether each is in the cache and its size; ``pull`` downloads models into the
cache ahead of time, with a progress bar; ``path`` prints where a cached model is, for a
profile's ``model_path`` or another tool. ``--backend NAME`` narrows ``list`` to one backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from voicekit.models import ModelFamily, ModelSpec

app = typer.Typer(help="Model weights for local backends (whisper, piper): list, pull, path.", no_args_is_help=True)

BackendOpt = Annotated[
    Optional[str],
    typer.Option(
        "--backend", "-b", metavar="NAME",
        help="Only this backend's models: whisper or piper (the cache), or a cloud backend such as deepgram, "
        "gemini or elevenlabs (asks its service, with your key)",
    ),
]  # fmt: skip
ProfileOpt = Annotated[
    Optional[str],
    typer.Option("--profile", "-p", metavar="NAME", help="With a cloud --backend: configure it as this profile does."),
]


def _installed(fam: ModelFamily) -> bool:
    """Whether the backend's engine is installed, without importing it."""
    from importlib.util import find_spec

    return find_spec(fam.module) is not None


def _approx(size_mb: int) -> str:
    return f"~{size_mb / 1000:.1f} GB" if size_mb >= 1000 else f"~{size_mb} MB"


def _size(n_bytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} B"


def _rows(backend: str | None, show_all: bool) -> list[dict[str, Any]]:
    from voicekit import models

    families = [models.family(backend)] if backend else list(models.FAMILIES)
    cached = {entry.spec.name: entry for entry in models.cached_models()}
    specs = [spec for spec in models.KNOWN_MODELS if spec.family in families]
    specs += [e.spec for e in cached.values() if e.spec.family in families and e.spec not in specs]
    rows = []
    for spec in specs:
        installed = _installed(spec.family)
        entry = cached.get(spec.name)
        if not (installed or show_all or entry):
            continue
        rows.append(
            {
                "name": spec.name,
                "backend": spec.family.name,
                "installed": installed,
                "cached": bool(entry and entry.complete),
                "partial": bool(entry and not entry.complete),
                "bytes": entry.size_bytes if entry else 0,
                "size_mb": spec.size_mb,
                "path": str(models.entry_path(spec)) if entry and entry.complete else None,
                "repo": spec.repo,
                "license": spec.license or "per voice (MODEL_CARD)",
            }
        )
    return rows


@app.command("list")
def list_models(
    backend: BackendOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also models of backends that are not installed.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    profile: ProfileOpt = None,
) -> None:
    """Models the installed backends can use, whether each is cached, and sizes; with a cloud
    ``--backend``, the models or voices its service offers to your key."""
    import json

    from voicekit import models

    if backend and backend not in {family.name for family in models.FAMILIES}:
        from voicekit.commands.service_models import list_service_models

        list_service_models(backend=backend, profile=profile, json_out=json_out)
        return

    rows = _rows(backend, show_all)
    if json_out:
        typer.echo(json.dumps({"cache_dir": str(models.models_dir()), "models": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, emoji=False)
    if not rows:
        extras = " or ".join(f"'voicekit[{f.extra}]'" for f in models.FAMILIES)
        console.print(
            f"no installed backend uses downloadable models: pip install {extras} "
            "('voicekit models list --all' shows every known model)",
            soft_wrap=True,
        )
        return
    table = Table("model", "size", "status", "license", box=None)
    for row in rows:
        if row["cached"]:
            status, size = "cached", _size(row["bytes"])
        elif row["partial"]:
            status, size = "partly downloaded", f"{_size(row['bytes'])} of {_approx(row['size_mb'])}"
        else:
            status = "" if row["installed"] else f"needs voicekit[{models.family(row['backend']).extra}]"
            size = _approx(row["size_mb"])
        table.add_row(Text(row["name"]), size, status, Text(row["license"]))
    console.print(table)
    console.print(f"cache: {models.models_dir()}  ·  download with: voicekit models pull NAME", soft_wrap=True)


@app.command("pull")
def pull(names: Annotated[list[str], typer.Argument(help="Models to download (whisper:tiny.en, ...).")]) -> None:
    """Download models into the cache (a dropped connection resumes where it stopped)."""
    from rich.console import Console

    from voicekit import models
    from voicekit.models.hub import download, download_progress

    specs: list[ModelSpec] = [models.resolve(name) for name in names]  # every name is checked before any download
    console = Console(stderr=True, highlight=False, emoji=False)
    for spec in specs:
        if models.is_cached(spec):
            typer.echo(f"{spec.name} is already cached: {models.entry_path(spec)}")
            continue

        def starting(size: int, spec: ModelSpec = spec) -> None:
            console.print(f"{spec.name}: downloading {_size(size)} from {spec.repo}", soft_wrap=True)

        with download_progress(console) as progress:
            path = download(spec, progress=progress, on_start=starting)
        typer.echo(f"{spec.name}: {_size(models.disk_bytes(spec))} in {path}")
        if not _installed(spec.family):
            console.print(
                f"note: the {spec.family.name} backend is not installed: pip install 'voicekit[{spec.family.extra}]'"
            )


@app.command("path")
def path(name: Annotated[str, typer.Argument(help="A model name (whisper:tiny.en, ...).")]) -> None:
    """Print where a cached model is (its folder, or its one main file)."""
    from voicekit import models

    spec = models.resolve(name)
    if not models.is_cached(spec):
        raise models.ModelUnavailableError(
            f"{spec.name} is not in the model cache; run 'voicekit models pull {spec.name}'"
        )
    typer.echo(str(models.entry_path(spec)))
