"""Every plot renders for video, audio and joint captures; exact matches sit on the log floor."""

from __future__ import annotations

import pytest
import torch
from tests.parity_toolkit.conftest import copy_capture, make_video_capture
from matplotlib.figure import Figure

from workbench.errors import ParityError
from workbench.parity import plots
from workbench.parity.capture import CaptureSet
from workbench.parity.compare import compare_captures


def _render(fig: Figure) -> Figure:
    assert isinstance(fig, Figure)
    fig.canvas.draw()  # layout and drawing errors surface only here
    assert fig.get_size_inches()[0] > 0 and fig.axes
    return fig


def test_all_plots_render(capture_pair):
    """Each family draws its media; the rest is drawn once, where it is most demanding."""
    family, ref, nat = capture_pair
    if family == "video":
        heat = _render(plots.plot_latent_heatmaps(ref, nat, "latents_step_001", channels=(0, 3), frame=2))
        assert len(heat.axes) == 2 * (3 + 3)  # two channels: three panels and three colorbars each
        assert heat.axes[0].get_title() == "reference c0 f2"
        with pytest.raises(ParityError, match=r"channel/frame \[16\] out of range"):
            plots.plot_latent_heatmaps(ref, nat, "latents_step_001", channels=(16,))
        frames = _render(plots.plot_frames(ref, nat))
        titles = [ax.get_title() for ax in frames.axes]
        assert [t for t in titles if t.startswith("frame ")] == [f"frame {i}" for i in range(9)]  # every frame
        assert sum("PSNR" in t and "SSIM" in t for t in titles) == 9
        assert frames.axes[-1].get_ylabel() == "|diff|"  # the normalised diff's colourbar
        width, height = frames.get_size_inches()
        assert width * 100 < 9 * 1.5 * 100 + 200 and height < 6  # sized to nine 32x32 thumbnails
        one = _render(plots.plot_frames(ref, nat, frames=[4]))
        assert [ax.get_title() for ax in one.axes][0] == "frame 4" and len(one.axes) == 3 + 1
        with pytest.raises(ParityError, match=r"frames \[9\] out of range \(0..8\)"):
            plots.plot_frames(ref, nat, frames=[9])
        sched = _render(plots.plot_schedules(ref, nat, {"sigmas"}))
        assert [ax.get_title() for ax in sched.axes[:2]] == ["timesteps", "sigmas  (out of tolerance)"]
        assert {line.get_label() for line in sched.axes[1].lines} >= {"reference", "native"}
    if family == "audio":
        heat = _render(plots.plot_latent_heatmaps(ref, nat, "final_latents"))
        assert len(heat.axes) == 3 + 3  # a [B, C, T] latent is one matrix
        wave = _render(plots.plot_waveforms(ref, nat, sampling_rate=16))
        assert len(wave.axes) == 2 + 1 + 3 + 3  # two channels, difference, three spectrograms and their colourbars
        assert wave.axes[2].get_xlabel() == "time (s)" and wave.axes[3].get_ylabel() == "frequency bin"
        assert sum(ax.get_ylabel() == "dB" for ax in wave.axes) == 3
    if family == "joint":
        verdict = compare_captures(ref, nat, mode="fast")
        diffs = _render(plots.plot_latent_diffs(verdict))
        assert {line.get_label() for line in diffs.axes[0].lines} >= {"main max abs diff", "audio max abs diff"}
        legend = diffs.axes[0].get_legend()
        assert legend.get_bbox_to_anchor().x0 > diffs.axes[0].get_window_extent().x1 - 1  # off the data
        joint = _render(plots.plot_joint(ref, nat, max_frames=2))
        assert len(joint.axes) == 2 * 3 + 1 + 2 + 1 + 3 + 3  # frame grid + colourbar, then the waveform panels


def test_exact_match_is_drawn_on_the_floor_and_failures_are_marked():
    ref = make_video_capture()
    nat = copy_capture(ref, lambda n, t: t + 1e-3 if n == "latents_step_001" else t)
    fig = _render(plots.plot_latent_diffs(compare_captures(ref, nat)))
    max_line = next(line for line in fig.axes[0].lines if line.get_label() == "max abs diff")
    assert list(max_line.get_ydata()) == pytest.approx([plots.LOG_FLOOR, 1e-3, plots.LOG_FLOOR], rel=1e-4)
    failed = next(line for line in fig.axes[0].lines if line.get_label() == "out of tolerance")
    assert list(failed.get_xdata()) == [1]


def test_waveform_plots_handle_very_short_signals():
    ref = CaptureSet()
    ref.record("waveform", torch.tensor([[[0.1, -0.2, 0.3], [0.0, 0.1, 0.2]]]), "waveform")
    nat = copy_capture(ref, lambda n, t: t * 1.01)
    _render(plots.plot_waveforms(ref, nat))


def test_plots_name_what_is_missing_or_mismatched():
    ref = make_video_capture()
    with pytest.raises(ParityError, match="'frames' is missing in native"):
        plots.plot_frames(ref, copy_capture(ref, skip=("frames",)))
    with pytest.raises(ParityError, match="no checkpoint of kind 'waveform'"):
        plots.plot_waveforms(ref, ref)
    nat = copy_capture(ref, lambda n, t: t[:, :, :1] if n == "final_latents" else t)
    with pytest.raises(ParityError, match="shape mismatch"):
        plots.plot_latent_heatmaps(ref, nat, "final_latents")
