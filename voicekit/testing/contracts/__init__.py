"""Contract tests: what every STT, LLM and Output backend must do, as pytest classes.

A backend's test module subclasses one class and gives it a single fixture, ``backend``,
an async fixture that yields a started backend::

    import pytest
    from voicekit.testing.contracts import OutputContract
    from voicekit_beep import BeepOutput

    class TestBeepOutput(OutputContract):
        @pytest.fixture
        async def backend(self):
            async with BeepOutput(BeepOutput.Options(pitch_hz=440)) as tts:
                yield tts

Every ``test_*`` method below then runs against it. The async tests need pytest-asyncio:
set ``asyncio_mode = "auto"`` in the ``[tool.pytest.ini_options]`` of your pyproject (or,
in strict mode, decorate your fixture with ``@pytest_asyncio.fixture``; the tests here
already carry ``@pytest.mark.asyncio``). Class attributes tune a contract for slow
services: ``timeout_s`` bounds every wait, and each class has its own inputs
(``sentences``, ``prompt``, ...) that a subclass may replace.

Every failure says which event of which sentence or reply was wrong and what was
expected; ``docs/plugins.md`` lists what each test checks. This package imports pytest;
the rest of :mod:`voicekit.testing` does not.
"""

from voicekit.testing.contracts.llm import LLMContract
from voicekit.testing.contracts.output import OutputContract
from voicekit.testing.contracts.stt import STTContract

__all__ = ["LLMContract", "OutputContract", "STTContract"]
