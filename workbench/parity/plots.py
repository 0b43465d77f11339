"""Figures for a parity run: per-step diffs, latent heatmaps, frames, waveforms, tables, trace drift.

Every function returns a matplotlib Figure with an explicit figsize and never calls
`plt.show()`: a notebook cell ends with `plt.show()` itself (DESIGN section 8), and the
HTML report saves and closes the figures. Checkpoints are found by kind, not family, so
the same plots serve video, audio and joint audio-video families. Only batch item 0 is
drawn.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Iterable

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import MaxNLocator

from workbench.errors import ParityError
from workbench.parity.capture import CaptureSet, Checkpoint
from workbench.parity.metrics import psnr_per_frame, ssim_per_frame, stft_magnitude
from workbench.parity.verdict import Verdict

if TYPE_CHECKING:  # pragma: no cover
    from workbench.trace.diff import TraceDiffResult

#: Diffs are drawn on a log axis; exact zeros are drawn at this floor.
LOG_FLOOR = 1e-12
PASS_COLOR, FAIL_COLOR = "#d8f0d8", "#f6cccc"

_STEP_NAME = re.compile(r"^(?:(?P<stream>.+)_)?latents_step_\d+$")


def _pair(reference: CaptureSet, native: CaptureSet, name: str) -> tuple[Checkpoint, Checkpoint]:
    """Both sides of a checkpoint, or a ParityError saying which side lacks it or why they differ."""
    missing = [side for side, cap in (("reference", reference), ("native", native)) if name not in cap]
    if missing:
        raise ParityError(f"checkpoint {name!r} is missing in {' and '.join(missing)}")
    ref, nat = reference[name], native[name]
    if ref.tensor.shape != nat.tensor.shape:
        raise ParityError(f"checkpoint {name!r}: shape mismatch, reference {list(ref.tensor.shape)} "
                          f"vs native {list(nat.tensor.shape)}")
    return ref, nat


def _first_of_kind(reference: CaptureSet, native: CaptureSet, kind: str) -> tuple[Checkpoint, Checkpoint]:
    name = next((c.name for c in reference if c.kind == kind), None)
    if name is None:
        raise ParityError(f"reference capture has no checkpoint of kind {kind!r}")
    return _pair(reference, native, name)


def _floor(values: Iterable[float]) -> list[float]:
    return [max(v, LOG_FLOOR) for v in values]


# ---- per-step latent diffs ----
def plot_latent_diffs(verdict: Verdict) -> Figure:
    """Max and mean abs diff per denoising step (log scale, zeros at the floor), failures marked."""
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    streams: dict[str, list] = {}
    for c in verdict.checkpoints:
        match = _STEP_NAME.match(c.name)
        if match and c.step is not None:
            streams.setdefault(match.group("stream") or "main", []).append(c)
    if not streams:
        ax.text(0.5, 0.5, "no per-step latent checkpoints", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for stream, results in streams.items():
        steps = [c.step for c in results if c.metrics and c.metrics.max_abs_diff is not None]
        measured = [c.metrics for c in results if c.metrics and c.metrics.max_abs_diff is not None]
        label = "" if len(streams) == 1 else f"{stream} "
        ax.plot(steps, _floor(m.max_abs_diff for m in measured), "o-", label=f"{label}max abs diff")
        ax.plot(steps, _floor(m.mean_abs_diff for m in measured), "s--", label=f"{label}mean abs diff")
        failed = [c for c in results if not c.passed]
        if failed:
            y = [max(c.metrics.max_abs_diff, LOG_FLOOR) if c.metrics and c.metrics.max_abs_diff is not None
                 else LOG_FLOOR for c in failed]
            ax.plot([c.step for c in failed], y, "x", color="red", markersize=12, mew=2,
                    label=f"{label}out of tolerance")
    bounds = {c.tolerance.max_abs for rs in streams.values() for c in rs if c.tolerance and c.tolerance.max_abs}
    if len(bounds) == 1:
        ax.axhline(bounds.pop(), color="gray", linestyle=":", label="max abs tolerance")
    ax.set_yscale("log")
    ax.set_ylim(bottom=LOG_FLOOR / 2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("denoising step")
    ax.set_ylabel("abs diff (zeros drawn at %.0e)" % LOG_FLOOR)
    ax.set_title(f"per-step latent diff ({verdict.mode} mode)")
    ax.legend(fontsize="small")
    return fig


# ---- latent heatmaps ----
def _latent_slice(t: torch.Tensor, channel: int, frame: int) -> torch.Tensor:
    """A 2-D view of batch item 0: [C,F,H,W] -> H x W, [C,H,W] -> H x W, [C,T] or [seq,dim] as is."""
    t = t.detach().float()
    if t.dim() == 5:
        return t[0, channel, frame]
    if t.dim() == 4:
        return t[0, channel]
    if t.dim() == 3:
        return t[0]
    return t if t.dim() == 2 else t.reshape(1, -1)


def plot_latent_heatmaps(reference: CaptureSet, native: CaptureSet, checkpoint: str,
                         channels: tuple[int, ...] = (0,), frame: int = 0) -> Figure:
    """Reference | native | abs diff of one latent checkpoint, one row per channel.

    5-D video latents [B,C,F,H,W] show channel c of `frame`; 3-D (audio [B,C,T] or packed
    [B,seq,dim]) latents show the whole matrix in a single row.
    """
    ref, nat = _pair(reference, native, checkpoint)
    rows = list(channels) if ref.tensor.dim() >= 4 else [0]
    fig, axes = plt.subplots(len(rows), 3, figsize=(10, 3 * len(rows)), squeeze=False, layout="constrained")
    for row, channel in zip(axes, rows):
        a, b = _latent_slice(ref.tensor, channel, frame), _latent_slice(nat.tensor, channel, frame)
        vmin, vmax = float(torch.minimum(a.min(), b.min())), float(torch.maximum(a.max(), b.max()))
        where = f"c{channel} f{frame}" if ref.tensor.dim() == 5 else (f"c{channel}" if ref.tensor.dim() == 4 else "")
        for ax, image, title in ((row[0], a, "reference"), (row[1], b, "native")):
            im = ax.imshow(image.numpy(), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
            ax.set_title(f"{title} {where}".strip())
            fig.colorbar(im, ax=ax)
        diff = (a - b).abs()
        im = row[2].imshow(diff.numpy(), cmap="magma", aspect="auto")
        row[2].set_title(f"|diff| max {float(diff.max()):.3e}")
        fig.colorbar(im, ax=row[2], format="%.1e")
    fig.suptitle(checkpoint)
    return fig


# ---- frames ----
def _frames_of_item0(t: torch.Tensor) -> torch.Tensor:
    """Channels-last video [B,F,H,W,C] (or [F,H,W,C], [H,W,C]) -> frames of batch item 0."""
    per_item = t.shape[-4] if t.dim() >= 4 else 1
    return t.detach().float().reshape(-1, *t.shape[-3:])[:per_item]


def _draw_frames(fig: Figure | SubFigure, ref: torch.Tensor, nat: torch.Tensor, max_frames: int,
                 amplify: float) -> None:
    ref, nat = _frames_of_item0(ref), _frames_of_item0(nat)
    count = min(max_frames, ref.shape[0])
    picks = torch.linspace(0, ref.shape[0] - 1, count).round().long().unique().tolist()
    psnrs, ssims = psnr_per_frame(ref[picks], nat[picks]), ssim_per_frame(ref[picks], nat[picks])
    axes = fig.subplots(len(picks), 3, squeeze=False)
    for row, index, p, s in zip(axes, picks, psnrs.tolist(), ssims.tolist()):
        diff = ((ref[index] - nat[index]).abs() * amplify).clamp(0, 1)
        for ax, image, title in ((row[0], ref[index], f"frame {index} reference"),
                                 (row[1], nat[index], f"frame {index} native"),
                                 (row[2], diff, f"|diff| x{amplify:g}  PSNR {p:.2f} SSIM {s:.4f}")):
            ax.imshow(image.clamp(0, 1).numpy())
            ax.set_title(title, fontsize="small")
            ax.set_axis_off()


def plot_frames(reference: CaptureSet, native: CaptureSet, max_frames: int = 4, amplify: float = 10.0) -> Figure:
    """Reference | native | amplified abs diff for up to `max_frames` evenly spaced frames."""
    ref, nat = _first_of_kind(reference, native, "frames")
    rows = min(max_frames, _frames_of_item0(ref.tensor).shape[0])
    fig = plt.figure(figsize=(10, 3 * rows + 0.5), layout="constrained")
    _draw_frames(fig, ref.tensor, nat.tensor, max_frames, amplify)
    fig.suptitle(ref.name)
    return fig


# ---- waveforms ----
def _spectrogram_db(signal: torch.Tensor) -> torch.Tensor:
    """dB magnitude with an FFT size that fits the signal (tiny test signals included)."""
    n_fft = 1 << (min(signal.shape[-1], 256).bit_length() - 1)
    return 20 * torch.log10(stft_magnitude(signal, n_fft)[0].clamp_min(1e-7))


def _draw_waveforms(fig: Figure | SubFigure, ref: torch.Tensor, nat: torch.Tensor) -> None:
    ref = ref.detach().double().reshape(-1, *ref.shape[-2:])[0] if ref.dim() >= 2 else ref.double()[None]
    nat = nat.detach().double().reshape(-1, *nat.shape[-2:])[0] if nat.dim() >= 2 else nat.double()[None]
    channels = ref.shape[0]
    grid = fig.add_gridspec(channels + 2, 3)
    for c in range(channels):
        ax = fig.add_subplot(grid[c, :])
        ax.plot(ref[c].numpy(), label="reference", linewidth=1.5)
        ax.plot(nat[c].numpy(), label="native", linewidth=1, linestyle="--")
        ax.set_title(f"channel {c}", fontsize="small")
        ax.legend(fontsize="x-small", loc="upper right")
    ax = fig.add_subplot(grid[channels, :])
    for c in range(channels):
        ax.plot((nat[c] - ref[c]).numpy(), label=f"channel {c}")
    ax.set_title("native - reference", fontsize="small")
    ax.legend(fontsize="x-small", loc="upper right")
    spec_ref, spec_nat = _spectrogram_db(ref.mean(0)), _spectrogram_db(nat.mean(0))
    for col, (image, title, cmap) in enumerate(((spec_ref, "reference spectrogram (dB)", "viridis"),
                                                (spec_nat, "native spectrogram (dB)", "viridis"),
                                                ((spec_ref - spec_nat).abs(), "|diff| (dB)", "magma"))):
        ax = fig.add_subplot(grid[channels + 1, col])
        ax.imshow(image.numpy(), origin="lower", aspect="auto", cmap=cmap)
        ax.set_title(title, fontsize="small")


def plot_waveforms(reference: CaptureSet, native: CaptureSet) -> Figure:
    """Per-channel overlay, the difference trace, and spectrograms reference | native | diff."""
    ref, nat = _first_of_kind(reference, native, "waveform")
    channels = ref.tensor.shape[-2] if ref.tensor.dim() >= 2 else 1
    fig = plt.figure(figsize=(10, 2 * (channels + 2) + 0.5), layout="constrained")
    _draw_waveforms(fig, ref.tensor, nat.tensor)
    fig.suptitle(ref.name)
    return fig


def plot_joint(reference: CaptureSet, native: CaptureSet, max_frames: int = 4, amplify: float = 10.0) -> Figure:
    """Frames and waveform of a joint audio-video run in one figure."""
    frames_ref, frames_nat = _first_of_kind(reference, native, "frames")
    wave_ref, wave_nat = _first_of_kind(reference, native, "waveform")
    rows = min(max_frames, _frames_of_item0(frames_ref.tensor).shape[0])
    channels = wave_ref.tensor.shape[-2] if wave_ref.tensor.dim() >= 2 else 1
    heights = [3 * rows, 2 * (channels + 2)]
    fig = plt.figure(figsize=(10, sum(heights) + 1), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=heights)
    _draw_frames(top, frames_ref.tensor, frames_nat.tensor, max_frames, amplify)
    top.suptitle(frames_ref.name)
    _draw_waveforms(bottom, wave_ref.tensor, wave_nat.tensor)
    bottom.suptitle(wave_ref.name)
    return fig


# ---- verdict table ----
def plot_stage_table(verdict: Verdict) -> Figure:
    """Checkpoint | kind | max abs | cosine | result, rows colored by pass/fail."""
    first = verdict.first_divergence
    rows, colors = [], []
    for c in verdict.checkpoints:
        m = c.metrics
        max_abs = "-" if m is None or m.max_abs_diff is None else "%.3e" % m.max_abs_diff
        cos = "-" if m is None or m.cosine is None else "%.6f" % m.cosine
        status = "pass" if c.passed else ("FIRST FAIL" if c is first else "FAIL")
        rows.append([c.name, c.kind, max_abs, cos, status])
        colors.append([PASS_COLOR if c.passed else FAIL_COLOR] * 5)
    fig, ax = plt.subplots(figsize=(9, 0.25 * (len(rows) + 1) + 0.6), layout="constrained")
    ax.set_axis_off()
    if not rows:
        ax.text(0.5, 0.5, "no checkpoints were compared", ha="center", va="center")
        return fig
    table = ax.table(cellText=rows, cellColours=colors, colLabels=["checkpoint", "kind", "max abs", "cosine", "result"],
                     colWidths=[0.36, 0.13, 0.17, 0.16, 0.18], cellLoc="left", bbox=[0, 0, 1, 1])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    if first is not None:
        row = verdict.checkpoints.index(first) + 1
        for col in range(5):
            table[row, col].set_text_props(fontweight="bold")
    ax.set_title(f"{'PASS' if verdict.passed else 'FAIL'}: {verdict.family} {verdict.preset} ({verdict.mode} mode)")
    return fig


# ---- activation trace ----
def plot_layer_drift(trace_diff_result: "TraceDiffResult") -> Figure:
    """Relative abs-mean drift per traced record (A's file order), one line per step, threshold marked."""
    result = trace_diff_result
    fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
    by_step: dict[object, list[tuple[int, float]]] = {}
    for index, r in enumerate(result.records):
        drift = r.rel_drift if r.rel_drift is not None and math.isfinite(r.rel_drift) else None
        if drift is not None:
            by_step.setdefault(r.step, []).append((index, max(drift, LOG_FLOOR)))
    for step, points in by_step.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], ".-", label=f"step {step}")
    ax.axhline(max(result.rel_threshold, LOG_FLOOR), color="gray", linestyle=":", label="threshold")
    first = result.first_divergence
    if first is not None:
        index = result.records.index(first)
        ax.axvline(index, color="red", linestyle="--", label=f"first divergence: {first.module}")
    modules = [r.module for r in result.records]
    if 0 < len(modules) <= 40:
        ax.set_xticks(range(len(modules)), modules, rotation=90, fontsize="x-small")
    ax.set_yscale("log")
    ax.set_xlabel("traced record (A's file order)")
    ax.set_ylabel("relative abs-mean drift")
    ax.set_title("activation drift per module")
    ax.legend(fontsize="small")
    return fig
