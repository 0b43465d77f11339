"""Figures of performance history for notebook 06: latency against the baseline and its
threshold band, native/reference ratio per run, per-stage breakdown, committed GPU runs.

Every function returns a pyplot figure with an explicit figsize and never calls
`plt.show()` (the notebook cell ends with it; DESIGN section 8). The data comes from
`workbench.perf.history`, so what a figure shows is what its tests check.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from workbench.perf.compare import CALIBRATION_NEEDED, IMPROVED, REGRESSED, THRESHOLDS
from workbench.perf.history import CohortHistory, CommittedBenchmark, ComponentRow, PerfHistory
from workbench.perf.pipelines import NATIVE
from workbench.perf.report import unit

NAN = float("nan")


def baseline_band(history: CohortHistory, metric: str = "latency_s") -> dict[str, list[float]]:
    """Per record: its value, the baseline it was judged against, and the limits around it
    (NaN where there was no baseline yet). `band` is the larger of the percent and absolute
    limits: a change counts only beyond both."""
    threshold = THRESHOLDS[metric]
    out: dict[str, list[float]] = {k: [] for k in ("value", "baseline", "percent", "absolute", "band")}
    for point in history.points:
        value = getattr(point.record, metric)
        base = point.comparison.baseline.medians.get(metric)
        out["value"].append(NAN if value is None else value)
        if base is None:
            for key in ("baseline", "percent", "absolute", "band"):
                out[key].append(NAN)
            continue
        percent, absolute = threshold.limits(base)
        out["baseline"].append(base)
        out["percent"].append(percent)
        out["absolute"].append(absolute)
        out["band"].append(max(percent, absolute))
    return out


def _session_breaks(history: CohortHistory) -> list[float]:
    sessions = [p.record.extra.get("session") for p in history.points]
    return [i - 0.5 for i in range(1, len(sessions)) if sessions[i] != sessions[i - 1]]


def plot_history(history: PerfHistory, metric: str = "latency_s") -> Figure:
    """One panel per side: the metric per record (oldest first), the baseline each record was
    judged against, the threshold band, and regressed/improved records marked."""
    sides = list(history.sides.items())
    fig, axes = plt.subplots(1, len(sides), figsize=(6 * len(sides), 4), layout="constrained", squeeze=False)
    threshold = THRESHOLDS[metric]
    u = unit(metric)
    worse = 1.0 if threshold.higher_is_worse else -1.0
    for ax, (side, h) in zip(axes[0], sides):
        data = baseline_band(h, metric)
        x = list(range(len(h.points)))
        # Each record's own baseline and limits, drawn across its slot (none before the first baseline).
        labels = {"band": "no-verdict band (within % or absolute)",
                  "baseline": "baseline: median of last 5 eligible before",
                  "percent": f"{threshold.percent:g}% limit", "absolute": f"{threshold.absolute:g} {u} limit"}
        for i, base in enumerate(data["baseline"]):
            if math.isnan(base):
                continue
            slot, band = (i - 0.5, i + 0.5), data["band"][i]
            ax.fill_between(slot, base - band, base + band, color="tab:gray", alpha=0.18,
                            label=labels.pop("band", None), linewidth=0)
            ax.plot(slot, (base, base), color="black", linestyle="--", linewidth=1, label=labels.pop("baseline", None))
            ax.plot(slot, (base + worse * data["percent"][i],) * 2, color="tab:orange", linestyle=":", linewidth=1.2,
                    label=labels.pop("percent", None))
            ax.plot(slot, (base + worse * data["absolute"][i],) * 2, color="tab:purple", linestyle="-.",
                    linewidth=1, label=labels.pop("absolute", None))
        ax.plot(x, data["value"], marker="o", markersize=4, color="tab:blue" if side == NATIVE else "tab:green",
                label=f"{side} {metric}")
        for status, style in ((REGRESSED, dict(marker="x", color="red", s=90)),
                              (IMPROVED, dict(marker="^", color="gold", edgecolors="black", s=60)),
                              (CALIBRATION_NEEDED, dict(marker="o", facecolors="none", edgecolors="gray", s=70))):
            idx = [i for i, p in enumerate(h.points) if _status(p, metric) == status]
            if idx:
                ax.scatter(idx, [data["value"][i] for i in idx], label=status, zorder=3, **style)
        for b in _session_breaks(h):
            ax.axvline(b, color="tab:gray", linewidth=0.5, alpha=0.6)
        _focus_on_data(ax, data, worse, f"{threshold.absolute:g} {u}")
        ax.set_xlabel("record (oldest first; thin lines separate sessions)")
        ax.set_ylabel(f"{metric} [{u}]")
        ax.set_title(f"{side}: {h.cohort.variant_id}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    return fig


def _focus_on_data(ax, data: dict[str, list[float]], worse: float, absolute: str) -> None:
    """Scale to the values and the percent limit; an absolute limit far beyond them (tiny CPU
    runs against a 0.5 s threshold) is named in the panel instead of flattening the data."""
    near = [v for v in data["value"] if not math.isnan(v)]
    near += [b + worse * p for b, p in zip(data["baseline"], data["percent"]) if not math.isnan(b)]
    if not near:
        return
    top = 1.4 * max(near)
    far = [b + worse * a for b, a in zip(data["baseline"], data["absolute"]) if not math.isnan(b)]
    ax.set_ylim(0, top)
    if far and max(far) > top:
        ax.text(0.99, 0.97, f"absolute limit ({absolute}) is above this view:\nno change here can regress latency",
                transform=ax.transAxes, ha="right", va="top", fontsize=7, color="tab:purple")


def _status(point, metric: str) -> str:
    if point.comparison.baseline.needs_calibration:
        return CALIBRATION_NEEDED
    row = point.row(metric)
    return row.status if row is not None else ""


def plot_latency_ratios(history: PerfHistory) -> Figure:
    """Native/reference latency per paired run; this session's runs highlighted."""
    fig, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
    ratios = history.ratios
    x = list(range(len(ratios)))
    current = [i for i, r in enumerate(ratios) if r.session == history.session]
    ax.plot(x, [r.ratio for r in ratios], marker="o", markersize=4, color="tab:gray", label="earlier sessions")
    if current:
        ax.plot(current, [ratios[i].ratio for i in current], marker="o", linestyle="none", color="tab:blue",
                label="this session")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="parity (1.0)")
    ax.set_xlabel("paired run (oldest first)")
    ax.set_ylabel("native / reference latency")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_breakdown(stages: Mapping[str, float], rows: Sequence[ComponentRow]) -> Figure:
    """Left: native stage medians (first stage on top). Right: text encoder, DiT per step
    and VAE decode medians, native vs reference side by side."""
    comps = [r for r in rows if r.metric != "latency_s"]
    height = 0.35 * max(len(stages), 2 * len(comps)) + 1.4
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, height), layout="constrained")
    names = list(stages)[::-1]
    left.barh(names, [stages[n] * 1e3 for n in names], color="tab:blue")
    left.set_xlabel("milliseconds (median over runs)")
    left.set_title("native stages", fontsize=10)
    y = list(range(len(comps)))[::-1]
    width = 0.38
    for offset, side, color in ((width / 2, "native", "tab:blue"), (-width / 2, "reference", "tab:green")):
        values = [getattr(r, side) for r in comps]
        right.barh([v + offset for v in y], [NAN if v is None else v * 1e3 for v in values], height=width,
                   color=color, label=side)
    right.set_yticks(y, [r.metric + (" (per step)" if r.metric == "dit_s" else "") for r in comps])
    right.set_xlabel("milliseconds (median over runs)")
    right.set_title("components: native vs reference", fontsize=10)
    right.legend(fontsize=8)
    return fig


