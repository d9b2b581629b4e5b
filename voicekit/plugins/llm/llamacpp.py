"""A local language model in a GGUF file, run by llama.cpp (``llama-cpp-python``).

Optional: ``pip install 'voicekit[llamacpp]'`` builds llama.cpp from source (several
minutes; on CPUs where the native build crashes, set ``CMAKE_ARGS="-DGGML_NATIVE=OFF"``).
The model file is yours to provide (``model_path``); nothing is downloaded. The chat
template comes from the GGUF metadata unless ``chat_format`` names one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from voicekit.errors import BackendError, ProfileError
from voicekit.events import LLMDone, LLMEvent, TextDelta
from voicekit.options import BackendOptions
from voicekit.roles import LLM, Capabilities, Message
from voicekit.sdk import import_sdk

_END = object()


class LlamaCppOptions(BackendOptions):
    """Options of the local llama.cpp model."""

    model_path: str = Field(..., min_length=1, description="Path of the GGUF model file")
    system: str | None = Field("You are a helpful voice assistant. Answer briefly.", description="System prompt")
    chat_format: str | None = Field(None, description="llama.cpp chat template name; default: from the GGUF file")
    n_ctx: int = Field(4096, ge=256, le=1_048_576, description="Context window in tokens")
    max_tokens: int = Field(256, ge=1, le=1_048_576, description="Longest reply in tokens")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass")
    n_threads: int | None = Field(None, ge=1, le=1024, description="CPU threads; default: llama.cpp's choice")
    n_gpu_layers: int = Field(0, ge=-1, le=100_000, description="Layers to offload to a GPU (-1: all)")
    seed: int | None = Field(None, ge=-1, le=2**32 - 1, description="Sampling seed, for repeatable replies")


class LlamaCppLLM(LLM):
    """A GGUF chat model run locally by llama.cpp, streaming its reply token by token."""

    Options: ClassVar[type[LlamaCppOptions]] = LlamaCppOptions
    capabilities = Capabilities(streaming=True)
    extra: ClassVar[str | None] = "llamacpp"
    options: LlamaCppOptions

    _model: Any = None
    _lock: threading.Lock | None = None

    async def start(self) -> None:
        if self._model is not None:
            return
        llama_cpp = import_sdk("llama_cpp", package="llama-cpp-python", extra="llamacpp", backend="llamacpp")
        path = Path(self.options.model_path).expanduser()
        if not path.is_file():
            raise ProfileError(f"llamacpp: no model file at {path}; set llm.model_path to a GGUF file")
        o = self.options
        kwargs: dict[str, Any] = {"model_path": str(path), "n_ctx": o.n_ctx, "n_gpu_layers": o.n_gpu_layers}
        kwargs.update({"verbose": False, "chat_format": o.chat_format, "n_threads": o.n_threads})
        if o.seed is not None:
            kwargs["seed"] = o.seed
        try:
            self._model = await asyncio.to_thread(llama_cpp.Llama, **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProfileError(f"llamacpp: cannot load {path} ({exc}); is it a GGUF model?") from exc
        self._lock = threading.Lock()  # one llama.cpp context: one reply at a time

    async def aclose(self) -> None:
        model, self._model = self._model, None
        if model is not None and hasattr(model, "close"):
            await asyncio.to_thread(model.close)

    def messages(self, history: Sequence[Message], user_text: str) -> list[dict[str, str]]:
        """The chat as llama.cpp takes it: system prompt, history, then the user's turn."""
        chat = [{"role": "system", "content": self.options.system}] if self.options.system else []
        for message in history:
            text = message.text + (" …" if message.interrupted else "")
            chat.append({"role": message.role, "content": text})
        chat.append({"role": "user", "content": user_text})
        return chat

    async def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        if self._model is None:
            await self.start()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        chat = self.messages(history, user_text)

        def post(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone
                stop.set()

        def generate() -> None:
            assert self._lock is not None
            try:
                with self._lock:
                    stream = self._model.create_chat_completion(
                        messages=chat,
                        stream=True,
                        max_tokens=self.options.max_tokens,
                        temperature=self.options.temperature,
                        top_p=self.options.top_p,
                    )
                    for chunk in stream:
                        if stop.is_set():
                            break
                        content = chunk["choices"][0].get("delta", {}).get("content")
                        if content:
                            post(content)
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
            except Exception as exc:  # handed to the reader  # noqa: BLE001
                post(BackendError(f"llamacpp: generation failed: {exc}"))
            finally:
                post(_END)

        worker = loop.run_in_executor(None, generate)
        parts: list[str] = []
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                if not parts:
                    item = item.lstrip()  # templates often start the reply with a space or newline
                    if not item:
                        continue
                parts.append(item)
                yield TextDelta(item)
            await worker
        finally:
            stop.set()
        yield LLMDone("".join(parts))
