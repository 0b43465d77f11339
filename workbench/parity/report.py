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
img.hm { width: 200px; image-rendering: pixelated; }
.hmrow { display: flex; gap: 8px; flex-wrap: wrap; } .hmrow figure { margin: 0; }
"""


def figure_data_uri(fig: Figure) -> str:
    """PNG of a figure as a data URI; closes the figure."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


#: SamplingParam fields shown for every family (the rest only when the family declares them).
COMMON_FIELDS = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "stage_overrides")
#: Latent heatmap slices offered in the report's selector (each one small PNG).
MAX_HEATMAP_SLICES = 24


def family_fields(family_name: str) -> set[str] | None:
    """The SamplingParam fields a family uses: its official defaults, its presets' keys and
    the common request fields; None when the family is not registered (then all are shown)."""
    from workbench import registry
    from workbench.errors import WorkbenchError

    try:
        family = registry.get_family(family_name)
    except WorkbenchError:
        return None
    keys = set(COMMON_FIELDS) | set(family.defaults)
    for preset in registry.PRESETS.for_family(family.name):
        keys |= set(preset.defaults)
    return keys


def shown_parameters(verdict: Verdict) -> dict:
    """The verdict's parameters less None / empty values and fields of other families."""
    keys = family_fields(verdict.family)
    return {k: v for k, v in verdict.parameters.items()
            if v is not None and v != [] and v != () and (keys is None or k in keys)}


def _figures(verdict: Verdict, reference: CaptureSet, native: CaptureSet,
             sampling_rate: float | None = None) -> list[tuple[str, Callable[[], Figure]]]:
    """The figures this run's checkpoint kinds call for, in reading order (a failing
    schedule first: it is the cause the rest inherits)."""
    kinds = {c.kind for c in reference}
    failed = {c.name for c in verdict.checkpoints if not c.passed}
    out: list[tuple[str, Callable[[], Figure]]] = []
    schedules = [c.name for c in reference if c.kind == "schedule"]
    if schedules:
        out.append(("Schedules: " + ", ".join(schedules) + " (reference vs native)",
                    lambda: plots.plot_schedules(reference, native, failed)))
    if any(c.step is not None for c in verdict.checkpoints):
        out.append(("Per-step latent diff", lambda: plots.plot_latent_diffs(verdict)))
    if {"frames", "waveform"} <= kinds:
        out.append(("Frames and waveform", lambda: plots.plot_joint(reference, native, sampling_rate=sampling_rate)))
    elif "frames" in kinds:
        out.append(("Frames", lambda: plots.plot_frames(reference, native)))
    elif "waveform" in kinds:
        out.append(("Waveform", lambda: plots.plot_waveforms(reference, native, sampling_rate)))
    return out


def heatmap_latent(verdict: Verdict, reference: CaptureSet) -> str | None:
    """The latent to show as heatmaps: the first divergent one, else the final latents."""
    first = verdict.first_divergence
    failed_latent = next((c.name for c in verdict.checkpoints if not c.passed and c.kind == "latent"), None)
    if first is not None and first.kind == "latent":
        return first.name
    if failed_latent is not None:
        return failed_latent
    return next((n for n in ("final_latents", "initial_latents") if n in reference), None)