def plot_committed(benchmarks: Sequence[CommittedBenchmark]) -> Figure | None:
    """E2E latency and DiT s/step of every committed GPU benchmark run: one panel row per
    file, one group per run (official and native bars side by side, labelled with the run's
    date and commit); None when there is nothing committed (the notebook then shows no figure)."""
    if not benchmarks:
        return None
    fig, axes = plt.subplots(len(benchmarks), 2, figsize=(11, 3.4 * len(benchmarks)), layout="constrained",
                             squeeze=False)
    for row, bench in zip(axes, benchmarks):
        runs: list[list] = []
        for record, official in bench.paired():
            if official is None:
                runs.append([record])
            elif runs and runs[-1][0] is official:
                runs[-1].append(record)
            else:
                runs.append([record])
        for ax, metric, label in ((row[0], "latency_s", "end to end [s]"), (row[1], "dit_s", "DiT per step [s]")):
            for i, run in enumerate(runs):
                for j, r in enumerate(run):
                    value = getattr(r, metric)
                    native = r.variant_id.startswith(NATIVE)
                    bars = ax.bar(i + (j - (len(run) - 1) / 2) * 0.38, NAN if value is None else value, width=0.36,
                                  color="tab:blue" if native else "tab:green",
                                  label=("native" if native else "official") if i == 0 else None)
                    ax.bar_label(bars, fmt="%.3g", fontsize=7)
            ax.set_xticks(range(len(runs)), [f"{run[0].timestamp[:16].replace('T', ' ')}\n{run[0].commit}"
                                             for run in runs], fontsize=7)
            ax.set_ylabel(label)
            ax.set_title(f"{bench.path.stem.removeprefix('gpu_').removesuffix('_records')}: {label}", fontsize=10)
            ax.legend(fontsize=7, loc="lower right")
    return fig
