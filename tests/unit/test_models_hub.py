"""Downloading models with the real ``huggingface_hub`` client from a local stand-in for the hub.

The stand-in (``tests/fakes/hf_hub.py``) answers as the hub does: metadata on ``HEAD``,
large files redirected to a file store on another origin, ``Range`` requests, the hub's
error codes. Faults: a connection cut mid-file, HTTP errors, corrupted bytes, no hub at all.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.hf_hub import FakeHub
from voicekit import models
from voicekit.models.hub import ModelDownloadError, download

REPO = "Systran/faster-whisper-tiny.en"
BIG = bytes(range(256)) * 160_000  # 40 MB: more than the hub client's 10 MiB read chunks


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path / "models"


@pytest.fixture
def hub(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        fake.add(REPO, "config.json", b'{"model": "tiny"}')
        fake.add(REPO, "model.bin", BIG)
        fake.add(REPO, "tokenizer.json", b'{"tokens": []}')
        fake.add(REPO, "vocabulary.txt", b"a\nb\n")
        monkeypatch.setenv("HF_ENDPOINT", fake.base_url)
        yield fake


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_download_puts_every_file_in_the_model_folder(hub: FakeHub) -> None:
    spec = models.resolve("whisper:tiny.en")
    announced: list[int] = []
    path = download(spec, on_start=announced.append)
    assert path == models.model_dir(spec) and models.is_cached(spec)
    assert announced == [models.disk_bytes(spec)]  # the size to come, told once before it comes
    assert (path / "model.bin").read_bytes() == BIG
    assert (path / "vocabulary.txt").read_bytes() == b"a\nb\n"
    # the large file came from the file store the hub redirected to, the small ones from the hub
    assert hub.gets("/lfs/" + hashlib.sha256(BIG).hexdigest()) and hub.gets("/resolve/main/config.json")
    assert models.cached_models()[0].size_bytes == models.disk_bytes(spec) > len(BIG)


def test_a_cut_connection_resumes_where_it_stopped(hub: FakeHub) -> None:
    hub.cut_after["model.bin"] = 25_000_000
    path = download(models.resolve("whisper:tiny.en"))
    assert (path / "model.bin").read_bytes() == BIG
    first, second = hub.gets("/lfs/" + hashlib.sha256(BIG).hexdigest())
    assert first.range is None
    assert second.range is not None and second.range.startswith("bytes=")
    resumed_at = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 25_000_000, second.range


def test_files_already_there_are_not_fetched_again(hub: FakeHub) -> None:
    spec = models.resolve("whisper:tiny.en")
    folder = models.model_dir(spec)
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(BIG)  # what an interrupted pull had finished
    download(spec)
    assert not [r for r in hub.requests if "model.bin" in r.path or "/lfs/" in r.path]
    assert models.is_cached(spec)


def test_the_hub_token_is_sent(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    download(models.resolve("whisper:tiny.en"))
    heads = [r for r in hub.requests if r.method == "HEAD"]
    assert heads and all(r.authorization == "Bearer hf_test_token" for r in heads)


def test_corrupted_bytes_are_thrown_away(hub: FakeHub) -> None:
    hub.corrupt = True
    spec = models.resolve("whisper:tiny.en")
    with pytest.raises(ModelDownloadError, match=r"model.bin arrived corrupted \(its sha256 is not the hub's\)"):
        download(spec)
    assert not (models.model_dir(spec) / "model.bin").exists() and not models.is_cached(spec)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda hub: hub.repos.pop(REPO), f"has no repository {REPO}"),
        (lambda hub: hub.repos[REPO].pop("vocabulary.txt"), f"{REPO} has no file vocabulary.txt"),
        (lambda hub: hub.status.update({"model.bin": 503}), "answered HTTP 503 for model.bin"),
        (lambda hub: hub.status.update({"config.json": 403}), "refused access to Systran/faster-whisper-tiny.en"),
    ],
)
def test_hub_errors_become_one_line_before_anything_is_written(hub: FakeHub, setup: object, reason: str) -> None:
    setup(hub)  # type: ignore[operator]
    spec = models.resolve("whisper:tiny.en")
    with pytest.raises(ModelDownloadError) as caught:
        download(spec)
    message = str(caught.value)
    assert message.startswith("cannot download whisper:tiny.en: ") and reason in message, message
    assert "\n" not in message and "Traceback" not in message
    assert not [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]
    assert models.disk_bytes(spec) == 0


def test_no_hub_at_all(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelDownloadError, match=rf"cannot reach http://127.0.0.1:{port} \(.*refused.*\)$"):
        download(models.resolve("whisper:tiny.en"))


def test_offline_mode_asks_nothing(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelDownloadError, match="HF_HUB_OFFLINE is set"):
        download(models.resolve("whisper:tiny.en"))
    assert hub.requests == []


def test_a_backend_without_its_model_names_pull_and_model_path(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    spec = models.resolve("piper:ru_RU-irina-medium")
    with pytest.raises(models.ModelUnavailableError) as caught:
        models.ensure(spec, option="output.tts.model_path")
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    assert "piper:ru_RU-irina-medium is not in the model cache and could not be downloaded (cannot reach" in message
    assert "run 'voicekit models pull piper:ru_RU-irina-medium'" in message
    assert "or set output.tts.model_path to a local copy of the model" in message


def test_ensure_downloads_what_is_missing(hub: FakeHub) -> None:
    spec = models.resolve("whisper:tiny.en")
    assert models.ensure(spec, option="stt.model_path") == models.model_dir(spec)
    assert models.is_cached(spec)
    count = len(hub.requests)
    models.ensure(spec, option="stt.model_path")
    assert len(hub.requests) == count  # cached: the hub is not asked again
