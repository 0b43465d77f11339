"""Tolerance tables: exact and fast defaults, alternatives, per-checkpoint overrides."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import ParameterError
from workbench.parity.capture import KINDS
from workbench.parity.metrics import compare_tensors
from workbench.parity.tolerances import Tolerance, tolerances_for


@pytest.mark.parametrize("kind", KINDS)
def test_exact_mode_is_one_e_minus_six_for_every_kind(kind):
    table = tolerances_for("exact")
    a = torch.full((1, 2, 8, 8, 3), 0.5, dtype=torch.float64)
    tol = table.for_checkpoint("x", kind)
    assert tol.check(compare_tensors(a, a + 5e-7, kind))[0]
    passed, reason = tol.check(compare_tensors(a, a + 2e-6, kind))
    assert not passed and reason.startswith("max_abs_diff 2.000e-06 > 1.000e-06")


def test_frames_pass_on_high_psnr_despite_an_outlier_pixel():
    tol = tolerances_for("fast").for_checkpoint("frames", "frames")
    frames = torch.full((1, 9, 32, 32, 3), 0.5)
    outlier = frames.clone()
    outlier[0, 0, 0, 0, 0] += 0.1  # max diff 0.1 > 5e-2, but PSNR ~ 64 dB
    assert tol.check(compare_tensors(frames, outlier, "frames")) == (True, "")
    passed, reason = tol.check(compare_tensors(frames, frames + 0.1, "frames"))  # PSNR 20 dB
    assert not passed
    assert "max_abs_diff" in reason and "alternative: psnr 2.000e+01 < 3.000e+01" in reason


def test_fast_final_latents_need_a_tighter_cosine_than_steps():
    table = tolerances_for("fast")
    assert table.for_checkpoint("latents_step_003", "latent").min_cosine == 0.99
    assert table.for_checkpoint("final_latents", "latent").min_cosine == 0.999
    assert table.for_checkpoint("audio_final_latents", "latent").min_cosine == 0.999


def test_overrides_by_name_and_pattern_win():
    strict = Tolerance(max_abs=1e-9)
    table = tolerances_for("fast", {"latents_step_002": strict, "audio_*": Tolerance(max_abs=0.3)})
    assert table.for_checkpoint("latents_step_002", "latent") is strict
    assert table.for_checkpoint("audio_final_latents", "latent").max_abs == 0.3  # override pattern first
    assert table.for_checkpoint("latents_step_001", "latent").max_abs == 0.5


def test_unknown_mode_and_missing_bound_metric():
    with pytest.raises(ParameterError, match="parity mode 'slow'"):
        tolerances_for("slow")
    passed, reason = Tolerance(min_psnr=30).check(compare_tensors(torch.zeros(3), torch.zeros(3), "latent"))
    assert not passed and reason == "psnr unavailable"


def test_tolerance_dict_round_trip():
    tol = tolerances_for("fast").for_checkpoint("frames", "frames")
    assert Tolerance.from_dict(tol.to_dict()) == tol
