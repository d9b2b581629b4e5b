"""``voicekit models list | pull | path`` in subprocesses, against a local stand-in for the hub."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import voicekit
from tests.fakes.hf_hub import FakeHub

REPO = "Systran/faster-whisper-tiny.en"
WEIGHTS = bytes(range(256)) * 12_000  # 3 MB


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"VOICEKIT_MODELS_DIR": str(tmp_path / "models"), "HF_HUB_OFFLINE": "", "HF_TOKEN": ""}


@pytest.fixture
def hub(env: dict[str, str]) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            fake.add(REPO, name, b"{}")
        fake.add(REPO, "model.bin", WEIGHTS)
        env["HF_ENDPOINT"] = fake.base_url
        yield fake


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rows(env: dict[str, str], *args: str) -> dict[str, dict[str, object]]:
    result = voicekit("models", "list", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cache_dir"] == env["VOICEKIT_MODELS_DIR"]
    return {row["name"]: row for row in data["models"]}


def test_pull_then_list_and_path(hub: FakeHub, env: dict[str, str], tmp_path: Path) -> None:
    before = _rows(env)
    assert before["whisper:tiny.en"]["cached"] is False and before["whisper:tiny.en"]["installed"] is True
    assert before["piper:en_US-lessac-medium"]["size_mb"] == 63

    pulled = voicekit("models", "pull", "whisper:tiny.en", env=env)
    assert pulled.returncode == 0, pulled.stderr
    folder = tmp_path / "models" / "whisper" / "tiny.en"
    assert (folder / "model.bin").read_bytes() == WEIGHTS
    assert pulled.stdout.strip() == f"whisper:tiny.en: 3.1 MB in {folder}"
    assert f"whisper:tiny.en: downloading 3.1 MB from {REPO}" in pulled.stderr

    row = _rows(env)["whisper:tiny.en"]
    assert row["cached"] is True and row["path"] == str(folder) and row["bytes"] == len(WEIGHTS) + 6
    table = voicekit("models", "list", env=env)
    line = next(line for line in table.stdout.splitlines() if "whisper:tiny.en" in line)
    assert "cached" in line and "3.1 MB" in line and "MIT" in line

    path = voicekit("models", "path", "tiny.en", env=env)
    assert path.returncode == 0 and path.stdout.strip() == str(folder)
    again = voicekit("models", "pull", "tiny.en", env=env)
    assert again.returncode == 0 and "whisper:tiny.en is already cached" in again.stdout


def test_list_one_backend(env: dict[str, str]) -> None:
    rows = _rows(env, "--backend", "piper")
    assert rows and all(name.startswith("piper:") for name in rows)
    bad = voicekit("models", "list", "--backend", "deepgramm", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: unknown stt backend 'deepgramm' (did you mean 'deepgram'?)")


def test_pull_without_a_hub_is_one_line(env: dict[str, str]) -> None:
    port = _closed_port()
    result = voicekit("models", "pull", "whisper:tiny.en", env={**env, "HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: cannot download whisper:tiny.en: cannot reach http://127.0.0.1:{port} (")
    offline = voicekit("models", "pull", "whisper:tiny.en", env={**env, "HF_HUB_OFFLINE": "1"})
    assert (
        offline.returncode == 1
        and offline.stderr.strip() == "error: cannot download whisper:tiny.en: HF_HUB_OFFLINE is set"
    )


def test_every_name_is_checked_before_anything_is_downloaded(hub: FakeHub, env: dict[str, str]) -> None:
    result = voicekit("models", "pull", "tiny.en", "tiny.eng", env=env)
    assert result.returncode == 2
    assert "error: unknown model 'tiny.eng' (did you mean 'tiny.en'?)" in result.stderr
    assert not [r for r in hub.requests if "/resolve/" in r.path]


def test_path_of_a_model_not_pulled(env: dict[str, str]) -> None:
    result = voicekit("models", "path", "piper:ru_RU-irina-medium", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: piper:ru_RU-irina-medium is not in the model cache; run 'voicekit models pull piper:ru_RU-irina-medium'"
    )


def test_chat_with_a_model_it_cannot_get(env: dict[str, str], tmp_path: Path) -> None:
    """A profile naming a model that is not cached, with no hub: one line, exit 2, before any audio."""
    from voicekit.testing.speech import synthesize, write_wav

    wav = write_wav(tmp_path / "in.wav", synthesize("hello"))
    offline_env = {**env, "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    result = voicekit(
        "chat", "--profile", "offline", "--set", "stt.use=whisper", "--input", str(wav), "--output",
        str(tmp_path / "out.wav"), "--fast", env=offline_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "whisper:tiny.en is not in the model cache and could not be downloaded (cannot reach" in errors[0]
    assert "run 'voicekit models pull whisper:tiny.en'" in errors[0] and "set stt.model_path" in errors[0]


def _readme_section() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("### Local models: `stt: whisper`, `output: piper`")
    return readme[start : readme.index("\n### ", start + 1)]


def test_readme_local_models_snippets_are_valid(tmp_path: Path, env: dict[str, str]) -> None:
    """The README's commands and profile lines name real models and options."""
    section = _readme_section()
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    pull = next(line for line in commands if line.startswith("voicekit models pull")).split("#")[0].split()[3:]
    listed = _rows(env, "--all")
    assert pull and all(name in listed for name in pull), pull
    chat = next(line for line in commands if line.startswith("voicekit chat")).split()[2:]
    result = voicekit("profiles", "validate", "offline", *chat, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    profile = tmp_path / "local-ru.yaml"
    profile.write_text("extends: offline\nlanguage: ru\n" + snippet)
    result = voicekit("profiles", "validate", str(profile), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    typo = voicekit("profiles", "validate", "offline", *chat, "--set", "stt.model=bas", env=env)
    assert typo.returncode != 0 and "stt.model: unknown model 'whisper:bas' (did you mean" in typo.stdout + typo.stderr
