"""A plugin that calls ``sys.exit()`` (at import, or in a hook, or in a backend module loaded
later) is listed as broken; it never ends voicekit or sets its exit code."""

from __future__ import annotations

from pathlib import Path

from tests.cli_helpers import voicekit


def plugin_site(tmp_path: Path, name: str, module: str, entry: str | None = None) -> dict[str, str]:
    site = tmp_path / "site"
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{name}.py").write_text(module)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[voicekit]\n{entry or name} = {name}\n")
    return {"PYTHONPATH": str(site)}


def test_a_plugin_that_exits_at_import_is_listed_as_broken(tmp_path: Path) -> None:
    env = plugin_site(tmp_path, "vk_quitter", "import sys\nsys.exit(3)\n")
    listed = voicekit("plugins", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "vk_quitter" in listed.stdout and "sys.exit(3)" in listed.stdout
    helped = voicekit("--help", env=env)
    assert helped.returncode == 0 and "chat" in helped.stdout
    shown = voicekit("profiles", "show", "offline", env=env)
    assert shown.returncode == 0 and "pocketsphinx" in shown.stdout


def test_a_hook_or_a_backend_module_that_exits_is_reported(tmp_path: Path) -> None:
    module = """\
import sys
import voicekit


@voicekit.hookimpl
def register_llm(register):
    register("quits", "vk_lazy_quitter_backend:Quits")


@voicekit.hookimpl
def register_stt(register):
    sys.exit("no speech today")
"""
    env = plugin_site(tmp_path, "vk_lazy_quitter", module)
    (tmp_path / "site" / "vk_lazy_quitter_backend.py").write_text("raise SystemExit(4)\n")
    listed = voicekit("plugins", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "register_stt" in listed.stdout and "sys.exit('no speech today')" in listed.stdout
    profile = tmp_path / "quits.yaml"
    profile.write_text("llm: {use: quits}\noutput: {use: silent}\n")
    result = voicekit("chat", "--profile", str(profile), "--text", env=env)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode not in (0, 4) and len(lines) == 1, result.stderr
    assert "llm backend 'quits'" in lines[0] and "sys.exit(4)" in lines[0]
