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


def legend_outside(ax, **kwargs) -> None:
    """The legend right of the axes, off the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", **kwargs)


# ---- schedules ----
def plot_schedules(reference: CaptureSet, native: CaptureSet, failed: Iterable[str] = ()) -> Figure:
    """Every schedule checkpoint (timesteps, sigmas) of both sides against its index, and
    native - reference below: a shifted schedule (flow_shift 3 vs 5) shows as two curves."""
    names = [c.name for c in reference if c.kind == "schedule"]
    if not names:
        raise ParityError("reference capture has no checkpoint of kind 'schedule'")
    failed = set(failed)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names) + 1.6, 5.2), squeeze=False,
                             layout="constrained", height_ratios=[2, 1])
    for col, name in enumerate(names):
        top, bottom = axes[0][col], axes[1][col]
        ref = reference[name].tensor.detach().double().flatten()
        top.plot(range(len(ref)), ref.numpy(), "o-", label="reference", linewidth=1.5)
        nat = native[name].tensor.detach().double().flatten() if name in native else None
        if nat is not None:
            top.plot(range(len(nat)), nat.numpy(), "s--", label="native", linewidth=1)
            n = min(len(ref), len(nat))
            bottom.plot(range(n), (nat[:n] - ref[:n]).numpy(), ".-", color="#c0392b" if name in failed else "gray")
        else:
            bottom.text(0.5, 0.5, "missing in native", ha="center", va="center", transform=bottom.transAxes)
        top.set_title(f"{name}{'  (out of tolerance)' if name in failed else ''}", fontsize="medium",
                      color="#c0392b" if name in failed else "black")
        top.set_ylabel(name)
        bottom.set_ylabel("native - reference")
        bottom.set_xlabel("index in the schedule")
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        if col == len(names) - 1:
            legend_outside(top)
    return fig


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
    legend_outside(ax)
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


def latent_axes(t: torch.Tensor) -> tuple[int, int]:
    """(channels, frames) a heatmap can select in batch item 0 of a latent."""
    if t.dim() == 5:
        return t.shape[1], t.shape[2]
    if t.dim() == 4:
        return t.shape[1], 1
    return 1, 1


def worst_slice(reference: torch.Tensor, native: torch.Tensor) -> tuple[int, int]:
    """(channel, frame) of batch item 0 holding the largest |diff| (the table's max abs)."""
    channels, frames = latent_axes(reference)
    diff = (reference.detach().double() - native.detach().double()).abs()[0]
    if reference.dim() < 4:
        return 0, 0
    per = diff.reshape(channels, frames, -1).amax(-1)
    index = int(per.flatten().argmax())
    return index // frames, index % frames


def plot_latent_heatmaps(reference: CaptureSet, native: CaptureSet, checkpoint: str,
                         channels: tuple[int, ...] | None = None, frame: int | None = None) -> Figure:
    """Reference | native | abs diff of one latent checkpoint, one row per channel.

    5-D video latents [B,C,F,H,W] show channel c of `frame`; 3-D (audio [B,C,T] or packed
    [B,seq,dim]) latents show the whole matrix in a single row. Without `channels` /
    `frame` the slice holding the largest difference is drawn, so the title's slice max
    equals the tensor's max abs diff in the verdict table (both are printed).
    """
    ref, nat = _pair(reference, native, checkpoint)
    worst_channel, worst_frame = worst_slice(ref.tensor, nat.tensor)
    channels = (worst_channel,) if channels is None else tuple(channels)
    frame = worst_frame if frame is None else frame
    count, frames = latent_axes(ref.tensor)
    bad = [c for c in channels if not 0 <= c < count] + ([frame] if not 0 <= frame < frames else [])
    if bad:
        raise ParityError(f"checkpoint {checkpoint!r}: channel/frame {bad} out of range "
                          f"(channels 0..{count - 1}, frames 0..{frames - 1})")
    rows = list(channels) if ref.tensor.dim() >= 4 else [0]
    fig, axes = plt.subplots(len(rows), 3, figsize=(10, 3 * len(rows)), squeeze=False, layout="constrained")
    tensor_max = float((ref.tensor.detach().double() - nat.tensor.detach().double()).abs().max())
    for row, channel in zip(axes, rows):
        a, b = _latent_slice(ref.tensor, channel, frame), _latent_slice(nat.tensor, channel, frame)
        vmin, vmax = float(torch.minimum(a.min(), b.min())), float(torch.maximum(a.max(), b.max()))
        where = f"c{channel} f{frame}" if ref.tensor.dim() == 5 else (f"c{channel}" if ref.tensor.dim() == 4 else "")
        for ax, image, title in ((row[0], a, "reference"), (row[1], b, "native")):
            im = ax.imshow(image.numpy(), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
            ax.set_title(f"{title} {where}".strip())
            fig.colorbar(im, ax=ax)
        diff = (a.double() - b.double()).abs()
        im = row[2].imshow(diff.numpy(), cmap="magma", vmin=0, aspect="auto")
        row[2].set_title(f"|diff| max {float(diff.max()):.3e} here\n(tensor max {tensor_max:.3e})", fontsize="small")
        fig.colorbar(im, ax=row[2], format="%.1e")
    fig.suptitle(checkpoint)
    return fig


# ---- frames ----
def _frames_of_item0(t: torch.Tensor) -> torch.Tensor:
    """Channels-last video [B,F,H,W,C] (or [F,H,W,C], [H,W,C]) -> frames of batch item 0."""
    per_item = t.shape[-4] if t.dim() >= 4 else 1
    return t.detach().float().reshape(-1, *t.shape[-3:])[:per_item]


FRAME_INCHES = 1.5  # per frame thumbnail in the parity grids


def frame_picks(count: int, max_frames: int | None) -> list[int]:
    """Every frame, or `max_frames` evenly spaced ones (first and last included)."""
    if max_frames is None or count <= max_frames:
        return list(range(count))
    return torch.linspace(0, count - 1, max_frames).round().long().unique().tolist()


def _draw_frames(fig: Figure | SubFigure, ref: torch.Tensor, nat: torch.Tensor, max_frames: int | None,
                 amplify: float | None = None, picks: list[int] | None = None) -> None:
    """Rows reference | native | |diff| normalised to its max (one colourbar, in pixel
    values), one column per frame: a 60 dB difference is visible, not black."""
    ref, nat = _frames_of_item0(ref), _frames_of_item0(nat)
    picks = frame_picks(ref.shape[0], max_frames) if picks is None else picks
    bad = [i for i in picks if not 0 <= i < ref.shape[0]]
    if bad:
        raise ParityError(f"frames {bad} out of range (0..{ref.shape[0] - 1})")
    psnrs, ssims = psnr_per_frame(ref[picks], nat[picks]), ssim_per_frame(ref[picks], nat[picks])
    diffs = (ref[picks].double() - nat[picks].double()).abs().amax(-1)  # [F,H,W], max over RGB
    top = float(diffs.max()) or 1.0
    axes = fig.subplots(3, len(picks), squeeze=False)
    for col, (index, p, s_) in enumerate(zip(picks, psnrs.tolist(), ssims.tolist())):
        axes[0][col].imshow(ref[index].clamp(0, 1).numpy())
        axes[1][col].imshow(nat[index].clamp(0, 1).numpy())
        im = axes[2][col].imshow(diffs[col].numpy(), cmap="magma", vmin=0, vmax=top)
        axes[0][col].set_title(f"frame {index}", fontsize="small")
        axes[2][col].set_title(f"PSNR {p:.1f}\nSSIM {s_:.4f}", fontsize="x-small")
        for row in range(3):
            axes[row][col].set_xticks([])
            axes[row][col].set_yticks([])
    for row, label in enumerate(("reference", "native", "|diff|")):
        axes[row][0].set_ylabel(label, fontsize="small")
    fig.colorbar(im, ax=axes[2, :].tolist(), format="%.1e", label="|diff|",
                 shrink=0.9, location="right")


def _frames_size(frames: torch.Tensor, max_frames: int | None, count: int | None = None) -> tuple[float, float]:
    """Width and height in inches for a 3-row grid of these frames (sized to the content)."""
    item0 = _frames_of_item0(frames)
    cols = count or len(frame_picks(item0.shape[0], max_frames))
    h, w = item0.shape[-3], item0.shape[-2]
    cell = FRAME_INCHES * (w / max(h, w)), FRAME_INCHES * (h / max(h, w))
    return cell[0] * cols + 1.4, cell[1] * 3 + 1.0


def plot_frames(reference: CaptureSet, native: CaptureSet, max_frames: int | None = 16,
                amplify: float | None = None, frames: list[int] | None = None) -> Figure:
    """Reference | native | normalised |diff| for every frame (up to `max_frames`, evenly
    spaced beyond), or the `frames` given. `amplify` is accepted for compatibility; the
    diff is normalised to its max."""
    ref, nat = _first_of_kind(reference, native, "frames")
    fig = plt.figure(figsize=_frames_size(ref.tensor, max_frames, len(frames) if frames else None),
                     layout="constrained")
    _draw_frames(fig, ref.tensor, nat.tensor, max_frames, picks=frames)
    fig.suptitle(ref.name if not frames else f"{ref.name}: frame {', '.join(map(str, frames))}")
    return fig


def frame_count(reference: CaptureSet) -> int:
    """Frames of batch item 0 in the first frames checkpoint (0 when there is none)."""
    ref = next((c for c in reference if c.kind == "frames"), None)
    return 0 if ref is None else _frames_of_item0(ref.tensor).shape[0]


# ---- waveforms ----
def _spectrogram_db(signal: torch.Tensor) -> torch.Tensor:
    """dB magnitude with an FFT size that fits the signal (tiny test signals included)."""
    n_fft = 1 << (min(signal.shape[-1], 256).bit_length() - 1)
    return 20 * torch.log10(stft_magnitude(signal, n_fft)[0].clamp_min(1e-7))


def _draw_waveforms(fig: Figure | SubFigure, ref: torch.Tensor, nat: torch.Tensor,
                    sampling_rate: float | None = None) -> None:
    """Per-channel overlay (seconds when the rate is known, else samples), the difference,
    and spectrograms reference | native | |diff| with dB colourbars."""
    ref = ref.detach().double().reshape(-1, *ref.shape[-2:])[0] if ref.dim() >= 2 else ref.double()[None]
    nat = nat.detach().double().reshape(-1, *nat.shape[-2:])[0] if nat.dim() >= 2 else nat.double()[None]
    channels = ref.shape[0]
    x = (torch.arange(ref.shape[-1]) / sampling_rate if sampling_rate else torch.arange(ref.shape[-1])).numpy()
    unit = "time (s)" if sampling_rate else "sample"
    grid = fig.add_gridspec(channels + 2, 3)
    for c in range(channels):
        ax = fig.add_subplot(grid[c, :])
        ax.plot(x, ref[c].numpy(), label="reference", linewidth=1.5)
        ax.plot(x, nat[c].numpy(), label="native", linewidth=1, linestyle="--")
        ax.set_title(f"channel {c}", fontsize="small")
        ax.set_ylabel("amplitude", fontsize="small")
        legend_outside(ax)
        if not sampling_rate:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax = fig.add_subplot(grid[channels, :])
    for c in range(channels):
        ax.plot(x, (nat[c] - ref[c]).numpy(), label=f"channel {c}")
    ax.set_title("native - reference", fontsize="small")
    ax.set_xlabel(unit, fontsize="small")
    ax.set_ylabel("difference", fontsize="small")
    if not sampling_rate:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_outside(ax)
    spec_ref, spec_nat = _spectrogram_db(ref.mean(0)), _spectrogram_db(nat.mean(0))
    for col, (image, title, cmap) in enumerate(((spec_ref, "reference spectrogram", "viridis"),
                                                (spec_nat, "native spectrogram", "viridis"),
                                                ((spec_ref - spec_nat).abs(), "|diff|", "magma"))):
        ax = fig.add_subplot(grid[channels + 1, col])
        im = ax.imshow(image.numpy(), origin="lower", aspect="auto", cmap=cmap)
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("STFT frame", fontsize="x-small")
        ax.set_ylabel("frequency bin", fontsize="x-small")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(im, ax=ax, label="dB")


def _rate(checkpoint: Checkpoint) -> float | None:
    meta = getattr(checkpoint, "meta", None) or {}
    rate = meta.get("sampling_rate")
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def plot_waveforms(reference: CaptureSet, native: CaptureSet, sampling_rate: float | None = None) -> Figure:
    """Per-channel overlay, the difference trace, and spectrograms reference | native | diff."""
    ref, nat = _first_of_kind(reference, native, "waveform")
    channels = ref.tensor.shape[-2] if ref.tensor.dim() >= 2 else 1
    fig = plt.figure(figsize=(11, 2 * (channels + 2) + 0.5), layout="constrained")
    _draw_waveforms(fig, ref.tensor, nat.tensor, sampling_rate or _rate(ref))
    fig.suptitle(ref.name)
    return fig


def plot_joint(reference: CaptureSet, native: CaptureSet, max_frames: int | None = 16,
               amplify: float | None = None, sampling_rate: float | None = None) -> Figure:
    """Frames and waveform of a joint audio-video run in one figure."""
    frames_ref, frames_nat = _first_of_kind(reference, native, "frames")
    wave_ref, wave_nat = _first_of_kind(reference, native, "waveform")
    channels = wave_ref.tensor.shape[-2] if wave_ref.tensor.dim() >= 2 else 1
    width, height = _frames_size(frames_ref.tensor, max_frames)
    heights = [height, 2 * (channels + 2)]
    fig = plt.figure(figsize=(max(width, 11), sum(heights) + 1), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=heights)
    _draw_frames(top, frames_ref.tensor, frames_nat.tensor, max_frames)
    top.suptitle(frames_ref.name)
    _draw_waveforms(bottom, wave_ref.tensor, wave_nat.tensor, sampling_rate or _rate(wave_ref))
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
    legend_outside(ax)
    return fig
