"""Where profiles live, and which file a profile name means.

Lookup order: ``./profiles``, the user config directory (``$VOICEKIT_CONFIG_DIR/profiles``
when set, else the platform's), then the profiles installed with voicekit. The first
step of find → read → validate → build.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from voicekit.errors import ProfileError
from voicekit.profiles.document import shown, suggest

SUFFIXES = (".yaml", ".yml")
CONFIG_DIR_ENV = "VOICEKIT_CONFIG_DIR"


def profile_dirs() -> list[tuple[str, Path]]:
    """Where profiles are looked up, first match wins: project, user, package."""
    from voicekit.settings import config_dir

    user = config_dir()
    here = Path(__file__).resolve().parent.parent  # the voicekit package
    package = here / "_profiles"  # the wheel's copy of the repository's profiles/
    if not package.is_dir():
        package = here.parent / "profiles"  # a development checkout
    return [("project", Path.cwd() / "profiles"), ("user", user / "profiles"), ("package", package)]


def looks_like_path(name: str) -> bool:
    """Whether a profile is named by its file (``./my.yaml``, ``team/p.yml``) rather than by name."""
    return "/" in name or os.sep in name or name.endswith(SUFFIXES)


def candidates(name: str, dirs: Sequence[Path]) -> list[Path]:
    """Every file in ``dirs`` that the profile name ``name`` could mean, in lookup order."""
    return [d / f"{name}{suffix}" for d in dirs for suffix in SUFFIXES if (d / f"{name}{suffix}").is_file()]


def known_names(dirs: Sequence[Path]) -> list[str]:
    """The profile names found in ``dirs``, for "did you mean" and "known:" in messages."""
    return sorted({p.stem for d in dirs if d.is_dir() for p in d.iterdir() if p.suffix in SUFFIXES})


def find_profile(name_or_path: str | Path) -> Path:
    """The file of a profile name (looked up in :func:`profile_dirs`) or path."""
    if isinstance(name_or_path, Path) or looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            what = "not a regular file" if path.exists() else "not found"
            raise ProfileError(f"profile file {what}: {name_or_path}")
        return path
    dirs = profile_dirs()
    found = candidates(name_or_path, [d for _, d in dirs])
    if found:
        return found[0]
    known = known_names([d for _, d in dirs])
    searched = ", ".join(shown(d) for _, d in dirs)
    raise ProfileError(
        f"no profile named '{name_or_path}'{suggest(name_or_path, known)}; looked in {searched}; "
        f"known: {', '.join(known) or 'none'}"
    )
