"""Base classes for backend options (pydantic, unknown keys rejected)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class BackendOptions(BaseModel):
    """Options of a backend. Unknown keys are an error, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CloudOptions(BackendOptions):
    """Options every cloud backend shares."""

    api_key: SecretStr | None = Field(None, description="API key; default from the backend's environment variable")
    base_url: str | None = Field(None, description="Service endpoint (regional host, proxy, or a local fake)")
    timeout_s: float = Field(10.0, gt=0, description="Connect and request timeout in seconds")
