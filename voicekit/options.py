"""Base classes for backend options (pydantic, unknown keys rejected), and the retry policy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


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
