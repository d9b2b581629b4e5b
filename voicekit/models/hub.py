"""Downloading a model from the Hugging Face Hub into the cache, with ``huggingface_hub``.

The hub client does the HTTP: it follows the hub's redirects to its file storage, sends
``HF_TOKEN`` when one is set, honours ``HF_ENDPOINT`` (a mirror, or a local stand-in in
tests), and resumes a file where a dropped connection cut it (an HTTP Range request).
Here: every file's metadata is asked for first, so that an unreachable hub, an unknown
repository or a missing file fails before anything is written; each file large enough to
be stored by content hash is checked against that hash once downloaded; and every error of
the hub client becomes one :class:`ModelDownloadError` line.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import VoicekitError
from voicekit.models.cache import entry_path, model_dir, models_dir
from voicekit.models.registry import ModelSpec
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "on", "yes", "true"}


class ModelDownloadError(VoicekitError):
    """A model could not be downloaded; ``reason`` says why in a few words."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot download {name}: {reason}")
        self.reason = reason


def hub_endpoint() -> str:
    """The hub to download from: ``HF_ENDPOINT``, else huggingface.co (read at each download)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def download(
    spec: ModelSpec, *, progress: Progress | None = None, on_start: Callable[[int], None] | None = None
) -> Path:
    """Fetch every missing file of ``spec`` into the cache; its entry path.

    ``progress`` (a rich :class:`~rich.progress.Progress`) gets one task per file;
    ``on_start`` is told the bytes to come once the hub has answered for every file, just
    before the first byte is fetched. Blocking: call it off the event loop.
    """
    hub = import_sdk("huggingface_hub", package="huggingface-hub", extra=spec.family.extra, backend=spec.family.name)
    endpoint = hub_endpoint()
    if (os.environ.get("HF_HUB_OFFLINE") or "").strip().lower() in _TRUE:
        raise ModelDownloadError(spec.name, "HF_HUB_OFFLINE is set")
    target = model_dir(spec)
    missing = [name for name in spec.files if not (target / name).is_file()]
    expected: dict[str, str | None] = {}
    total = 0
    for name in missing:
        url = hub.hf_hub_url(spec.repo, name, revision=spec.revision, endpoint=endpoint)
        try:
            metadata = hub.get_hf_file_metadata(url=url, timeout=10)
        except Exception as exc:
            raise ModelDownloadError(spec.name, _reason(exc, spec, name, endpoint)) from exc
        expected[name] = metadata.etag if metadata.etag and _SHA256.match(metadata.etag) else None
        total += metadata.size or 0
    if on_start is not None and missing:
        on_start(total)
    bars = progress if "tqdm_class" in inspect.signature(hub.hf_hub_download).parameters else None
    for name in missing:
        extra: dict[str, Any] = {"tqdm_class": _bars_for(bars, Path(name).name)} if bars is not None else {}
        try:
            path = hub.hf_hub_download(
                spec.repo,
                name,
                revision=spec.revision,
                local_dir=target,
                cache_dir=models_dir() / ".hub",  # never copies from elsewhere: what is cached came from here
                endpoint=endpoint,
                **extra,
            )
        except Exception as exc:
            raise ModelDownloadError(spec.name, _reason(exc, spec, name, endpoint)) from exc
        digest = expected[name]
        if digest is not None and _sha256(Path(path)) != digest:
            Path(path).unlink(missing_ok=True)
            raise ModelDownloadError(spec.name, f"{name} arrived corrupted (its sha256 is not the hub's); pull again")
    return entry_path(spec)


@contextmanager
def download_progress(console: Console, *, transient: bool = False) -> Iterator[Progress]:
    """A rich progress display for :func:`download`: file, bar, bytes, speed, time left."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=transient) as progress:
        yield progress


def _bars_for(progress: Progress, label: str) -> type:
    """A tqdm-shaped class whose bars are tasks of ``progress`` (the hub client's ``tqdm_class``)."""

    class RichBar:
        def __init__(self, *args: Any, total: int | None = None, initial: int = 0, **kwargs: Any):
            self.task = progress.add_task(label, total=total, completed=initial)

        def update(self, n: int | float = 1) -> None:
            progress.advance(self.task, n)

        def close(self) -> None:
            progress.refresh()

        def __enter__(self) -> RichBar:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    return RichBar


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(exc: BaseException, spec: ModelSpec, name: str, endpoint: str) -> str:
    """What went wrong, in a few words, from any error of the hub client."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if "OfflineModeIsEnabled" in kinds:
        return "HF_HUB_OFFLINE is set"
    if "GatedRepoError" in kinds:
        return f"{spec.repo} is gated: accept its terms on the hub and set HF_TOKEN"
    if "RepositoryNotFoundError" in kinds:
        return f"{endpoint} has no repository {spec.repo}"
    if "RevisionNotFoundError" in kinds:
        return f"{spec.repo} has no revision {spec.revision}"
    if "EntryNotFoundError" in kinds and status == 404:
        return f"{spec.repo} has no file {name}"
    if status in (401, 403):
        return f"{endpoint} refused access to {spec.repo} (HTTP {status}); set HF_TOKEN if it is private"
    if isinstance(status, int) and status >= 400:
        return f"{endpoint} answered HTTP {status} for {name}"
    cause = _root_cause(exc)
    network = ("ConnectError", "ConnectionError", "TimeoutException", "Timeout", "NetworkError", "RemoteProtocolError")
    cause_kinds = {c.__name__ for c in type(cause).__mro__}
    if cause_kinds & set(network) or isinstance(cause, (ConnectionError, TimeoutError)):
        return f"cannot reach {endpoint} ({_first_line(cause)})"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:157] + "..."
