"""The bench chart: each stage's distribution per profile, on a log time axis (``bench --plot``).

One group per stage, one box per profile inside it (the box spans p25–p75, the whiskers
p5–p95), every turn drawn as a dot over it, the p50 as a thick line and the p95 as a
triangle with its value. The legend sits above the plot, clear of the data. Needs
matplotlib (extra ``plot``); :func:`check_target` says so before a bench starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voicekit.report import stage_label, stage_names

FLOOR_MS = 0.01  # a log axis cannot show 0 ms: such values sit on the floor
SUFFIXES = (".png", ".svg", ".pdf")


def check_target(path: Path) -> None:
    """Fail now, not after the run: matplotlib missing, a folder that does not exist, a bad suffix."""
    from voicekit.errors import MissingExtraError, ProfileError

    if path.suffix.lower() not in SUFFIXES:
        raise ProfileError(f"--plot {path}: write a .png, .svg or .pdf file")
    folder = path.expanduser().resolve().parent
    if not folder.is_dir():
        raise ProfileError(f"--plot {path}: the folder {folder} does not exist")
    import importlib.util
    import os

    if not os.access(folder, os.W_OK):
        raise ProfileError(f"--plot {path}: the folder {folder} is not writable")
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingExtraError("matplotlib", "plot")


def plot(runs: Sequence[dict[str, Any]], path: Path, *, title: str = "voicekit bench") -> None:
    """Draw ``runs`` (each ``{"profile", "turns": [...]}``, the report's schema) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator

    stages = [s for s in stage_names() if any(t.get(s) is not None for run in runs for t in run.get("turns", []))]
    colors = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    n = max(1, len(runs))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(stages) * max(1, n / 2) + 2), 5.2))
    rng = np.random.default_rng(0)  # the same jitter every time: the chart is reproducible
    for index, run in enumerate(runs):
        color = colors[index % len(colors)]
        for position, stage in enumerate(stages):
            values = np.array([t[stage] for t in run.get("turns", []) if t.get(stage) is not None], dtype=float)
            if values.size == 0:
                continue
            values = np.maximum(values, FLOOR_MS)
            x = position - 0.4 + width * (index + 0.5)
            ax.boxplot(
                values,
                positions=[x],
                widths=width * 0.8,
                whis=(5, 95),
                showfliers=False,
                patch_artist=True,
                boxprops={"facecolor": (*color[:3], 0.25), "edgecolor": color},
                whiskerprops={"color": color},
                capprops={"color": color},
                medianprops={"color": color, "linewidth": 2.5},
            )
            jitter = rng.uniform(-width * 0.3, width * 0.3, values.size)
            ax.scatter(x + jitter, values, s=12, color=color, alpha=0.7, zorder=3, linewidths=0)
            p95 = float(np.percentile(values, 95))
            ax.scatter([x], [p95], marker="v", s=40, color=color, edgecolors="black", linewidths=0.5, zorder=4)
            ax.annotate(f"{p95:.0f}" if p95 >= 10 else f"{p95:.2g}", (x, p95), xytext=(0, 6),
                        textcoords="offset points", ha="center", fontsize=7, color="black")  # fmt: skip
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("milliseconds (log scale)")
    ax.set_xticks(range(len(stages)))
    ax.set_xticklabels([_wrap(stage_label(s)) for s in stages], fontsize=8)
    ax.set_xlim(-0.6, len(stages) - 0.4)
    ax.grid(axis="y", which="major", alpha=0.3)
    handles: list[Any] = [Patch(facecolor=(*colors[i % len(colors)][:3], 0.35), edgecolor=colors[i % len(colors)],
                                label=_run_label(run)) for i, run in enumerate(runs)]  # fmt: skip
    handles += [
        Line2D([], [], color="black", linewidth=2.5, label="p50"),
        Line2D([], [], color="black", marker="v", linestyle="", label="p95"),
        Patch(facecolor="white", edgecolor="black", label="box p25–p75, whiskers p5–p95"),
    ]
    turns = max((len(run.get("turns", [])) for run in runs), default=0)
    ax.set_title(f"{title} ({turns} turns per profile)", pad=34 + 14 * ((len(handles) - 1) // 4))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run_label(run: dict[str, Any]) -> str:
    backends = run.get("backends") or {}
    chain = " → ".join(backends[r] for r in ("stt", "llm", "output") if r in backends)
    profile = str(run.get("profile", "?"))
    if profile.endswith((".yaml", ".yml")):
        profile = Path(profile).stem  # a profile named by its file: its name is enough in a legend
    return profile + (f" ({chain})" if chain else "")


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
