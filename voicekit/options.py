"""Base classes for backend options (pydantic, unknown keys rejected), the retry policy, and
the type of an option that holds another backend (:class:`NestedBackend`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator


class BackendOptions(BaseModel):
    """Options of a backend. Unknown keys are an error, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CloudOptions(BackendOptions):
    """Options every cloud backend shares."""

    api_key: SecretStr | None = Field(None, description="API key; default from the backend's environment variable")
    base_url: str | None = Field(None, description="Service endpoint (regional host, proxy, or a local fake)")
    timeout_s: float = Field(10.0, gt=0, le=600, description="Connect and request timeout in seconds")


class RetryPolicy(BaseModel):
    """How the core tries a failing backend again before it gives up (or falls back).

    Set per role in a profile: ``llm: {use: gemini, retry: {attempts: 3, initial_ms: 200}}``.
    Only errors that say a retry may help (``BackendError(retryable=True)``: dropped
    connections, 5xx, 429) are retried; a ``retry_after`` the service asks for is honoured
    when it fits in the budget. Waits grow exponentially from ``initial_ms`` to ``max_ms``
    with full jitter; ``budget_ms`` bounds the waiting of one failure in all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(3, ge=1, le=20, description="Tries in all, the first one included (1: no retry)")
    initial_ms: int = Field(200, ge=0, le=60_000, description="Wait before the first retry, in ms")
    max_ms: int = Field(2000, ge=0, le=300_000, description="Longest wait between two tries, in ms")
    budget_ms: int = Field(
        15_000, ge=0, le=3_600_000, description="Longest total wait across the retries of one failure, in ms"
    )

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryPolicy:
        if self.max_ms < self.initial_ms:
            raise ValueError(f"max_ms ({self.max_ms}) is below initial_ms ({self.initial_ms})")
        return self


class NestedBackend:
    """Marks a backend option that holds another backend's spec: ``{use: espeak, voice: en-us}``.

    Declare such an option with :data:`NestedOutput`, :data:`NestedSTT` or :data:`NestedLLM`
    (``tts: NestedOutput = Field(default_factory=lambda: {"use": "espeak"}, ...)``), or with
    ``Annotated[dict[str, Any], NestedBackend("output")]``. Who does what:

    - the profile checker finds the option through this marker and validates the spec (the
      one the profile writes, or the option's default) like a top-level backend (its
      options, nested specs of its own, language), so
      ``voicekit profiles validate`` and the start of a conversation report
      ``output.tts.voise: unknown option (did you mean 'voice'?)`` with the file and line;
    - the backend that owns the option builds the nested one with
      ``self.context.build(role, spec, key="<option name>")``, starts it in its own
      ``start()`` and closes it in its own ``aclose()``; the core never sees it.

    A nested spec takes no ``retry:`` or ``fallback:``; those belong to a profile's role sections.
    A plain string is short for ``{use: <string>}``.
    """

    __slots__ = ("role",)

    def __init__(self, role: Literal["stt", "llm", "output"]) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"NestedBackend({self.role!r})"


def _spec_shorthand(value: Any) -> Any:
    return {"use": value} if isinstance(value, str) else value


def _spec_names_backend(spec: dict[str, Any]) -> dict[str, Any]:
    use = spec.get("use")
    if not isinstance(use, str) or not use.strip():
        raise ValueError("expected a backend spec like {use: <backend>, ...}: 'use' is missing")
    return spec


#: an option holding an output backend's spec (an avatar's voice, a voice that wraps another)
NestedOutput = Annotated[
    dict[str, Any], NestedBackend("output"), BeforeValidator(_spec_shorthand), AfterValidator(_spec_names_backend)
]
#: an option holding an STT backend's spec
NestedSTT = Annotated[
    dict[str, Any], NestedBackend("stt"), BeforeValidator(_spec_shorthand), AfterValidator(_spec_names_backend)
]
#: an option holding an LLM backend's spec
NestedLLM = Annotated[
    dict[str, Any], NestedBackend("llm"), BeforeValidator(_spec_shorthand), AfterValidator(_spec_names_backend)
]
