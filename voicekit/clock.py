"""The one clock every event timestamp comes from."""

from time import monotonic as now

__all__ = ["now"]
