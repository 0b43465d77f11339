"""One self-contained HTML page per parity run: verdict, first divergence, metrics and figures.

Figures are embedded as base64 PNG data URIs so the file can be mailed or attached to a CI
run as is. A figure that cannot be drawn (a checkpoint missing on one side, a shape
mismatch) becomes a note on the page: a failing run still needs its report.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from workbench.errors import ParityError
from workbench.io import atomic_write_text
from workbench.parity import plots
from workbench.parity.capture import CaptureSet
from workbench.parity.verdict import Verdict

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-family: monospace; }
tr.pass { background: #eef8ee; } tr.fail { background: #fbe3e3; }
tr.first { background: #f4b4b4; font-weight: bold; }
.banner { padding: 0.8em 1em; font-size: 1.2em; font-weight: bold; }
.banner.pass { background: #cfeccf; } .banner.fail { background: #f4c4c4; }
.divergence { border-left: 6px solid #c0392b; background: #fdf0ef; padding: 0.6em 1em; }
.note { color: #8a5a00; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
"""


def figure_data_uri(fig: Figure) -> str:
    """PNG of a figure as a data URI; closes the figure."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(verdict: Verdict, reference: CaptureSet, native: CaptureSet) -> list[tuple[str, Callable[[], Figure]]]:
    """The figures this run's checkpoint kinds call for, in reading order."""
    kinds = {c.kind for c in reference}
    out: list[tuple[str, Callable[[], Figure]]] = [("Checkpoints", lambda: plots.plot_stage_table(verdict))]
    if any(c.step is not None for c in verdict.checkpoints):
        out.append(("Per-step latent diff", lambda: plots.plot_latent_diffs(verdict)))
    first = verdict.first_divergence
    latent = first.name if first is not None and first.kind == "latent" else next(
        (n for n in ("final_latents", "initial_latents") if n in reference), None)
    if latent is not None:
        out.append((f"Latent heatmaps: {latent}", lambda: plots.plot_latent_heatmaps(reference, native, latent)))
    if {"frames", "waveform"} <= kinds:
        out.append(("Frames and waveform", lambda: plots.plot_joint(reference, native)))
    elif "frames" in kinds:
        out.append(("Frames", lambda: plots.plot_frames(reference, native)))
    elif "waveform" in kinds:
        out.append(("Waveform", lambda: plots.plot_waveforms(reference, native)))
    return out


def _num(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    return str(value) if not math.isfinite(value) else spec % value


def _metrics_table(verdict: Verdict) -> str:
    first = verdict.first_divergence
    head = ("checkpoint", "kind", "step", "shape ref / nat", "dtype ref / nat", "max abs", "mean abs", "drift",
            "cosine", "psnr", "ssim", "snr dB", "stft", "tolerance", "result", "reason / hint")
    rows = []
    for c in verdict.checkpoints:
        m = c.metrics
        cls = "first" if c is first else ("pass" if c.passed else "fail")
        cells = [html.escape(c.name), c.kind, "" if c.step is None else str(c.step)]
        if m is None:
            cells += ["-", "-"] + ["-"] * 8
        else:
            cells += [f"{list(m.reference_shape)} / {list(m.native_shape)}", f"{m.reference_dtype} / {m.native_dtype}"]
            cells += [f'<td class="num">{_num(v, spec)}</td>' for v, spec in (
                (m.max_abs_diff, "%.3e"), (m.mean_abs_diff, "%.3e"), (m.rel_abs_mean_drift, "%.3e"),
                (m.cosine, "%.6f"), (m.psnr, "%.2f"), (m.ssim, "%.4f"), (m.snr_db, "%.2f"), (m.stft_distance, "%.3e"))]
        cells += [html.escape(c.tolerance.describe()) if c.tolerance else "-", "pass" if c.passed else "FAIL",
                  html.escape(c.reason + (f" — {c.hint}" if c.hint else ""))]
        tds = "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in cells)
        rows.append(f'<tr class="{cls}">{tds}</tr>')
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _key_values(data: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in sorted(data.items()))
    return f"<table>{rows}</table>" if rows else "<p>(none)</p>"


def write_report(verdict: Verdict, reference: CaptureSet, native: CaptureSet, path: str | Path) -> Path:
    """Write the HTML report atomically and return its path."""
    title = f"Parity report: {verdict.family} {verdict.preset} ({verdict.mode} mode)"
    status = "pass" if verdict.passed else "fail"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f'<div class="banner {status}">{status.upper()}: {sum(c.passed for c in verdict.checkpoints)} of '
             f"{len(verdict.checkpoints)} checkpoints within tolerance</div>"]
    first = verdict.first_divergence
    if first is not None:
        where = first.kind if first.step is None else f"{first.kind}, step {first.step}"
        parts.append(f'<h2>First divergence</h2><div class="divergence"><p><b>{html.escape(first.name)}</b> '
                     f"({where}): {html.escape(first.reason)}</p>"
                     f"<p>Where to look: {html.escape(first.hint)}</p></div>")
    parts.append("<h2>Metrics</h2>" + _metrics_table(verdict))
    parts.append("<h2>Figures</h2>")
    for caption, draw in _figures(verdict, reference, native):
        try:
            uri = figure_data_uri(draw())
            parts.append(f"<h3>{html.escape(caption)}</h3><img alt='{html.escape(caption)}' src='{uri}'>")
        except ParityError as exc:
            parts.append(f"<h3>{html.escape(caption)}</h3><p class='note'>not drawn: {html.escape(str(exc))}</p>")
    parts.append("<h2>Parameters</h2>" + _key_values(verdict.parameters))
    parts.append("<h2>Versions</h2>" + _key_values(verdict.versions))
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts) + "\n")