def _array_png(array, cmap: str, vmin: float, vmax: float) -> str:
    """A 2-D array as a colour-mapped PNG data URI (no figure: fast enough for many slices)."""
    buffer = io.BytesIO()
    plt.imsave(buffer, array, cmap=cmap, vmin=vmin, vmax=vmax, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _heatmap_selector(reference: CaptureSet, native: CaptureSet, name: str) -> str:
    """Heatmaps of one latent: the slice with the largest |diff| drawn in full (colourbars;
    its max is the table's max abs diff), then a <select> over every channel at that frame
    and every frame of that channel (reference | native | |diff|, value ranges printed)."""
    ref, nat = plots._pair(reference, native, name)
    channels, frames = plots.latent_axes(ref.tensor)
    worst = plots.worst_slice(ref.tensor, nat.tensor)
    full = figure_data_uri(plots.plot_latent_heatmaps(reference, native, name))
    slices = [worst] + [(c, worst[1]) for c in range(channels)] + [(worst[0], f) for f in range(frames)]
    slices = list(dict.fromkeys(slices))[:MAX_HEATMAP_SLICES]
    key = "".join(ch if ch.isalnum() else "_" for ch in name)
    options, panels = [], []
    for i, (c, f) in enumerate(slices):
        label = f"channel {c}" + (f", frame {f}" if frames > 1 else "") + (" (largest |diff|)" if i == 0 else "")
        a = plots._latent_slice(ref.tensor, c, f).double()
        b = plots._latent_slice(nat.tensor, c, f).double()
        diff = (a - b).abs()
        lo, hi, top = float(min(a.min(), b.min())), float(max(a.max(), b.max())), float(diff.max())
        imgs = "".join(f"<figure><img class='hm' alt='{what} {html.escape(label)}' src='{uri}'>"
                       f"<figcaption>{what}</figcaption></figure>" for what, uri in (
                           ("reference", _array_png(a.numpy(), "viridis", lo, hi)),
                           ("native", _array_png(b.numpy(), "viridis", lo, hi)),
                           (f"|diff| (0 .. {top:.3e})", _array_png(diff.numpy(), "magma", 0.0, top or 1.0))))
        hidden = "" if i == 0 else " style='display:none'"
        panels.append(f"<div class='hm-{key} hmrow' data-i='{i}'{hidden}>{imgs}<p class='note'>values "
                      f"{lo:.3e} .. {hi:.3e} (viridis); |diff| max {top:.3e} (magma)</p></div>")
        options.append(f"<option value='{i}'>{html.escape(label)}</option>")
    script = (f"<script>document.getElementById('hm-{key}').addEventListener('change', function () {{"
              f"document.querySelectorAll('div.hm-{key}').forEach(function (d) {{"
              f"d.style.display = d.dataset.i === this.value ? '' : 'none'; }}, this); }});</script>")
    return (f"<img alt='latent heatmaps {html.escape(name)}' src='{full}'>"
            f"<p><label>other slices: <select id='hm-{key}'>{''.join(options)}</select></label> "
            f"<span class='note'>{channels} channel(s) x {frames} frame(s)</span></p>{''.join(panels)}{script}")


def _num(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    return str(value) if not math.isfinite(value) else spec % value


def _calibration_cells(c) -> list[str]:
    """floor | k | tolerance source of a checkpoint (issue 16's calibration fields; '-' before it)."""
    floor, k = getattr(c, "floor", None), getattr(c, "k", None)
    source = getattr(c, "tolerance_source", "") or "-"
    return [f'<td class="num">{_num(floor, "%.3e")}</td>', f'<td class="num">{_num(k, "%.3g")}</td>',
            html.escape(str(source))]


def _metrics_table(verdict: Verdict) -> str:
    first = verdict.first_divergence
    head = ("checkpoint", "kind", "step", "shape ref / nat", "dtype ref / nat", "max abs", "mean abs", "drift",
            "cosine", "psnr", "ssim", "snr dB", "stft", "tolerance", "floor", "k", "tolerance source", "result",
            "reason / hint")
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
        cells += [html.escape(c.tolerance.describe()) if c.tolerance else "-"] + _calibration_cells(c)
        cells += ["pass" if c.passed else "FAIL", html.escape(c.reason + (f" — {c.hint}" if c.hint else ""))]
        tds = "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in cells)
        rows.append(f'<tr class="{cls}">{tds}</tr>')
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _key_values(data: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in sorted(data.items()))
    return f"<table>{rows}</table>" if rows else "<p>(none)</p>"


def config_differences_html(differences) -> str:
    """Official vs converted component configs: one row per differing field (contract:
    {file, field, official, native}, filled by the parity run; issue 16)."""
    rows = "".join(f"<tr class='fail'><td>{html.escape(str(d.get('file', '')))}</td>"
                   f"<td><b>{html.escape(str(d.get('field', '')))}</b></td>"
                   f"<td class='num'>{html.escape(repr(d.get('official')))}</td>"
                   f"<td class='num'>{html.escape(repr(d.get('native')))}</td></tr>" for d in differences)
    return ("<table><tr><th>file</th><th>field</th><th>official</th><th>native (converted)</th></tr>"
            f"{rows}</table>")


def drilldown_html(drill: dict) -> str:
    """The module-level drill-down of the first divergent step (issue 16's contract)."""
    head = (f"<p>checkpoint <b>{html.escape(str(drill.get('checkpoint', '-')))}</b>, step "
            f"{html.escape(str(drill.get('step', '-')))}: first divergent module "
            f"<b>{html.escape(str(drill.get('first_module') or 'none'))}</b></p>")
    rows = []
    for m in drill.get("modules", []):
        cls = "pass" if m.get("passed") else ("first" if m.get("name") == drill.get("first_module") else "fail")
        rows.append(f"<tr class='{cls}'><td>{html.escape(str(m.get('name')))}</td>"
                    f"<td class='num'>{_num(m.get('max_abs'), '%.3e')}</td>"
                    f"<td class='num'>{_num(m.get('cosine'), '%.6f')}</td>"
                    f"<td>{'pass' if m.get('passed') else 'FAIL'}</td></tr>")
    table = ("<table><tr><th>module</th><th>max abs</th><th>cosine</th><th>result</th></tr>"
             f"{''.join(rows)}</table>") if rows else ""
    return head + table


def write_report(verdict: Verdict, reference: CaptureSet, native: CaptureSet, path: str | Path,
                 sampling_rate: int | None = None, fps: float | None = None) -> Path:
    """Write the HTML report atomically and return its path.

    Reads only the verdict and the captures: the config differences, calibration and
    drill-down are rendered when the verdict carries them."""
    from workbench.players import media_rates, parity_players_html

    title = f"Parity report: {verdict.family} {verdict.preset} ({verdict.mode} mode)"
    status = "pass" if verdict.passed else "fail"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f'<div class="banner {status}">{status.upper()}: {sum(c.passed for c in verdict.checkpoints)} of '
             f"{len(verdict.checkpoints)} checkpoints within tolerance</div>"]
    native_error = getattr(verdict, "native_error", None)
    if native_error:
        parts.append("<h2>Native side raised</h2><div class='divergence'><p>stage "
                     f"<b>{html.escape(str(native_error.get('stage', '-')))}</b>, step "
                     f"{html.escape(str(native_error.get('step', '-')))}: "
                     f"{html.escape(str(native_error.get('message', '')))}</p></div>")
    first = verdict.first_divergence
    if first is not None:
        where = first.kind if first.step is None else f"{first.kind}, step {first.step}"
        parts.append(f'<h2>First divergence</h2><div class="divergence"><p><b>{html.escape(first.name)}</b> '
                     f"({where}): {html.escape(first.reason)}</p>"
                     f"<p>Where to look: {html.escape(first.hint)}</p></div>")
    differences = getattr(verdict, "config_differences", None)
    if differences:
        parts.append("<h2>Config differences (official vs converted)</h2>" + config_differences_html(differences))
    drill = getattr(verdict, "drilldown", None)
    if drill:
        parts.append("<h2>Drill-down</h2>" + drilldown_html(drill))
    parts.append("<h2>Metrics</h2>" + _metrics_table(verdict))
    calibration = getattr(verdict, "calibration", None)
    if calibration:
        parts.append("<h3>Calibration</h3>" + _key_values({k: v for k, v in calibration.items()}))
    rate_fps, rate_audio = media_rates(reference, verdict)
    sampling_rate, fps = sampling_rate or rate_audio, fps or rate_fps
    parts.append("<h2>Figures</h2>")
    for caption, draw in _figures(verdict, reference, native, sampling_rate):
        try:
            uri = figure_data_uri(draw())
            parts.append(f"<h3>{html.escape(caption)}</h3><img alt='{html.escape(caption)}' src='{uri}'>")
        except ParityError as exc:
            parts.append(f"<h3>{html.escape(caption)}</h3><p class='note'>not drawn: {html.escape(str(exc))}</p>")
    latent = heatmap_latent(verdict, reference)
    if latent is not None:
        parts.append(f"<h3>Latent heatmaps: {html.escape(latent)}</h3>")
        try:
            parts.append(_heatmap_selector(reference, native, latent))
        except ParityError as exc:
            parts.append(f"<p class='note'>not drawn: {html.escape(str(exc))}</p>")
    players = parity_players_html(reference, native, verdict, fps=fps, sampling_rate=sampling_rate)
    if players:
        parts.append("<h2>Side by side</h2>" + players)
    parts.append("<h2>Parameters</h2>" + _key_values(shown_parameters(verdict)))
    parts.append("<h2>Versions</h2>" + _key_values(verdict.versions))
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts) + "\n")
