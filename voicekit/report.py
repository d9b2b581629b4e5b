"""The one JSON schema of timings: ``metrics.json`` of a recording, the history, and ``bench --json``.

Every document has ``schema_version`` (:data:`SCHEMA_VERSION`) and ``kind``
(``conversation`` or ``bench``). Both kinds share two parts, made here:

- ``turns``: one object per turn, ``{"turn", "t", "backends", <stage>: ms or null ...}``
  and the facts of :data:`TURN_FACTS`,
  ``t`` in seconds (from the start of ``conversation.wav`` in a recording, from the start
  of the run in a bench); a stage that did not happen in a turn is ``null``;
- ``stages``: per stage, ``{"label", "count", "p50", "p95", "max"}`` over the turns that
  had it (numpy's linear percentiles), ``null`` figures when none had it.

The stages are :data:`voicekit.engine.metrics.STAGES`, in order; docs/bench.md describes
each document.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from voicekit.engine.metrics import STAGE_LABELS, STAGES
from voicekit.events import TurnMetrics

SCHEMA_VERSION = 2

#: what each turn record says besides its stages: how its end was decided, how a preemptive reply fared
TURN_FACTS = (
    "detector",
    "detector_probability",
    "detector_ms",
    "preemptive",
    "preemptive_saved_ms",
    "preemptive_discarded",
    "preemptive_discarded_tokens",
)


def stage_names() -> tuple[str, ...]:
    """The stages of a turn, in the order the engine lists them."""
    return tuple(STAGES)


def stage_label(stage: str) -> str:
    return STAGE_LABELS.get(stage, stage.removesuffix("_ms").replace("_", " "))


def turn_record(metrics: TurnMetrics, t0: float | None = None) -> dict[str, Any]:
    """One turn as the schema writes it (``t`` relative to ``t0``, in seconds)."""
    record: dict[str, Any] = {"turn": metrics.turn, "t": round(metrics.t - t0, 3) if t0 is not None else None}
    for stage in stage_names():
        value = getattr(metrics, stage, None)
        record[stage] = None if value is None else float(value)
    record["backends"] = dict(metrics.backends)
    for field in TURN_FACTS:
        record[field] = getattr(metrics, field)
    return record


def stage_summary(turns: Iterable[TurnMetrics | dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{stage: {"label", "count", "p50", "p95", "max"}}`` over ``turns`` (events or records)."""
    import numpy as np

    rows = list(turns)
    summary: dict[str, dict[str, Any]] = {}
    for stage in stage_names():
        values = [v for v in (_value(row, stage) for row in rows) if v is not None]
        entry: dict[str, Any] = {
            "label": stage_label(stage),
            "count": len(values),
            "p50": None,
            "p95": None,
            "max": None,
        }
        if values:
            p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95])
            entry.update(p50=round(float(p50), 2), p95=round(float(p95), 2), max=round(max(values), 2))
        summary[stage] = entry
    return summary


def _value(row: TurnMetrics | dict[str, Any], stage: str) -> float | None:
    value = row.get(stage) if isinstance(row, dict) else getattr(row, stage, None)
    return None if value is None else float(value)


def backends_of(turns: Sequence[TurnMetrics]) -> dict[str, str]:
    """The backends that served the first turn (``{}`` without turns): a run's headline."""
    return dict(turns[0].backends) if turns else {}


def check_document(data: Any, source: str) -> dict[str, Any]:
    """A loaded document of this schema, or a :class:`~voicekit.errors.VoicekitError` saying why not."""
    from voicekit.errors import VoicekitError

    if not isinstance(data, dict) or "schema_version" not in data:
        raise VoicekitError(f"{source}: not a voicekit report (no schema_version)")
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise VoicekitError(
            f"{source}: schema_version {version}; this voicekit reads {SCHEMA_VERSION} (run the bench again)"
        )
    return data
