"""Gemini Live: a model that listens and speaks, over one resumable live connection.

- :mod:`.backend`: :class:`GeminiLiveLLM`, the backend (options, modes, errors).
- :mod:`.link`: one live conversation over as many websocket connections as it takes.
- :mod:`.stream`: the speech-to-speech stream the engine reads.
- :mod:`.wire`: what the service's messages mean.
"""
