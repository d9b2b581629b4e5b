"""Gemini Live: a model that listens and speaks, over one resumable live session.

- :mod:`.backend`: :class:`GeminiLiveLLM`, the backend (options, modes, the client).
- :mod:`.stream`: the speech-to-speech stream the engine reads (``mode: audio``).
- :mod:`.text`: ``respond`` over one live session for a whole conversation (``mode: text``).
- :mod:`.link`: one live session over as many connections as it takes (resume, retry).
- :mod:`.replay`: what a new connection must be sent again, so that no turn is lost.
- :mod:`.failures`: the service's refusals as one-line errors (auth, model, quota).
- :mod:`.wire`: what the service's messages mean.
"""
