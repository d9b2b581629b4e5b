"""Talking avatars: outputs whose speech plays in a billable remote session (HeyGen, LiveAvatar),
all on one base, :class:`voicekit.plugins.output.avatar.base.RemoteAvatarOutput`."""
