"""Where profiles live, and how a profile file is read with everything it ``extends``.

Lookup order: ``./profiles``, the user config directory (``$VOICEKIT_CONFIG_DIR/profiles``
when set, else the platform's), then the profiles installed with voicekit. Part of
:mod:`voicekit.profiles`, which re-exports the public names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voicekit.errors import ProfileError, VoicekitError
from voicekit.profiles.document import Doc, merge, normalize, read_doc, shown, suggest

SUFFIXES = (".yaml", ".yml")
CONFIG_DIR_ENV = "VOICEKIT_CONFIG_DIR"


@dataclass(frozen=True)
class ProfileInfo:
    """A profile as listed: where it is, and what it says it is."""

    name: str
    path: Path
    origin: str  # "project" | "user" | "package"
    description: str
    abstract: bool = False  # only meant to be extended
    error: str | None = None  # why it could not be read


# --- finding -------------------------------------------------------------------------


def profile_dirs() -> list[tuple[str, Path]]:
    """Where profiles are looked up, first match wins: project, user, package."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        user = Path(env).expanduser()
    else:
        from platformdirs import user_config_path

        user = user_config_path("voicekit")
    here = Path(__file__).resolve().parent.parent  # the voicekit package
    package = here / "_profiles"  # the wheel's copy of the repository's profiles/
    if not package.is_dir():
        package = here.parent / "profiles"  # a development checkout
    return [("project", Path.cwd() / "profiles"), ("user", user / "profiles"), ("package", package)]


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name or name.endswith(SUFFIXES)


def _candidates(name: str, dirs: Sequence[Path]) -> list[Path]:
    return [d / f"{name}{suffix}" for d in dirs for suffix in SUFFIXES if (d / f"{name}{suffix}").is_file()]


def _known_names(dirs: Sequence[Path]) -> list[str]:
    return sorted({p.stem for d in dirs if d.is_dir() for p in d.iterdir() if p.suffix in SUFFIXES})


def find_profile(name_or_path: str) -> Path:
    """The file of a profile name (looked up in :func:`profile_dirs`) or path."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ProfileError(f"profile file not found: {name_or_path}")
        return path
    dirs = profile_dirs()
    found = _candidates(name_or_path, [d for _, d in dirs])
    if found:
        return found[0]
    known = _known_names([d for _, d in dirs])
    searched = ", ".join(shown(d) for _, d in dirs)
    raise ProfileError(
        f"no profile named '{name_or_path}'{suggest(name_or_path, known)}; looked in {searched}; "
        f"known: {', '.join(known) or 'none'}"
    )


def list_profiles() -> list[ProfileInfo]:
    """Every profile that can be used by name; a name in an earlier directory hides later ones."""
    infos: dict[str, ProfileInfo] = {}
    for origin, directory in profile_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in SUFFIXES or path.stem in infos or not path.is_file():
                continue
            description, abstract, error = "", False, None
            try:
                doc = load_chain(path, [])
                description = str(doc.data.get("description") or "")
                abstract = doc.data.get("abstract") is True
            except VoicekitError as exc:
                error = str(exc)
            infos[path.stem] = ProfileInfo(path.stem, path, origin, description, abstract, error)
    return sorted(infos.values(), key=lambda info: info.name)


# --- loading -------------------------------------------------------------------------


def load_chain(path: Path, chain: list[Path], at: str = "") -> Doc:
    """One file with everything it ``extends`` merged under it (``at``: the extends: naming it)."""
    real = path.resolve()
    if real in chain:
        cycle = " -> ".join(shown(p) for p in [*chain[chain.index(real) :], real])
        raise ProfileError(f"{at}: extends: cycle: {cycle}")
    doc = read_doc(path)
    if not isinstance(doc.data, dict):
        what = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ProfileError(f"{shown(path)}: a profile is a YAML mapping (description:, llm:, ...), this one is {what}")
    normalize(doc)
    parent = doc.data.pop("extends", None)
    if parent is None:
        return doc
    at = doc.where(("extends",))
    if not isinstance(parent, str) or not parent.strip():
        raise ProfileError(f"{at}: extends: expected a profile name or a relative path, got {parent!r}")
    base = load_chain(_resolve_parent(parent, path, at), [*chain, real], at)
    base.data.pop("abstract", None)  # being abstract is not inherited
    return merge(base, doc)


def _resolve_parent(parent: str, child: Path, at: str) -> Path:
    if _looks_like_path(parent):
        path = (child.parent / parent).expanduser()
        if not path.is_file():
            raise ProfileError(f"{at}: extends: no such file: {shown(path)}")
        return path
    # The child's own directory first, so that installed profiles extend each other; a
    # profile that extends its own name gets the one it hides (./profiles/offline.yaml
    # may extend the installed offline).
    dirs = [child.parent] + [d for _, d in profile_dirs()]
    for path in _candidates(parent, dirs):
        if path.resolve() != child.resolve():
            return path
    known = _known_names(dirs)
    raise ProfileError(f"{at}: extends: no profile named '{parent}'{suggest(parent, known)}")
