"""Figures of generated media for the notebooks: frame grids, waveforms, stage timings, sweeps.

Every function returns a pyplot figure with an explicit figsize and never calls
`plt.show()`: the notebook cell ends with `plt.show()` itself (DESIGN section 8), and the
figure's text repr (`<Figure size WxH with N Axes>`, which nbval compares) stays fixed.
Parity figures (reference vs native) live in `workbench.parity.plots`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from matplotlib.ticker import MaxNLocator

THUMB = 1.3  # inches per thumbnail
STRIP_COLUMNS = 9  # frames per row of a strip; more frames wrap onto further rows
MAX_STRIP_FRAMES = 45  # beyond this a strip shows evenly spaced frames


def frame_indices(num_frames: int, max_frames: int = MAX_STRIP_FRAMES) -> list[int]:
    """Every frame, or `max_frames` evenly spaced ones (first and last included)."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    return [round(i * (num_frames - 1) / (max_frames - 1)) for i in range(max_frames)]


def _draw_waveform(ax, waveform: torch.Tensor, sampling_rate: int | None) -> None:
    wave = waveform.detach().float().cpu()
    t = torch.arange(wave.shape[-1]) / (sampling_rate or 1)
    for c in range(wave.shape[0]):
        ax.plot(t.numpy(), wave[c].numpy(), linewidth=0.6, label=f"ch {c}")
    ax.set_xlabel("time (s)" if sampling_rate else "sample")
    ax.set_ylabel("amplitude")
    if not sampling_rate:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7)  # off the data


def plot_media(media: Mapping[str, torch.Tensor], sampling_rate: int | None = None,
               max_frames: int = MAX_STRIP_FRAMES, title: str = "") -> Figure:
    """Frames [F,H,W,3] as a strip (every frame, wrapped at STRIP_COLUMNS a row) and/or a
    waveform [C,T], whichever `media` holds; the figure is sized to the thumbnails."""
    frames, waveform = media.get("frames"), media.get("waveform")
    idx = frame_indices(frames.shape[0], max_frames) if frames is not None else []
    cols = max(min(len(idx), STRIP_COLUMNS), 1)
    frame_rows = -(-len(idx) // cols) if idx else 0
    aspect = frames.shape[1] / frames.shape[2] if frames is not None else 1.0
    heights = [THUMB * aspect + 0.25] * frame_rows + ([2.2] if waveform is not None else [])
    width = THUMB * cols if frames is not None else 7.0
    if waveform is not None:
        width = max(width, 7.0)
    fig = plt.figure(figsize=(width, sum(heights) + (0.35 if title else 0.0)), layout="constrained")
    if title:
        fig.suptitle(title, fontsize=9)
    grid = fig.add_gridspec(len(heights), cols, height_ratios=heights)
    for j, i in enumerate(idx):
        ax = fig.add_subplot(grid[j // cols, j % cols])
        ax.imshow(frames[i].detach().float().cpu().clamp(0, 1).numpy())
        ax.set_title(f"frame {i}", fontsize=8)
        ax.axis("off")
    if waveform is not None:
        _draw_waveform(fig.add_subplot(grid[frame_rows, :]), waveform, sampling_rate)
    return fig


def plot_stage_timings(timings: Mapping[str, float], title: str = "time per stage") -> Figure:
    """Horizontal bars in pipeline order (first stage on top)."""
    names = list(timings)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.0), layout="constrained")
    ax.barh(names[::-1], [timings[n] * 1e3 for n in names[::-1]])
    ax.set_xlabel("milliseconds")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return fig


def plot_sweep(thumbs: Sequence[Sequence[Mapping[str, torch.Tensor]]], row_labels: Sequence[str],
               col_labels: Sequence[str], sampling_rate: int | None = None) -> Figure:
    """A grid of thumbnails: the middle frame of a video, else the waveform."""
    rows, cols = len(thumbs), len(thumbs[0])
    fig, axes = plt.subplots(rows, cols, figsize=(THUMB * cols + 0.8, THUMB * rows), squeeze=False,
                             layout="constrained")
    for r in range(rows):
        for c in range(cols):
            ax, media = axes[r][c], thumbs[r][c]
            if media.get("frames") is not None:
                frames = media["frames"]
                ax.imshow(frames[frames.shape[0] // 2].detach().float().cpu().clamp(0, 1).numpy())
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                _draw_waveform(ax, media["waveform"], sampling_rate)
            if r == 0:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
    return fig
