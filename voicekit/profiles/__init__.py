"""Profiles: YAML files that pick a backend for each role and set how turns work.

```yaml
extends: base                 # another profile, by name or relative path
language: ru
stt:    {use: deepgram, model: nova-3, endpointing_ms: 300}
llm:    {use: gemini, model: gemini-3.8-flash, api_key: ${GEMINI_API_KEY}}
output: {use: liveavatar}
turns:  {mode: full_duplex}
```

One linear path, each module importing only the ones before it:

- :mod:`~voicekit.profiles.document`: YAML that remembers the line of every key; messages;
- :mod:`~voicekit.profiles.find`: ``./profiles``, then the user config directory
  (``$VOICEKIT_CONFIG_DIR/profiles`` when that variable is set), then the installed ones;
- :mod:`~voicekit.profiles.read`: ``extends:`` merged (mappings merge, lists and scalars
  replace; a section switching to another backend starts afresh), shorthands, ``--set``
  overrides, secrets (``${NAME}`` or ``{$env: NAME}``, read from the environment);
- :mod:`~voicekit.profiles.model`: :class:`Profile`, :class:`BackendSpec` and the settings;
- :mod:`~voicekit.profiles.load`: the structure checked, a :class:`Profile` made;
- :mod:`~voicekit.profiles.validate`: the backends checked against the installed plugins;
- :mod:`~voicekit.profiles.build`: the backends made, after the same checks.

Every error names the file and line, the YAML path, the bad key or value and,
when one is close, the key that was probably meant.
"""

from __future__ import annotations

from voicekit.profiles.build import build_backend, build_chain
from voicekit.profiles.find import find_profile, profile_dirs
from voicekit.profiles.load import load_profile
from voicekit.profiles.model import (
    AudioConfig,
    BackendSpec,
    Profile,
    ProfileValidationError,
    TurnsConfig,
    redacted,
)
from voicekit.profiles.read import ProfileInfo, list_profiles, merged_document
from voicekit.profiles.validate import check_profile, validate_profile

__all__ = [
    "AudioConfig",
    "BackendSpec",
    "Profile",
    "ProfileInfo",
    "ProfileValidationError",
    "TurnsConfig",
    "build_backend",
    "build_chain",
    "check_profile",
    "find_profile",
    "list_profiles",
    "load_profile",
    "merged_document",
    "profile_dirs",
    "redacted",
    "validate_profile",
]
