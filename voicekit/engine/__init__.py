"""The conversation engine: everything between the backends.

- :mod:`.conversation`: :class:`Conversation` wires the tasks of one conversation and
  owns its lifecycle (start, the one error path, shutdown).
- :mod:`.turns`: :class:`TurnTaking`, the one owner of turn-taking: when the user's turn
  ends, when the bot may speak, and what interrupts it; its parts :mod:`.end_of_turn`
  (detectors and the waits after a pause), :mod:`.preemption` (replies started ahead and held)
  and :mod:`.interruptions` (barge-in, backchannels, false interruptions); :mod:`.bot_turn`
  (a reply's state, and the actions turn-taking asks for).
- :mod:`.listening`: the user's audio through filters and the VAD to the STT, and its words to turn-taking.
- :mod:`.reply`: one bot reply through the cascade (LLM → sentences → output).
- :mod:`.playback`: bot audio to the sink, and what of it the user heard.
- :mod:`.realtime`: a speech-to-speech model's stream turned into the same turns.
- :mod:`.retry`: the one retry policy; :mod:`.fallback`: switching to the next backend.
- :mod:`.sentences`, :mod:`.metrics`: sentence splitting and per-turn timings.
- :mod:`.runner`: a conversation built from a profile (what ``chat``, ``bench`` and
  ``serve`` run).
"""
