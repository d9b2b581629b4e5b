"""Talking avatars: outputs whose speech plays in a billable remote session (HeyGen, LiveAvatar)."""
