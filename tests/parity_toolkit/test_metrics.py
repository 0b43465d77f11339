"""Metrics on pairs whose answer is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.parity.metrics import (compare_tensors, cosine, psnr, snr_db, ssim_per_frame, stft_distance,
                                      stft_sizes)


def test_identical_tensors_have_zero_diff_and_unit_cosine():
    a = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    m = compare_tensors(a, a.clone(), "latent")
    assert m.error is None
    assert (m.max_abs_diff, m.mean_abs_diff, m.rel_abs_mean_drift) == (0.0, 0.0, 0.0)
    assert m.cosine == 1.0
    assert m.reference_shape == m.native_shape == (1, 16, 3, 4, 4)


def test_known_offset_gives_exact_diffs_and_drift():
    a = torch.arange(1, 25, dtype=torch.float32).reshape(2, 3, 4) / 8  # dyadic: the offset is exact
    m = compare_tensors(a, a + 0.25, "latent")
    assert m.max_abs_diff == 0.25
    assert m.mean_abs_diff == 0.25
    assert m.rel_abs_mean_drift == pytest.approx(0.25 / float(a.double().mean()), rel=1e-12)
    assert 0.99 < m.cosine < 1.0


def test_dtypes_of_both_sides_are_recorded():
    a = torch.randn(4, 8)
    m = compare_tensors(a, a.bfloat16(), "embedding")
    assert (m.reference_dtype, m.native_dtype) == ("float32", "bfloat16")
    assert 0 < m.max_abs_diff < 0.05


def test_cosine_of_orthogonal_opposite_and_zero_vectors():
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])) == 0.0
    assert cosine(torch.tensor([1.0, -2.0]), torch.tensor([-1.0, 2.0])) == pytest.approx(-1.0, abs=1e-15)
    assert cosine(torch.zeros(3), torch.zeros(3)) == 1.0
    assert cosine(torch.zeros(3), torch.ones(3)) == 0.0


def test_psnr_of_known_mse():
    frames = 0.2 + 0.6 * torch.rand(1, 9, 32, 32, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert psnr(frames, frames + 0.01) == pytest.approx(40.0, abs=1e-9)  # MSE 1e-4 -> 40 dB
    m = compare_tensors(frames, frames + 0.01, "frames")
    assert m.psnr == pytest.approx(40.0, abs=1e-9)
    assert psnr(frames, frames) == math.inf


def test_ssim_identical_is_one_and_falls_with_noise():
    g = torch.Generator().manual_seed(2)
    frames = torch.rand(1, 4, 2, 32, 32, 3, generator=g).clamp(0, 1).reshape(1, 8, 32, 32, 3)
    assert torch.allclose(ssim_per_frame(frames, frames), torch.ones(8, dtype=torch.float64), atol=1e-12)
    light = (frames + 0.02 * torch.randn(frames.shape, generator=g)).clamp(0, 1)
    heavy = (frames + 0.2 * torch.randn(frames.shape, generator=g)).clamp(0, 1)
    s_light, s_heavy = float(ssim_per_frame(frames, light).mean()), float(ssim_per_frame(frames, heavy).mean())
    assert 1.0 > s_light > s_heavy > 0.0


def test_ssim_of_flat_frames_is_the_luminance_term():
    # Flat images: the contrast-structure term is c2/c2 = 1, leaving the luminance formula.
    x, y = (torch.full((1, 16, 16, 3), v, dtype=torch.float64) for v in (0.5, 0.6))
    c1 = 0.01**2
    expected = (2 * 0.5 * 0.6 + c1) / (0.5**2 + 0.6**2 + c1)
    assert float(ssim_per_frame(x, y)[0]) == pytest.approx(expected, rel=1e-9)


def test_ssim_works_on_frames_smaller_than_the_window():
    a = torch.rand(1, 2, 4, 6, 3, generator=torch.Generator().manual_seed(3))
    assert ssim_per_frame(a, a).shape == (2,)
    assert compare_tensors(a, a, "frames").ssim == pytest.approx(1.0)


def test_snr_of_known_noise():
    t = torch.arange(31, dtype=torch.float64)
    ref = torch.stack([torch.sin(0.7 * t), torch.cos(0.3 * t)]).unsqueeze(0)
    assert snr_db(ref, ref + 0.1 * ref) == pytest.approx(20.0, abs=1e-9)  # noise power = 1% of signal
    assert snr_db(ref, ref) == math.inf
    assert compare_tensors(ref, 1.1 * ref, "waveform").snr_db == pytest.approx(20.0, abs=1e-9)


@pytest.mark.parametrize("length", [1, 2, 5, 16, 31, 300])
def test_stft_distance_zero_for_identical_positive_otherwise_even_on_short_signals(length):
    g = torch.Generator().manual_seed(length)
    ref = torch.randn(1, 2, length, generator=g)
    other = ref + 0.1 * torch.randn(ref.shape, generator=g)
    assert stft_distance(ref, ref) == 0.0
    d = stft_distance(ref, other)
    assert math.isfinite(d) and d > 0.0
    m = compare_tensors(ref, other, "waveform")
    assert m.error is None and m.stft_distance == pytest.approx(d)


def test_stft_sizes_fit_the_signal():
    assert stft_sizes(31) == (16,)
    assert stft_sizes(5) == (4,)
    assert stft_sizes(1) == (1,)
    assert stft_sizes(48000) == (1024, 256, 64, 16)


def test_shape_mismatch_is_a_failed_result_not_an_exception():
    m = compare_tensors(torch.zeros(1, 16, 3, 4, 4), torch.zeros(1, 16, 2, 4, 4), "latent")
    assert m.error == "shape mismatch: reference [1, 16, 3, 4, 4] vs native [1, 16, 2, 4, 4]"
    assert m.max_abs_diff is None


def test_nan_and_inf_are_reported_by_side():
    a = torch.zeros(2, 3)
    b = a.clone()
    b[0, 0], b[1, 1] = float("nan"), float("inf")
    m = compare_tensors(a, b, "latent")
    assert m.error == "native has 1 NaN and 1 Inf values"
    assert m.cosine is None
