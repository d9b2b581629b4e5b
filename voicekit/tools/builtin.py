"""The tools voicekit ships, registered through ``register_tools`` like any plugin's."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicekit.hookspecs import RegisterTool, hookimpl
from voicekit.tools.base import ToolError


def clock(timezone: str = "UTC") -> str:
    """The current date and time in a timezone.

    Args:
        timezone: An IANA timezone name such as "Europe/Paris" or "America/New_York"; UTC by default.
    """
    try:
        zone = ZoneInfo(timezone.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown timezone {timezone!r}; use an IANA name such as Europe/Paris") from None
    moment = datetime.now(zone)
    offset = moment.strftime("%z")
    return f"{moment:%A %d %B %Y, %H:%M} in {zone.key} (UTC{offset[:3]}:{offset[3:]})"


@hookimpl
def register_tools(register: RegisterTool) -> None:
    register(clock)
