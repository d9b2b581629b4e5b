"""Install plugin packages into a throwaway site directory, as pip would (packages plus a
dist-info with their entry points), so a subprocess with that folder on ``PYTHONPATH``
finds them through the ``voicekit`` entry-point group."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "plugin_fixtures"


def install(project: Path, site: Path) -> None:
    """Install ``project``'s packages and distribution metadata (with its entry points) into ``site``."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    src = project / "src" if (project / "src").is_dir() else project
    site.mkdir(parents=True, exist_ok=True)
    for package in src.iterdir():
        if (package / "__init__.py").is_file():
            shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    dist_info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = []
    for group, entries in meta.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist_info / "INSTALLER").write_text("voicekit-tests\n")
