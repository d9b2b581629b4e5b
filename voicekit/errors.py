"""Domain errors. Each message is one line that tells the user what to do next."""

from __future__ import annotations


class VoicekitError(Exception):
    """Base of every error voicekit raises on purpose.

    ``retryable`` says whether trying the same call again may help (dropped
    sockets, 5xx, 429); the CLI prints ``str(error)`` as a single line.
    """

    retryable: bool = False
    exit_code: int = 1
    #: set when the error leaves a retry loop that used up its policy: nobody retries it again
    #: (a fallback may still take over)
    retries_spent: bool = False


class ProfileError(VoicekitError):
    """A profile could not be found, parsed or validated."""

    exit_code = 2


class ConfigError(VoicekitError):
    """voicekit's own settings (``config.toml``, a ``VOICEKIT_*`` variable, ``.env``, the key store) are wrong."""

    exit_code = 2


class UnknownBackendError(ProfileError):
    """A profile names a backend that no installed plugin registers."""


class MissingSecretError(VoicekitError):
    """An API key or other secret is not set in the environment."""

    exit_code = 2


class MissingExtraError(VoicekitError):
    """A backend needs an optional dependency that is not installed."""

    exit_code = 2

    def __init__(self, package: str, extra: str, backend: str | None = None) -> None:
        who = f"backend '{backend}' needs" if backend else "this needs"
        super().__init__(f"{who} {package}, which is not installed: pip install 'voicekit[{extra}]'")
        self.package = package
        self.extra = extra


class AudioFormatError(VoicekitError):
    """Audio input that cannot be read or converted."""

    exit_code = 2


class AudioDeviceError(VoicekitError):
    """No usable microphone or speaker."""

    exit_code = 2


class PluginError(VoicekitError):
    """A plugin is broken or conflicts with another plugin."""


class AuthError(VoicekitError):
    """The vendor rejected the credentials; names the variable that holds them."""

    exit_code = 3


class BackendError(VoicekitError):
    """A backend failed talking to its service.

    ``retryable``: trying again may help (a dropped connection, a 5xx, a 429);
    ``retry_after``: the wait in seconds the service asked for. The backend raises it and
    goes no further: the engine retries per the role's ``retry:`` policy and then falls
    back (:mod:`voicekit.engine.retry`, :mod:`voicekit.engine.fallback`).
    """

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
